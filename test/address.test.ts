// --listen addresses and names: parsing, formatting and the sun_path limit, without binding anything.
import test from 'ava';
import { checkUnixPath, formatAddress, overlap, parseAddress } from '../supervisor/address.js';
import { parseListen } from '../supervisor/listener.js';
import { refused } from './helpers/usage.js';

const HINT = 'use HOST:PORT, [IPV6]:PORT, :PORT (all addresses) or unix:/path, e.g. --listen 127.0.0.1:8080';
const PORT_HINT = 'a port is a number from 0 to 65535';
const ZONE_HINT = 'drop the %ZONE: listen on [::]:PORT (every address), or on an address that is not link-local';
const OVERLAP_HINT =
  'give only one of them: [::]:PORT (or :PORT) listens on every address, 0.0.0.0:PORT on every IPv4 one';

test('HOST:PORT is IPv4, [HOST]:PORT IPv6, :PORT every address of both', (t) => {
  t.deepEqual(parseAddress('127.0.0.1:8080'), { kind: 'tcp', family: 4, host: '127.0.0.1', port: 8080, v6only: false });
  t.deepEqual(parseAddress('[::1]:80'), { kind: 'tcp', family: 6, host: '::1', port: 80, v6only: false });
  t.deepEqual(parseAddress(':8080'), { kind: 'tcp', family: 6, host: '::', port: 8080, v6only: false });
  t.like(parseAddress('[fe80::1:2]:65535'), { family: 6, host: 'fe80::1:2', port: 65535 });
});

test('port 0 asks for any free port', (t) => {
  t.like(parseAddress('0.0.0.0:0'), { port: 0 });
  t.like(parseAddress('[::]:00000'), { port: 0 });
});

test('unix:PATH is a unix socket at an absolute path', (t) => {
  t.deepEqual(parseAddress('unix:/run/app.sock'), { kind: 'unix', path: '/run/app.sock' });
  t.deepEqual(parseAddress('unix:/a:b]'), { kind: 'unix', path: '/a:b]' });
});

test('a formatted address parses back to itself; IPv6 in brackets', (t) => {
  for (const spec of ['127.0.0.1:8080', '[::1]:80', '[::]:8080', 'unix:/run/app.sock']) {
    t.is(formatAddress(parseAddress(spec)), spec);
  }
  t.is(formatAddress(parseAddress(':8080')), '[::]:8080');
  t.is(formatAddress(parseAddress('127.0.0.1:0080')), '127.0.0.1:80');
});

test('a unix path takes at most 107 bytes (sun_path with its NUL), counted in bytes', (t) => {
  const at107 = `/${'a'.repeat(106)}`;
  t.is(checkUnixPath(at107, 'x', 'y'), at107);
  t.deepEqual(parseAddress(`unix:${at107}`), { kind: 'unix', path: at107 });
  refused(
    t,
    () => parseAddress(`unix:${at107}b`),
    `unix socket path too long (max 107 bytes): ${at107}b`,
    'choose a shorter path',
  );
  const wide = `/${'é'.repeat(53)}`;
  t.is(checkUnixPath(wide, 'x', 'y'), wide);
  refused(
    t,
    () => checkUnixPath(`${wide}a`, 'control socket', 'give a shorter path'),
    `control socket path too long (max 107 bytes): ${wide}a`,
    'give a shorter path',
  );
});

const bad: Array<[string, string, string]> = [
  ['8080', 'malformed --listen 8080', HINT],
  ['::1:80', 'malformed --listen ::1:80', HINT],
  ['[::1:80', 'malformed --listen [::1:80', HINT],
  ['[::1]:80:90', 'malformed --listen [::1]:80:90', HINT],
  ['localhost:8080', '"localhost" is not an IP address in --listen localhost:8080', HINT],
  ['1.2.3:80', '"1.2.3" is not an IP address in --listen 1.2.3:80', HINT],
  ['[::g]:80', 'bad IPv6 address "::g" in --listen [::g]:80', HINT],
  ['[127.0.0.1]:80', 'bad IPv6 address "127.0.0.1" in --listen [127.0.0.1]:80', HINT],
  ['127.0.0.1:99999', 'bad port "99999" in --listen 127.0.0.1:99999', PORT_HINT],
  ['127.0.0.1:65536', 'bad port "65536" in --listen 127.0.0.1:65536', PORT_HINT],
  ['127.0.0.1:', 'bad port "" in --listen 127.0.0.1:', PORT_HINT],
  ['[::1]:-1', 'bad port "-1" in --listen [::1]:-1', PORT_HINT],
  ['127.0.0.1:8e3', 'bad port "8e3" in --listen 127.0.0.1:8e3', PORT_HINT],
  ['unix:relative.sock', 'unix socket path must be absolute: --listen unix:relative.sock', HINT],
  ['unix:', 'unix socket path must be absolute: --listen unix:', HINT],
  // F14: Node's isIPv6 takes a zone id, which baton's sockaddr could not: "this is a bug in baton"
  ['[fe80::1%lo]:8089', 'IPv6 zone ids are not supported: --listen [fe80::1%lo]:8089', ZONE_HINT],
  ['[::1%lo]:80', 'IPv6 zone ids are not supported: --listen [::1%lo]:80', ZONE_HINT],
  ['[fe80::1%]:80', 'IPv6 zone ids are not supported: --listen [fe80::1%]:80', ZONE_HINT],
];
for (const [spec, message, hint] of bad) {
  test(`--listen ${spec} is refused`, (t) => refused(t, () => parseAddress(spec), message, hint));
}

