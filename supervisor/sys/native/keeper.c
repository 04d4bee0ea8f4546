// baton's keeper: the process a pidfd handover names as `_PID`. It holds the listeners, at fds 3.. in
// baton's order, and nothing else, so a generation allowed to pull fds from it (pidfd_getfd needs
// ptrace rights over the process) finds only what it is handed anyway; baton itself is not dumpable.
// Started by baton as `baton-keeper COUNT PARENT`, it
// - dies with baton (PR_SET_PDEATHSIG), and exits at once if its parent is already not PARENT;
// - closes 0, 2 and every fd above the listeners;
// - drops every capability and sets no_new_privs: the kernel lets a process without CAP_SYS_PTRACE
//   pull only from one whose capabilities it has all of, so a generation of a root baton pulls even
//   with none, and the keeper can give nothing else away;
// - blocks every signal: only SIGKILL (baton's, at its stop) ends it. Under Yama scope 1 baton names
//   the generation that may attach with a queued SIGUSR1 whose value is its pid (0: none), which the
//   keeper passes to PR_SET_PTRACER when the sender is its parent;
// - when all that is done, writes one byte to fd 1 (a pipe baton reads) and closes it.
//
// Raw system calls, static, no libc (it runs on glibc and musl systems alike): x86_64 only.

#define SYS_write 1
#define SYS_close 3
#define SYS_rt_sigprocmask 14
#define SYS_getppid 110
#define SYS_capset 126
#define SYS_rt_sigtimedwait 128
#define SYS_prctl 157
#define SYS_exit_group 231
#define SYS_close_range 436
#define PR_SET_PDEATHSIG 1
#define PR_SET_NO_NEW_PRIVS 38
#define PR_SET_PTRACER 0x59616d61
#define SIGKILL 9
#define SIGUSR1 10
#define SI_QUEUE (-1)
#define SIG_SETMASK 2
#define CAPABILITY_VERSION_3 0x20080522

static long syscall4(long n, long a, long b, long c, long d) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}

static __attribute__((noreturn)) void quit(int code) {
  for (;;) syscall4(SYS_exit_group, code, 0, 0, 0);
}

// A decimal number, or -1.
static long number(const char *s) {
  long n = 0;
  if (!s || !*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || n > 0x7fffffff / 10) return -1;
    n = n * 10 + (*s - '0');
  }
  return n;
}

// The kernel's siginfo for a queued signal on x86_64: si_pid at 16, si_value at 24.
struct queued {
  int signo, errno_, code, pad;
  int pid, uid;
  long value;
  char rest[128 - 32];
};

struct cap_header {
  unsigned version;
  int pid;
};
struct cap_data {
  unsigned effective, permitted, inheritable;
};

__attribute__((noreturn, used)) void keeper_main(long *sp) {
  char **argv = (char **)(sp + 1);
  long count = sp[0] == 3 ? number(argv[1]) : -1;
  long parent = sp[0] == 3 ? number(argv[2]) : -1;
  if (count < 1 || count > 0xffff || parent < 1) quit(2);
  syscall4(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0);
  if (syscall4(SYS_getppid, 0, 0, 0, 0) != parent) quit(1);

  syscall4(SYS_close, 0, 0, 0, 0);
  syscall4(SYS_close, 2, 0, 0, 0);
  // close_range is Linux 5.9; pidfd_getfd is 5.6.
  if (syscall4(SYS_close_range, 3 + count, ~0U, 0, 0) < 0)
    for (long fd = 3 + count; fd < 65536; fd++) syscall4(SYS_close, fd, 0, 0, 0);
  struct cap_header header = {CAPABILITY_VERSION_3, 0};
  struct cap_data none[2] = {{0, 0, 0}, {0, 0, 0}};
  if (syscall4(SYS_capset, (long)&header, (long)none, 0, 0) < 0) quit(1);
  if (syscall4(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0) < 0) quit(1);
  unsigned long all = ~0UL, wanted = 1UL << (SIGUSR1 - 1);
  if (syscall4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, 0, 8) < 0) quit(1);

  if (syscall4(SYS_write, 1, (long)"k", 1, 0) != 1) quit(1);
  syscall4(SYS_close, 1, 0, 0, 0);
  for (;;) {
    struct queued info;
    if (syscall4(SYS_rt_sigtimedwait, (long)&wanted, (long)&info, 0, 8) != SIGUSR1) continue;
    if (info.code != SI_QUEUE || info.pid != parent) continue;
    syscall4(SYS_prctl, PR_SET_PTRACER, info.value & 0x7fffffff, 0, 0);
  }
}

__asm__(".text\n.globl _start\n.type _start,@function\n_start:\n"
        "\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall keeper_main\n\thlt\n");
