// Durations and signal names as the options take them.
import test from 'ava';
import { MAX_DURATION, parseDuration, parseSignal, signalNumber } from '../supervisor/duration.js';
import { refused } from './helpers/usage.js';

test('a duration is milliseconds, or a number with ms, s or m', (t) => {
  const cases: Array<[string, number]> = [
    ['500', 500],
    ['500ms', 500],
    ['0', 0],
    ['5s', 5000],
    ['1.5m', 90_000],
    ['0.25s', 250],
    [' 2s ', 2000],
  ];
  t.deepEqual(
    cases.map(([text]) => parseDuration('drain', text)),
    cases.map(([, ms]) => ms),
  );
});

test('hours and days; the longest duration is the longest timer Node keeps, 2^31-1 ms', (t) => {
  t.is(parseDuration('drain', '2h'), 7_200_000);
  t.is(parseDuration('drain', '24d'), 2_073_600_000);
  t.is(parseDuration('drain', '2147483647'), MAX_DURATION);
  for (const text of ['2147483648', '25d', '9999999999', '40000m']) {
    refused(
      t,
      () => parseDuration('kill-timeout', text),
      `--kill-timeout ${text} is longer than baton can time (2147483647ms)`,
      'use at most 2147483647ms (about 24d)',
    );
  }
});

test('a duration is rounded to whole milliseconds', (t) => {
  t.is(parseDuration('drain', '1.4'), 1);
  t.is(parseDuration('drain', '0.0015s'), 2);
});

for (const text of ['soon', '5 s', '1w', '-1s', '.5s', '1e3', '5S', '']) {
  test(`duration "${text}" is refused`, (t) => {
    refused(
      t,
      () => parseDuration('kill-timeout', text),
      `bad duration for --kill-timeout: "${text}"`,
      'use milliseconds or a unit: 500ms, 5s, 1m, 2h, 1d',
    );
  });
}

test('a signal by name, without SIG, in any case, or by number', (t) => {
  const given = ['SIGTERM', 'TERM', 'sigint', 'quit', ' hup ', '10', '9'];
  t.deepEqual(
    given.map((s) => parseSignal('stop-signal', s)),
    ['SIGTERM', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGKILL'],
  );
  t.is(signalNumber('SIGTERM'), 15);
});

for (const text of ['SIGFOO', 'foo', '0', '99', '']) {
  test(`signal "${text}" is refused`, (t) => {
    refused(
      t,
      () => parseSignal('stop-signal', text),
      `unknown signal for --stop-signal: "${text}"`,
      'use a name such as SIGTERM, SIGINT, SIGQUIT or SIGUSR1 (see kill -l)',
    );
  });
}
