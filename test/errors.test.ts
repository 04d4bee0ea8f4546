// The error-code catalogue against the code that throws and the page that documents it: no process is started.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { type ErrorCode, errorCodes, isErrorCode } from '../supervisor/error-codes.js';
import { BatonError, SysError, usageError } from '../supervisor/errors.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const catalogue = Object.keys(errorCodes) as ErrorCode[];
const page = read('docs/errors.md');

/** Code → exit code, from the page's headings: ### `ERR_BATON_X` (exit N). */
const headings = page.matchAll(/^### `(ERR_BATON_[A-Z_]+)` \(exit (\d+)\)$/gm);
const documented = new Map([...headings].map((m) => [m[1]!, Number(m[2])]));

/** Every ERR_BATON_* string literal in the source, with the files it is in. */
function literals(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const files = readdirSync(join(root, 'supervisor'), { recursive: true, encoding: 'utf8' });
  for (const file of files.filter((f) => f.endsWith('.ts'))) {
    for (const m of read(join('supervisor', file)).matchAll(/['"`](ERR_BATON_[A-Z_]+)['"`]/g)) {
      found.set(m[1]!, [...(found.get(m[1]!) ?? []), file]);
    }
  }
  return found;
}

test('every catalogued code is on docs/errors.md, with the same exit code', (t) => {
  for (const code of catalogue) t.is(documented.get(code), errorCodes[code].exit, code);
});

test('every code on docs/errors.md (and on any other page) is catalogued', (t) => {
  const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'));
  const pages = ['README.md', ...docs.map((f) => `docs/${f}`)];
  for (const path of pages) {
    for (const [code] of read(path).matchAll(/ERR_BATON_[A-Z_]+/g)) t.true(isErrorCode(code), `${code} on ${path}`);
  }
  t.is(documented.size, catalogue.length);
});

test('every code in the source is catalogued, and every catalogued code is in the source', (t) => {
  const found = literals();
  for (const [code, files] of found) t.true(isErrorCode(code), `${code} in ${files.join(', ')}`);
  t.deepEqual([...found.keys()].sort(), [...catalogue].sort());
});

test("a BatonError's exit code is its code's in the catalogue; a SysError's is 1", (t) => {
  t.is(usageError('m', 'h').exitCode, 2);
  t.is(new BatonError('ERR_BATON_START', 'm', 'h').exitCode, 1);
  t.is(new SysError('bind', 'EADDRINUSE', 98, 'Address in use', 'h').exitCode, 1);
  t.false(isErrorCode('EADDRINUSE'));
});
