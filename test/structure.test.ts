// The house rules that a linter cannot say: they are read from the source, so a change that breaks one
// fails here with the file that broke it. (koffi and libc outside sys/ are refused by Biome's lint.)

import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import test from 'ava';
import { root } from './helpers/baton.js';

const SUPERVISOR = join(root, 'supervisor');
const MAX_LINES = 250;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const files = sources(SUPERVISOR);
const name = (file: string) => relative(root, file);
/** The code without its comments (a comment may name /proc). */
const code = (file: string) => readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
const imports = (file: string) =>
  [...readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^;]*? from '(\.[^']+)';/gm)].map((m) =>
    resolve(dirname(file), m[1]!).replace(/\.js$/, '.ts'),
  );

test('no file under supervisor/ is over 250 lines', (t) => {
  const long = files.filter((f) => readFileSync(f, 'utf8').split('\n').length - 1 > MAX_LINES).map(name);
  t.deepEqual(long, []);
});

test('only supervisor/sys/ reads /proc', (t) => {
  const sys = join(SUPERVISOR, 'sys');
  const readers = files.filter((f) => !f.startsWith(sys) && /['`]\/proc\//.test(code(f))).map(name);
  t.deepEqual(readers, []);
});

test("no file imports its own folder's index.ts", (t) => {
  const back = files.filter((f) => imports(f).includes(join(dirname(f), 'index.ts')) && basename(f) !== 'index.ts');
  t.deepEqual(back.map(name), []);
});

test('the imports under supervisor/ form no circle', (t) => {
  const graph = new Map(files.map((f) => [f, imports(f).filter((i) => i.startsWith(SUPERVISOR))]));
  const circles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      circles.push([...path.slice(path.indexOf(f)), f].map(name).join(' -> '));
      return;
    }
    state.set(f, 'open');
    for (const next of graph.get(f) ?? []) visit(next, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  t.deepEqual(circles, []);
});

test('no code outside supervisor/handover/ asks for a handover strategy by name', (t) => {
  const handover = join(SUPERVISOR, 'handover');
  const asks = files.filter((f) => !f.startsWith(handover) && /[!=]==? ?'(pidfd|inherit|port)'/.test(code(f)));
  t.deepEqual(asks.map(name), []);
});
