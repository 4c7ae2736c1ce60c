// What every mirror of one manager shares (settings, clock, metrics, the
// shutdown signal, the subscribers) and what one mirror did, for the console.
// Built once by mirror-manager.ts and handed to each Mirror (mirror.ts) and
// the modules doing its work.

import type { Clock } from '../core/clock.ts';
import { redactSecrets } from '../core/errors.ts';
import type { Subscribers } from '../core/subscribers.ts';
import type { GitLogger } from './git-logger.ts';
import type { GitMetrics } from './git-metrics.ts';
import type { DefaultBranchMovedEvent, FetchedEvent } from './mirror-events.ts';
import type { Upstreams } from './upstreams.ts';

/** What every mirror of one manager shares: settings, clock, metrics, the shutdown signal. */
export interface MirrorContext {
  readonly tmpRoot: string;
  readonly upstreams: Upstreams;
  readonly fetchTimeoutMs: number;
  readonly processTimeoutMs: number;
  readonly headCheckIntervalMs: number;
  /** Every upstream ref (refs/pull/*…) instead of refs/heads and refs/tags only (mirrorRefspecs, mirror-fetch.ts). */
  readonly mirrorAllRefs: boolean;
  readonly clock: Clock;
  readonly metrics: GitMetrics;
  /** Aborted at close(): clones, fetches and maintenance in flight are killed. */
  readonly signal: AbortSignal;
  readonly log: GitLogger;
  readonly fetched: Subscribers<FetchedEvent>;
  readonly defaultBranchMoved: Subscribers<DefaultBranchMovedEvent>;
  /** Runs `p` in the background: errors logged, awaited by close(). */
  track(p: Promise<unknown>): void;
}

/** What one mirror did in this process, for the console (counted where the global metrics are). */
export interface MirrorActivity {
  /** Ref advertisements served older than the staleness bound. */
  staleServes: number;
  /** upload-pack requests served (clones and fetches by clients). */
  uploadPacks: number;
  fetchErrors: number;
  /** The last failed clone or fetch: when (wall ms) and git's words, redacted and shortened. */
  lastError: { at: number; message: string } | null;
}

/** A failed clone or fetch, as the console shows it. */
export function recordFailure(activity: MirrorActivity, err: unknown): void {
  const message = redactSecrets(String((err as Error)?.message ?? err)).slice(0, 500);
  activity.fetchErrors++;
  activity.lastError = { at: Date.now(), message };
}
