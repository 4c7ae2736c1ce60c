// One `git fetch` of a mirror from its upstream (what it copies, its timeout,
// its metrics and failure record), and what is announced after it: the
// fetched event and a moved default branch. When to fetch is
// mirror-freshness.ts's decision; mirror.ts runs the fetch on the mirror's
// lock and keeps the freshness bookkeeping.

import type { HoardError } from '../core/errors.ts';
import { runGit } from './git-process.ts';
import { headCommit, symbolicHead } from './git-queries.ts';
import { type MirrorActivity, type MirrorContext, recordFailure } from './mirror-context.ts';
import { emitFetched, emitMoved } from './mirror-events.ts';
import type { RepoId } from './upstreams.ts';

/**
 * What a mirror copies: what `git clone` fetches (branches and tags), unless
 * every ref is asked for. Hosts advertise thousands of `refs/pull/*` (eslint:
 * ~10k, twice the objects of its branches); copying them made a cold clone
 * through hoard 3× slower than a direct one. --prune prunes only inside these
 * namespaces, so refs of other namespaces left by an older all-refs mirror are
 * removed at prepare() (they would otherwise be served, never refreshed).
 */
export function mirrorRefspecs(all: boolean): string[] {
  return all ? ['+refs/*:refs/*'] : ['+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'];
}

/** `git fetch --prune` of the mirror's refspecs from `url`; a failure is counted, recorded and thrown. */
export async function fetchMirror(
  mirror: { id: RepoId; dir: string; activity: MirrorActivity },
  ctx: MirrorContext,
  url: string,
): Promise<void> {
  const { metrics, log } = ctx;
  const end = metrics.fetchDuration.startTimer({ kind: 'fetch' });
  try {
    const refspecs = mirrorRefspecs(ctx.mirrorAllRefs);
    await runGit(['fetch', '--prune', '--quiet', '--no-write-fetch-head', '--', url, ...refspecs], {
      cwd: mirror.dir,
      timeoutMs: ctx.fetchTimeoutMs,
      signal: ctx.signal,
    });
  } catch (err) {
    end();
    const timedOut = Boolean((err as HoardError).details?.timedOut);
    metrics.fetches.inc({ result: timedOut ? 'timeout' : 'error' });
    recordFailure(mirror.activity, err);
    // debug: a request served stale logs its own warning; the warm-up summarises failures.
    log.debug({ repo: mirror.id.key, err: (err as Error).message }, 'git: upstream fetch failed');
    throw err;
  }
  end();
  metrics.fetches.inc({ result: 'ok' });
}

/** onFetched with HEAD's commit `before` and now; defaultBranchMoved when it changed. */
export async function announceFetch(
  mirror: { id: RepoId; dir: string },
  ctx: MirrorContext,
  before: string | null | undefined,
): Promise<void> {
  const after = await headCommit(mirror.dir);
  emitFetched(ctx, { key: mirror.id.key, dir: mirror.dir, before, after });
  if (after && after !== before) {
    const ref = await symbolicHead(mirror.dir);
    emitMoved(ctx, mirror, ref ?? 'HEAD', before ?? null, after);
  }
}

/** onFetched of a new mirror (`created`, no `before`), once it is maintained. */
export async function announceCreated(
  mirror: { id: RepoId; dir: string },
  ctx: MirrorContext,
): Promise<void> {
  if (ctx.fetched.size === 0) return;
  const after = await headCommit(mirror.dir).catch(() => null);
  emitFetched(ctx, { key: mirror.id.key, dir: mirror.dir, before: null, after, created: true });
}
