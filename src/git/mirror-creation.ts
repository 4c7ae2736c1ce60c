// A mirror's creation: the whole upstream copied into a temp directory under
// the manager's tmp root, hoard.json written, then renamed into place, so a
// mirror directory either does not exist or is complete. One upstream v2
// fetch teed to the first clients (mirror-cold-fill.ts) when the upstream
// speaks it; `git clone` otherwise. Runs under the mirror's lock (mirror.ts),
// which also keeps the freshness bookkeeping.

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HoardError } from '../core/errors.ts';
import { runGit } from './git-process.ts';
import { ColdFill } from './mirror-cold-fill.ts';
import { type MirrorActivity, type MirrorContext, recordFailure } from './mirror-context.ts';
import { MIRROR_CONFIG, type MirrorMeta } from './mirror-disk.ts';
import { FallBack } from './mirror-upstream-v2.ts';
import type { RepoId } from './upstreams.ts';

export interface MirrorCreationHooks {
  /** The cold fill running (a push outdates it), then null once the creation ended either way. */
  fill(fill: ColdFill | null): void;
  /** The mirror is in place with `meta` as its hoard.json, created at `wall`: before the fill's cleanup. */
  created(meta: MirrorMeta, wall: number): void;
}

/**
 * Creates the mirror `dir` of `id`. A failure is counted, logged and thrown as
 * a client-safe HOARD_EGIT, unless the directory appeared meanwhile (a
 * restore put it there): then it returns false, without `created`.
 */
export async function createMirror(
  mirror: { id: RepoId; dir: string; activity: MirrorActivity },
  ctx: MirrorContext,
  hooks: MirrorCreationHooks,
): Promise<boolean> {
  const { id, dir } = mirror;
  const { clock, metrics, log } = ctx;
  const url = ctx.upstreams.resolve(id.path);
  const tmp = join(ctx.tmpRoot, `${basename(dir)}-${randomUUID()}`);
  const config = Object.entries(MIRROR_CONFIG).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const wall = Date.now();
  const end = metrics.fetchDuration.startTimer({ kind: 'clone' });
  log.info({ repo: id.key }, 'git: cloning new mirror');
  const meta = { path: id.path, createdAt: wall, lastFetchAt: wall, lastUsedAt: wall };
  let fill: ColdFill | null = null;
  try {
    // One upstream transfer, teed to the first clients (mirror-cold-fill.ts) …
    fill = new ColdFill({
      key: id.key,
      url,
      dir: tmp,
      spoolPath: `${tmp}.pack`,
      prefixes: ctx.mirrorAllRefs ? [] : ['refs/heads/', 'refs/tags/'],
      signal: ctx.signal,
      timeoutMs: ctx.processTimeoutMs,
      clock,
      log,
    });
    hooks.fill(fill);
    let filled = false;
    try {
      await fill.run();
      filled = true;
    } catch (err) {
      if (!(err instanceof FallBack)) throw err;
      log.info({ repo: id.key, reason: err.message }, 'git: mirroring with git clone');
      await rm(tmp, { recursive: true, force: true });
    }
    // … or, for an upstream that cannot be asked that way (ssh, git, not v2), `git clone`:
    // `--bare` copies branches and tags (and HEAD), `--mirror` every ref.
    if (!filled) {
      const mode = ctx.mirrorAllRefs ? '--mirror' : '--bare';
      await runGit(['clone', mode, '--quiet', ...config, '--', url, tmp], {
        timeoutMs: ctx.processTimeoutMs,
        signal: ctx.signal,
      });
    }
    await writeFile(join(tmp, 'hoard.json'), `${JSON.stringify(meta)}\n`);
    await mkdir(dirname(dir), { recursive: true });
    await rename(tmp, dir);
  } catch (err) {
    hooks.fill(null);
    end();
    metrics.clones.inc({ result: 'error' });
    recordFailure(mirror.activity, err);
    await fill?.cleanup();
    await rm(tmp, { recursive: true, force: true });
    if (existsSync(join(dir, 'HEAD'))) return false;
    // The upstream's own words (git's stderr: host names, addresses, paths) go to the
    // log only; the client learns that the upstream failed, not how (SSRF probing).
    log.warn({ repo: id.key, err: (err as Error).message }, 'git: mirror clone failed');
    throw new HoardError('HOARD_EGIT', `could not mirror ${id.path}: upstream fetch failed`, {
      cause: err,
      hint: 'check that the upstream exists and is reachable from the hoard server (details in its log)',
      details: { repo: id.key, clientSafe: true },
    });
  }
  hooks.fill(null);
  end();
  metrics.clones.inc({ result: 'ok' });
  hooks.created(meta, wall);
  // New requests are served by the mirror from now on; readers of the spool keep their descriptor.
  await fill?.cleanup();
  log.info({ repo: id.key, ms: Date.now() - wall }, 'git: mirror cloned');
  return true;
}
