// memory.ts: what a burst left in V8's heap is given back once baton is quiet. On the real V8 of a node started as
// baton's daemon is (--lite-mode --no-expose-wasm --expose-gc): a heap fragmented as a burst leaves it.
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { memoryTrimmer } from '../supervisor/memory.js';
import { sleep } from './helpers/procs.js';

test('a fragmented old space is given back once quiet: only what lives stays', (t) => {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { memoryTrimmer } from './supervisor/memory.ts';
    const old = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space');
    let kept = Array.from({ length: 300_000 }, (_, i) => ({ i, text: 'x'.repeat(20) + i }));
    gc(); gc(); // in the old space now
    kept = kept.filter((_, i) => i % 20 === 0); // one in twenty lives on, spread over every page
    gc();
    const before = old();
    memoryTrimmer(gc, 10).activity();
    setTimeout(() => {
      const after = old();
      console.log(JSON.stringify({ before: before.physical_space_size, after: after.physical_space_size,
        used: after.space_used_size, kept: kept.length }));
    }, 200);
  `;
  const out = execFileSync(
    process.execPath,
    ['--lite-mode', '--no-expose-wasm', '--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script],
    { encoding: 'utf8' },
  );
  const { before, after, used, kept } = JSON.parse(out) as Record<string, number>;
  t.is(kept, 15_000);
  t.true(after < before / 2, `old space ${before} → ${after} bytes`);
  t.true(after < used * 1.5, `${after} bytes held for ${used} in use`);
});

test('one trim after the last of several moments, none after close', async (t) => {
  let calls = 0;
  const gc = (() => void calls++) as unknown as NodeJS.GCFunction;
  const trimmer = memoryTrimmer(gc, 50);
  trimmer.activity();
  trimmer.activity();
  t.is(calls, 0, 'not while it is not quiet');
  await sleep(300);
  t.is(calls, 2, 'one trim: a compacting collection, then the last-resort one');
  trimmer.activity();
  trimmer.close();
  await sleep(300);
  t.is(calls, 2);
});
