// The text log's prefix: `gen=N pid=P` names one process of a generation, `baton pid=P` is baton's own line.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createLogger, type Fields } from '../supervisor/log.js';

function lines(t: import('ava').ExecutionContext, events: Array<[string, Fields]>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'baton-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(join(dir, 'log'), 'w');
  const log = createLogger('text', fd);
  for (const [event, fields] of events) log.event(event, fields);
  closeSync(fd);
  return readFileSync(join(dir, 'log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.replace(/^\[\S+ /, '['));
}

// F14: `upgraded`, `rollback` and `kill leftover processes of the group` carried `gen=N pid=<baton's pid>`.
test("a line about a whole generation is baton's, with generation=N; a process's line names it", (t) => {
  t.deepEqual(
    lines(t, [
      ['ready', { generation: 2, pid: 4242, worker: 0, ready: 130 }],
      ['upgraded', { generation: 2, workers: 2, upgrade: 300 }],
      ['kill', { generation: 1, message: 'leftover processes of the group' }],
      ['listening', { listener: '127.0.0.1:80' }],
    ]),
    [
      '[gen=2 pid=4242] ready worker=0 ready=130',
      `[baton pid=${process.pid}] upgraded generation=2 workers=2 upgrade=300`,
      `[baton pid=${process.pid}] kill leftover processes of the group generation=1`,
      `[baton pid=${process.pid}] listening listener=127.0.0.1:80`,
    ],
  );
});
