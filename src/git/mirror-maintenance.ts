// Keeping a mirror cheap to serve, each step run by mirror.ts under the
// mirror's lock: the periodic maintenance (geometric repack with a multi-pack
// bitmap, refs packed, commit-graph), refs packed again after a fetch,
// following the upstream's default branch (`git fetch` never moves HEAD), and
// dropping the refs an older all-refs mirror left outside refs/heads and
// refs/tags. Failures are logged and counted, never thrown: the mirror still
// serves, only slower.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runGit } from './git-process.ts';
import { headCommit, revParse, symbolicHead, upstreamHeadBranch } from './git-queries.ts';
import type { MirrorContext } from './mirror-context.ts';
import { MAINTENANCE_CONFIG } from './mirror-disk.ts';
import { emitMoved } from './mirror-events.ts';
import type { RepoId } from './upstreams.ts';

type MirrorPlace = { id: RepoId; dir: string };

/** Geometric repack with a multi-pack bitmap, refs packed, commit-graph; `done` once all three ran. */
export async function maintainMirror(
  mirror: MirrorPlace,
  ctx: MirrorContext,
  done: () => void,
): Promise<void> {
  const { metrics, log } = ctx;
  const t = Date.now();
  try {
    const opts = { cwd: mirror.dir, timeoutMs: ctx.processTimeoutMs, signal: ctx.signal };
    await runGit(
      [
        ...MAINTENANCE_CONFIG,
        'repack',
        '-d',
        '--geometric=2',
        '--write-midx',
        '--write-bitmap-index',
        '--quiet',
      ],
      opts,
    );
    await runGit(['pack-refs', '--all', '--prune'], opts);
    await runGit(['commit-graph', 'write', '--reachable', '--split', '--no-progress'], opts);
    done();
    metrics.maintenance.inc({ result: 'ok' });
    log.debug({ repo: mirror.id.key, ms: Date.now() - t }, 'git: maintenance done');
  } catch (err) {
    metrics.maintenance.inc({ result: 'error' });
    log.warn({ repo: mirror.id.key, err: (err as Error).message }, 'git: maintenance failed');
  }
}

/** `git pack-refs --all --prune`, when the refs directory holds loose refs; failures only logged. */
export async function packLooseRefs(mirror: MirrorPlace, ctx: MirrorContext): Promise<void> {
  try {
    const entries = await readdir(join(mirror.dir, 'refs'), { recursive: true, withFileTypes: true });
    if (!entries.some((e) => !e.isDirectory())) return;
    await runGit(['pack-refs', '--all', '--prune'], {
      cwd: mirror.dir,
      timeoutMs: ctx.fetchTimeoutMs,
      signal: ctx.signal,
    });
  } catch (err) {
    ctx.log.debug({ repo: mirror.id.key, err: (err as Error).message }, 'git: pack-refs failed');
  }
}

/**
 * Points the mirror's HEAD at the upstream's default branch when that changed
 * (`git fetch` never updates HEAD); defaultBranchMoved when HEAD's commit changes.
 */
export async function followUpstreamHead(
  mirror: MirrorPlace,
  ctx: MirrorContext,
  url: string,
): Promise<void> {
  try {
    const target = await upstreamHeadBranch(url, {
      timeoutMs: ctx.fetchTimeoutMs,
      signal: ctx.signal,
    });
    const current = await symbolicHead(mirror.dir);
    if (!target || target === current) return;
    if ((await revParse(mirror.dir, target)) === null) return; // not fetched (yet)
    const before = await headCommit(mirror.dir);
    await runGit(['symbolic-ref', 'HEAD', target], { cwd: mirror.dir });
    ctx.log.info({ repo: mirror.id.key, from: current, to: target }, 'git: upstream default branch changed');
    const after = await headCommit(mirror.dir);
    if (after && after !== before) emitMoved(ctx, mirror, target, before, after);
  } catch (err) {
    ctx.log.debug(
      { repo: mirror.id.key, err: (err as Error).message },
      'git: could not read the upstream HEAD',
    );
  }
}

/** Removes refs outside refs/heads and refs/tags (an all-refs mirror from before): never fetched again. */
export async function dropOtherRefs(mirror: MirrorPlace, ctx: MirrorContext): Promise<void> {
  const refs = (
    await runGit(['for-each-ref', '--format=%(refname)'], {
      cwd: mirror.dir,
      timeoutMs: ctx.processTimeoutMs,
    })
  ).stdout
    .split('\n')
    .filter((r) => r && !r.startsWith('refs/heads/') && !r.startsWith('refs/tags/'));
  if (!refs.length) return;
  await runGit(['update-ref', '--stdin'], {
    cwd: mirror.dir,
    timeoutMs: ctx.processTimeoutMs,
    input: refs.map((r) => `delete ${r}\n`).join(''),
  });
  ctx.log.info(
    { repo: mirror.id.key, refs: refs.length },
    'git: removed refs outside refs/heads and refs/tags',
  );
}
