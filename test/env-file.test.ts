// --env-file's syntax: systemd's EnvironmentFile= (systemd.exec(5)), parsed by baton.
import test from 'ava';
import { EnvFileError, parseEnvFile } from '../supervisor/env-file.js';

test('KEY=VALUE lines; comments, empty lines and lines without = are ignored', (t) => {
  const text = '# comment\n; also\n\nA=1\n  B = two words  \nno equals sign\nC=\n';
  t.deepEqual(parseEnvFile(text, 'f'), { A: '1', B: 'two words', C: '' });
});

test('quotes: single verbatim, double with \\" \\\\ \\` \\$ and continuations, both across lines', (t) => {
  const text = [
    `S='a "b" \\n $x'`,
    `D="say \\"hi\\" \\\\ \\$HOME \\q"`,
    `M='line one`,
    `line two'`,
    `C="joined \\`,
    `here"`,
    `U=a\\ b\\\\c`,
    `L=first \\`,
    `second`,
  ].join('\n');
  t.deepEqual(parseEnvFile(text, 'f'), {
    S: 'a "b" \\n $x',
    D: 'say "hi" \\ $HOME \\q',
    M: 'line one\nline two',
    C: 'joined here',
    U: 'a b\\c',
    L: 'first second',
  });
});

test('later lines win; CRLF line ends lose their CR', (t) => {
  t.deepEqual(parseEnvFile('A=1\r\nA=2\r\n', 'f'), { A: '2' });
});

const bad: Array<[string, string]> = [
  ['A=1\n1B=2\n', 'f:2: "1B" is not a variable name (letters, digits and _, not first a digit)'],
  ['A=1\nB-C=2\n', 'f:2: "B-C" is not a variable name (letters, digits and _, not first a digit)'],
  ['A="x\ny\n', 'f:1: the double quote is never closed'],
  ["A=1\n\nB='x\n", 'f:3: the single quote is never closed'],
  ['A="x" y\n', 'f:1: text after the closing quote'],
  ['A=\0\n', 'f: it holds a NUL byte'],
];
for (const [text, message] of bad) {
  test(`refused with file and line: ${JSON.stringify(text)}`, (t) => {
    const err = t.throws(() => parseEnvFile(text, 'f'), { instanceOf: EnvFileError });
    t.is(err?.message, message);
  });
}
