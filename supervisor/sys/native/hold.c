// Signals across baton's self-upgrade (an execve in place). Node resets every signal disposition it
// inherits, and its signal mask, before any JavaScript runs, so a SIGHUP, SIGTERM or SIGUSR2 that arrives
// while the new program starts would kill baton. This object closes that window from both sides:
//
// - the old program calls baton_forward() just before its execve: the signals are blocked in the calling
//   (main) thread, and a handler on any other thread sends the signal on to the main thread (tgkill), where
//   it stays pending. Pending signals of the thread that calls execve survive it.
// - the new program is started with this object in LD_PRELOAD. Its constructor runs before Node's start
//   and, only when it finds the signals blocked (so: in a program that baton_forward() exec'd), installs
//   handlers that record them. Node keeps SA_SIGINFO handlers it inherits (they may be a preloaded
//   library's); when it unblocks the mask the pending signals arrive here. baton_held() hands them to
//   JavaScript, which by then has handlers of its own.
//
// Node also installs its own SIGINT and SIGTERM handler (SignalExit, one-shot: SA_RESETHAND) after that
// unblocking, which would kill baton at a signal arriving before JavaScript has handlers: in a held start,
// this object's sigaction() declines that one registration (JavaScript's handlers replace it anyway).
//
// Raw system calls and no libc of its own (only dlsym, from the program's libc, glibc or musl): x86_64 only.

#define SYS_rt_sigaction 13
#define SYS_rt_sigprocmask 14
#define SYS_rt_sigreturn 15
#define SYS_getpid 39
#define SYS_prctl 157
#define SYS_tgkill 234
#define PR_SET_DUMPABLE 4
#define SA_SIGINFO 0x4UL
#define SA_RESTORER 0x04000000UL
#define SA_RESTART 0x10000000UL
#define SA_RESETHAND 0x80000000UL
#define SIGINT 2
#define SIGTERM 15
#define SIG_BLOCK 0
#define SIG_SETMASK 2
#define HELD_MAX 64

// SIGHUP, SIGINT, SIGUSR2, SIGTERM, SIGTTIN, SIGTTOU: the signals baton acts on (cli/signals.cts).
static const int held_signals[] = {1, 2, 12, 15, 21, 22};
#define COUNT (int)(sizeof held_signals / sizeof held_signals[0])

typedef void (*handler_t)(int, void *, void *);

// The kernel's struct sigaction on x86_64.
struct ksigaction {
  handler_t handler;
  unsigned long flags;
  void (*restorer)(void);
  unsigned long mask;
};

static long syscall4(long n, long a, long b, long c, long d) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}

// Where a handler returns to: rt_sigreturn (what libc's sigaction sets as SA_RESTORER).
void baton_restorer(void);
__asm__(".text\n.globl baton_restorer\n.hidden baton_restorer\n.type baton_restorer,@function\n"
        "baton_restorer:\n\tmov $15, %rax\n\tsyscall\n");

// From the program's libc, found when this object is loaded (a weak reference: none means no sigaction filter).
extern void *dlsym(void *handle, const char *name) __attribute__((weak));
#define RTLD_NEXT ((void *)-1L)

// The start is held: this process was exec'd by baton_forward().
static int held_start;
static volatile unsigned char seen[HELD_MAX];
static volatile int seen_count;
static struct ksigaction saved[COUNT];
static unsigned long saved_mask;

static unsigned long mask_of_held(void) {
  unsigned long mask = 0;
  for (int i = 0; i < COUNT; i++) mask |= 1UL << (held_signals[i] - 1);
  return mask;
}

static void record(int sig, void *info, void *context) {
  (void)info;
  (void)context;
  int i = __atomic_fetch_add(&seen_count, 1, __ATOMIC_SEQ_CST);
  if (i < HELD_MAX) seen[i] = (unsigned char)sig;
}

static void forward(int sig, void *info, void *context) {
  (void)info;
  (void)context;
  long pid = syscall4(SYS_getpid, 0, 0, 0, 0);
  syscall4(SYS_tgkill, pid, pid, sig, 0);
}

static int install(handler_t handler, struct ksigaction *old) {
  struct ksigaction act = {handler, SA_SIGINFO | SA_RESTART | SA_RESTORER, baton_restorer, mask_of_held()};
  for (int i = 0; i < COUNT; i++) {
    if (syscall4(SYS_rt_sigaction, held_signals[i], (long)&act, old ? (long)&old[i] : 0, 8) < 0) return -1;
  }
  return 0;
}

__attribute__((constructor)) static void hold_from_start(void) {
  unsigned long mask = 0;
  if (syscall4(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&mask, 8) < 0) return;
  if ((mask & mask_of_held()) != mask_of_held()) return;
  held_start = 1;
  // execve made baton dumpable again: undone before a generation could attach (docs/security.md).
  syscall4(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0);
  install(record, 0);
}

// libc's struct sigaction (glibc and musl alike on x86_64): the flags follow a 128-byte mask.
struct libc_sigaction {
  handler_t handler;
  unsigned long mask[16];
  int flags;
  void (*restorer)(void);
};

/** libc's sigaction, less Node's one-shot SIGINT/SIGTERM handler in a held start. */
int sigaction(int sig, const struct libc_sigaction *act, struct libc_sigaction *old) {
  static int (*real)(int, const struct libc_sigaction *, struct libc_sigaction *);
  if (!real && dlsym) real = (int (*)(int, const struct libc_sigaction *, struct libc_sigaction *))dlsym(RTLD_NEXT, "sigaction");
  if (held_start && act && (sig == SIGINT || sig == SIGTERM) && (act->flags & SA_RESETHAND)) act = 0;
  return real ? real(sig, act, old) : -1;
}

/** Just before the execve, on the thread that makes it: hold the signals for the next program. */
int baton_forward(void) {
  unsigned long block = mask_of_held();
  // Blocked here first: a forwarded signal must never land on this thread (it would forward it again).
  if (syscall4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&block, (long)&saved_mask, 8) < 0) return -1;
  return install(forward, saved);
}

/** The execve failed: the handlers and the mask as they were (what arrived meanwhile is delivered now). */
int baton_unforward(void) {
  for (int i = 0; i < COUNT; i++) {
    if (syscall4(SYS_rt_sigaction, held_signals[i], (long)&saved[i], 0, 8) < 0) return -1;
  }
  return syscall4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&saved_mask, 0, 8) < 0 ? -1 : 0;
}

/** The signals recorded since the start, in order (at most `max`); how many were copied. */
int baton_held(unsigned char *out, int max) {
  int n = seen_count < HELD_MAX ? seen_count : HELD_MAX;
  if (n > max) n = max;
  for (int i = 0; i < n; i++) out[i] = seen[i];
  return n;
}
