/**
 * Every code a BatonError can carry: what it means, and the exit code the CLI gives it (a BatonError
 * takes its exit code from here). docs/errors.md says when each occurs and what to do.
 */
export const errorCodes = {
  ERR_BATON_USAGE: { exit: 2, meaning: 'a bad command line, --config file or BATON_* variable' },
  ERR_BATON_RUNNING: { exit: 1, meaning: 'a pid file, control socket or steering belongs to a live process' },
  ERR_BATON_COMMAND: { exit: 1, meaning: 'the command is not found, or is not an executable file' },
  ERR_BATON_NOFILE: { exit: 1, meaning: 'too few file descriptors for baton to start (ulimit -n)' },
  ERR_BATON_PID_FILE: { exit: 1, meaning: 'the pid file cannot be written' },
  ERR_BATON_UNSAFE_DIR: { exit: 1, meaning: 'a directory baton writes in is missing, or others may swap files in it' },
  ERR_BATON_LISTEN: { exit: 1, meaning: 'a unix --listen path exists and is not a socket' },
  ERR_BATON_CONTROL: { exit: 1, meaning: 'the control socket cannot be created' },
  ERR_BATON_METRICS: { exit: 1, meaning: 'the --metrics address cannot be listened on' },
  ERR_BATON_START: { exit: 1, meaning: 'generation 1 never became ready' },
  ERR_BATON_EXEC: { exit: 1, meaning: 'the self-upgrade execve failed; baton goes on as it was' },
  ERR_BATON_RESUME: { exit: 1, meaning: 'BATON_RESUME names what this process did not hold before an execve' },
  ERR_BATON_SELF_CHECK: { exit: 1, meaning: 'the build a self-upgrade would exec does not load; baton goes on' },
  ERR_BATON_CONFIG: { exit: 1, meaning: 'an upgrade could not read the options again (--config); it is refused' },
  ERR_BATON_STEER_PRIVILEGE: { exit: 1, meaning: 'steering needs CAP_BPF and CAP_NET_ADMIN' },
  ERR_BATON_BPFFS: { exit: 1, meaning: 'bpffs is not mounted and cannot be mounted' },
  ERR_BATON_LIBBPF: { exit: 1, meaning: 'libbpf 1.x cannot be loaded' },
  ERR_BATON_BPF: { exit: 1, meaning: "baton's BPF object bpf/steer.o is missing or incomplete" },
  ERR_BATON_PINS: { exit: 1, meaning: "the steering's pins are another program's or namespace's, or cannot be made" },
  ERR_BATON_PINS_MISSING: {
    exit: 1,
    meaning: "a previous baton's generation still serves, but its steering pins are not visible here",
  },
  ERR_BATON_FOREIGN_LINK: {
    exit: 1,
    meaning: 'an sk_lookup program that no visible baton pin holds is attached to the network namespace',
  },
  ERR_BATON_SHADOW: { exit: 1, meaning: "a --steer rule would take another process's connections" },
  ERR_BATON_NOT_RUNNING: { exit: 1, meaning: 'no baton answers at the control socket' },
  ERR_BATON_TIMEOUT: { exit: 1, meaning: 'a control request got no answer in time (the upgrade goes on)' },
  ERR_BATON_UPGRADE: { exit: 1, meaning: 'an upgrade failed: rolled back, or refused by --check' },
  ERR_BATON_FORBIDDEN: { exit: 1, meaning: 'this user may not control this baton' },
  ERR_BATON_CONTROL_PEER: { exit: 1, meaning: 'the control socket is served by another user (not root, not you)' },
  ERR_BATON_REQUEST: { exit: 1, meaning: 'a malformed control request or reply' },
  ERR_BATON_INTERNAL: { exit: 1, meaning: 'a control request failed inside baton (a bug)' },
} as const satisfies Record<`ERR_BATON_${string}`, { exit: 1 | 2; meaning: string }>;

export type ErrorCode = keyof typeof errorCodes;

/** True for a catalogued code (a SysError's errno name is not one). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCodes, code);
}