test('NAME=ADDRESS names a listener; the others are listener<i>', (t) => {
  const specs = parseListen(['web=127.0.0.1:80', '[::1]:81', 'unix:/tmp/a=b.sock', 'x.y-z_1=:82']);
  t.deepEqual(
    specs.map((s) => [s.name, formatAddress(s.address)]),
    [
      ['web', '127.0.0.1:80'],
      ['listener1', '[::1]:81'],
      ['listener2', 'unix:/tmp/a=b.sock'],
      ['x.y-z_1', '[::]:82'],
    ],
  );
});

test('an address or a name given twice is refused; port 0 may repeat', (t) => {
  const hint = 'give each address and name once';
  refused(t, () => parseListen(['127.0.0.1:80', 'a=127.0.0.1:80']), '--listen 127.0.0.1:80 (a) is given twice', hint);
  refused(t, () => parseListen([':80', '[::]:80']), '--listen [::]:80 (listener1) is given twice', hint);
  refused(t, () => parseListen(['a=127.0.0.1:1', 'a=127.0.0.1:2']), '--listen 127.0.0.1:2 (a) is given twice', hint);
  t.is(parseListen(['127.0.0.1:0', '127.0.0.1:0']).length, 2);
});

test('a listener name is 1-64 letters, digits, "_", "." or "-"', (t) => {
  const hint = 'a name is 1-64 letters, digits, "_", "." or "-"';
  refused(t, () => parseListen(['a b=127.0.0.1:1']), 'bad listener name "a b"', hint);
  refused(t, () => parseListen([`${'n'.repeat(65)}=127.0.0.1:1`]), `bad listener name "${'n'.repeat(65)}"`, hint);
  t.is(parseListen([`${'n'.repeat(64)}=127.0.0.1:1`])[0]!.name, 'n'.repeat(64));
});

// F14: two of baton's own listeners that overlap failed at bind with EADDRINUSE, "another process listens".
const overlapping: Array<[string, string, string]> = [
  ['127.0.0.1:80', '[::]:80', '--listen 127.0.0.1:80 (listener0) and --listen [::]:80 (listener1)'],
  [':80', '0.0.0.0:80', '--listen [::]:80 (listener0) and --listen 0.0.0.0:80 (listener1)'],
  ['0.0.0.0:80', '10.1.2.3:80', '--listen 0.0.0.0:80 (listener0) and --listen 10.1.2.3:80 (listener1)'],
  ['[::1]:80', ':80', '--listen [::1]:80 (listener0) and --listen [::]:80 (listener1)'],
  ['[0:0::1]:80', '[::1]:80', '--listen [0:0::1]:80 (listener0) and --listen [::1]:80 (listener1)'],
  [
    '[::ffff:127.0.0.1]:80',
    '127.0.0.1:80',
    '--listen [::ffff:127.0.0.1]:80 (listener0) and --listen 127.0.0.1:80 (listener1)',
  ],
];
for (const [a, b, both] of overlapping) {
  test(`--listen ${a} with --listen ${b} is refused, naming both`, (t) => {
    const message = `${both} overlap: they cannot both listen on port 80`;
    refused(t, () => parseListen([a, b]), message, OVERLAP_HINT);
  });
}

test('listeners overlap only on the same port, and an address in common', (t) => {
  const o = (a: string, b: string) => overlap(parseAddress(a), parseAddress(b));
  t.false(o('127.0.0.1:80', '127.0.0.2:80'));
  t.false(o('127.0.0.1:80', '[::1]:80'), 'IPv4 loopback and IPv6 loopback are two addresses');
  t.false(o('0.0.0.0:80', '[::1]:80'), '0.0.0.0 is IPv4 only');
  t.false(o('[::]:80', '[::]:81'));
  t.false(o('[::]:0', '127.0.0.1:0'), 'port 0: two free ports');
  t.false(o('unix:/a', 'unix:/b'));
  t.true(o('[::]:80', '[::1]:80'));
  t.true(o('10.0.0.1:80', '0.0.0.0:80'));
  t.true(o('[::ffff:10.0.0.1]:80', '0.0.0.0:80'), 'a v4-mapped address is the IPv4 one');
  t.is(o('[::]:80', '127.0.0.1:80'), o('127.0.0.1:80', '[::]:80'), 'symmetric');
  t.deepEqual(parseListen(['127.0.0.1:80', '[::1]:80', '127.0.0.2:80', '127.0.0.1:81']).length, 4);
});
