import { type Address, formatAddress, overlap, parseAddress, sameAddress } from '../address.js';
import { socketPerGeneration } from '../config.js';
import { usageError } from '../errors.js';
import type { Handover } from '../handover/handover.js';
import { type ListenSpec, parseListen } from '../listener.js';
import { type Rule, steersTo } from '../steering/rules.js';

/**
 * Where each generation's own socket is bound under --steer when --listen does not say, by the families the rules
 * steer: loopback at an ephemeral port (steering, not the bound address, brings the clients). The kernel assigns
 * an IPv4 connection to an IPv6 socket only if it is bound to :: (not v6only): rules of both families need that.
 */
const GENERATION_SOCKET = { '4': '127.0.0.1:0', '6': '[::1]:0', '4,6': '[::]:0' };

const PER_GENERATION = 'with --steer each generation gets a socket of its own';
const PER_GENERATION_HINT = `give one --listen HOST:0 (e.g. ${GENERATION_SOCKET['4']}) or none, or --shared-socket`;

/**
 * --listen as the handover and steering take it: port mode binds nothing; under --steer each generation's own
 * socket is bound at the one --listen (by default 127.0.0.1:0) with port 0, since overlapping generations each
 * bind one (clients connect to the --steer addresses); otherwise at least one is needed.
 */
export function checkListen(
  handover: Handover,
  listen: string[],
  steer: { rules: Rule[]; shared: boolean },
): ListenSpec[] {
  const { name } = handover;
  if (!handover.sharesListener) {
    const steerHint = 'give the address and port clients connect to, e.g. --steer 0.0.0.0:8080';
    if (steer.rules.length === 0) throw usageError(`--handover ${name} needs --steer`, steerHint);
    const message = `--handover ${name} takes no --listen: each generation binds its own $PORT`;
    if (listen.length > 0) throw usageError(message, 'drop --listen, or use --handover pidfd');
    return [];
  }
  if (socketPerGeneration({ steer: steer.rules, sharedSocket: steer.shared }, handover)) {
    if (listen.length > 1)
      throw usageError(`--listen is given ${listen.length} times: ${PER_GENERATION}`, PER_GENERATION_HINT);
    const families = new Set(steer.rules.flatMap((r) => r.ranges.map((range) => range.family)));
    const key = [...families].sort().join(',') as keyof typeof GENERATION_SOCKET;
    const specs = parseListen(listen.length > 0 ? listen : [GENERATION_SOCKET[key]]);
    const address: Address = specs[0]!.address;
    if (address.kind !== 'tcp' || address.port !== 0) {
      const where = listen[0]!;
      throw usageError(
        `--listen ${where}: ${PER_GENERATION}, bound anew at each upgrade, so it takes port 0`,
        PER_GENERATION_HINT,
      );
    }
    return specs;
  }
  if (listen.length === 0) {
    throw usageError(
      'Missing required argument: listen',
      'give at least one --listen ADDRESS, e.g. --listen 127.0.0.1:8080',
    );
  }
  return parseListen(listen);
}

const METRICS_HINT = 'give --metrics an address of its own, e.g. --metrics 127.0.0.1:9464';

/**
 * --metrics: never one of the supervised listeners, the control socket, or an address a --steer rule takes
 * (port 0 is checked again once bound: steering.ts's shadow check does not see a socket bound after it).
 */
export function checkMetrics(spec: string, listen: ListenSpec[], control: string, rules: Rule[]): Address {
  const address = parseAddress(spec, '--metrics');
  const listener = listen.find(
    (l) => overlap(l.address, address) || (address.kind === 'unix' && sameAddress(l.address, address)),
  );
  if (listener) {
    throw usageError(
      `--metrics ${spec} is also --listen ${formatAddress(listener.address)}: supervised, not baton's`,
      METRICS_HINT,
    );
  }
  if (address.kind === 'unix' && address.path === control) {
    throw usageError(`--metrics ${spec} is the control socket`, METRICS_HINT);
  }
  const rule = address.kind === 'tcp' && address.port !== 0 ? steersTo(rules, address) : undefined;
  if (rule)
    throw usageError(
      `--metrics ${spec} is steered by --steer ${rule.text}: scrapes would reach the server`,
      METRICS_HINT,
    );
  return address;
}
