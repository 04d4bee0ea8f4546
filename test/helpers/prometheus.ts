import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real Prometheus (Debian's `prometheus`) on 127.0.0.1, its own data directory, scraping `targets` every second. */
export class Prometheus {
  private readonly dir = mkdtempSync(join(tmpdir(), 'baton-prometheus-'));
  private readonly child: ChildProcess;
  private log = '';
  readonly ready: Promise<number>;

  constructor(targets: string[], ruleFiles: string[] = []) {
    const config = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: ruleFiles,
      scrape_configs: [{ job_name: 'baton', static_configs: [{ targets }] }],
    };
    // JSON is YAML.
    writeFileSync(join(this.dir, 'prometheus.yml'), JSON.stringify(config));
    const args = [`--config.file=${join(this.dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(this.dir, 'data')}`];
    this.child = spawn('prometheus', [...args, '--web.listen-address=127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`prometheus was not ready within 30 s:\n${this.log}`)), 30_000);
      const read = (d: Buffer) => {
        this.log += d;
        const port = /msg="Listening on" address=127\.0\.0\.1:(\d+)/.exec(this.log)?.[1];
        // Its API answers 503 until the TSDB is open.
        if (port && this.log.includes('Server is ready to receive web requests')) {
          clearTimeout(timer);
          resolve(Number(port));
        }
      };
      this.child.stdout!.on('data', read);
      this.child.stderr!.on('data', read);
      this.child.once('exit', (code) => reject(new Error(`prometheus exited ${code}:\n${this.log}`)));
    });
  }

  /** GET `path` of Prometheus' HTTP API: its `data`. */
  async api<T>(path: string): Promise<T> {
    const port = await this.ready;
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
          let data = '';
          res.setEncoding('utf8').on('data', (d: string) => (data += d));
          res.on('end', () => resolve(data));
        })
        .on('timeout', function (this: http.ClientRequest) {
          this.destroy(new Error('prometheus did not answer within 5 s'));
        })
        .on('error', reject);
    });
    const r = JSON.parse(body) as { status: string; data: T; error?: string };
    if (r.status !== 'success') throw new Error(`prometheus ${path}: ${r.error}`);
    return r.data;
  }

  /** The value of an instant query that returns one sample (undefined if none). */
  async value(query: string): Promise<number | undefined> {
    type Vector = { result: Array<{ value: [number, string] }> };
    const data = await this.api<Vector>(`/api/v1/query?query=${encodeURIComponent(query)}`);
    return data.result[0] === undefined ? undefined : Number(data.result[0].value[1]);
  }

  /** Polls `query` every 500 ms until it equals `want` or `ms` pass; the last value seen. */
  async until(query: string, want: number, ms = 30_000): Promise<number | undefined> {
    const end = Date.now() + ms;
    let seen = await this.value(query);
    while (seen !== want && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 500));
      seen = await this.value(query);
    }
    return seen;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
