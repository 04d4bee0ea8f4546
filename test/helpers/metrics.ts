import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type { Baton } from './baton.js';

/** Where a baton's --metrics serves: a TCP port on 127.0.0.1, or a unix socket path. */
export type Target = { port: number } | { path: string };

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request to `target` (GET /metrics unless told), bounded by `timeoutMs`. */
export function scrape(target: Target, method = 'GET', path = '/metrics', timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const where = 'port' in target ? { host: '127.0.0.1', port: target.port } : { socketPath: target.path };
    const req = http.request({ ...where, method, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The port of baton's --metrics, from its `metrics` event. */
export async function metricsPort(baton: Baton): Promise<number> {
  const e = await baton.event('metrics');
  return Number(String(e.address).split(':').pop());
}

/** The value of the sample `name{labels}` in an exposition (labels as written, e.g. `result="active"`). */
export function sample(text: string, name: string, labels = ''): number | undefined {
  const head = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length).split(' ')[0]);
}

/** `promtool ARGS` with `input` on stdin: its exit code and output. */
export function promtool(args: string[], input?: string): { code: number | null; output: string } {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}
