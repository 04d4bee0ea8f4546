/**
 * C0 and C1 control characters and DEL (carriage returns, terminal escapes): text a generation controls must
 * not forge log lines, rewrite what an operator's terminal shows, or drive the terminal.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
export const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** `text` with each control character written as `\xHH`, for logs and terminals. */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
