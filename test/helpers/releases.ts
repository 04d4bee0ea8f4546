// Builds of baton from other commits, and a deploy directory whose `current` link a test re-points.
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { cp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { root } from './baton.js';

/**
 * The earlier baton a self-upgrade must work across, to and from the current build: the last commit on
 * main before issue 11's restructuring. The BATON_RESUME format is a promise between two builds, so this
 * is bumped only when that format changes on purpose (and the change says so).
 */
export const BASELINE_COMMIT = 'aa913aa';

/** What a release holds: baton's build, its package.json (ESM, the child export) and bpf/steer.o. */
const SHIPPED = ['dist', 'package.json', 'bpf'];

/** The repo has `commit` (a shallow clone may not). */
export function hasCommit(commit: string): boolean {
  const r = spawnSync('git', ['-C', root, 'cat-file', '-e', `${commit}^{commit}`], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * Builds baton as of `commit` into a new temporary directory (with the repo's node_modules linked in)
 * and returns it: `dist/supervisor/cli.js` there is that commit's baton. Takes a few seconds (tsc).
 */
export async function buildAt(commit: string): Promise<string> {
  const run = promisify(execFile);
  const dir = mkdtempSync(join(tmpdir(), `baton-build-${commit}-`));
  const tar = join(dir, 'source.tar');
  const sources = ['supervisor', 'bpf', 'tsconfig.json', 'package.json'];
  await run('git', ['-C', root, 'archive', '--format=tar', '-o', tar, commit, ...sources]);
  await run('tar', ['-xf', tar, '-C', dir]);
  rmSync(tar);
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  await run(join(root, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')], { timeout: 120_000 });
  chmodSync(join(dir, 'dist/supervisor/cli.js'), 0o755);
  return dir;
}

/**
 * A deploy directory as a release tool lays it out: `releases/N` (a copy of a build) and a `current`
 * link to one of them. baton is started through `cli` (a path through `current`), so re-pointing the link
 * decides which build a self-upgrade (SIGUSR2) execs.
 */
export class Deploy {
  readonly dir = mkdtempSync(join(tmpdir(), 'baton-deploy-'));
  readonly link = join(this.dir, 'current');
  readonly cli = join(this.link, 'dist/supervisor/cli.js');
  private count = 0;

  /**
   * Copies the build in `build` (a directory with dist/, package.json and bpf/, like the repo root) into a
   * new release, points `current` at it (`ln -sfn`) and removes the release `current` pointed at before:
   * from then on that path reaches only the new build. Returns the new release's directory. The copying
   * is asynchronous: a load running in this process meanwhile is not stalled by it.
   */
  async activate(build: string): Promise<string> {
    const release = join(this.dir, 'releases', String(++this.count));
    for (const f of SHIPPED) await cp(join(build, f), join(release, f), { recursive: true });
    await symlink(join(root, 'node_modules'), join(release, 'node_modules'));
    const previous = existsSync(this.link) ? readlinkSync(this.link) : undefined;
    await promisify(execFile)('ln', ['-sfn', release, this.link]);
    if (previous) await rm(previous, { recursive: true, force: true });
    return release;
  }

  /** The release `current` points at. */
  get active(): string {
    return readlinkSync(this.link);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
