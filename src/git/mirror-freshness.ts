// The freshness bound: a ref advertisement is never older than
// `maxStalenessMs`, and fetches for objects a mirror lacks are bounded.
//
// Freshness is only ever earned by a fetch that succeeded *in this process*:
// `freshAt` is the clock time at which that fetch's git process started (so
// the refs it wrote are at least that new). A mirror found on disk at
// start-up, restored or replaced on disk, starts with `freshAt = null`, i.e.
// infinitely stale, whatever its persisted last-fetch time says. The persisted
// time (hoard.json) only feeds the `X-Hoard-Stale` header and warm-up order.
//
// A request that needs refs at time t0 needs `freshAt >= t0 - maxStaleness`.
// It joins the fetch in flight when that fetch started late enough to satisfy
// it, otherwise waits for it and starts (or joins) the next one. It waits at
// most `fetchTimeoutMs` in total, then the mirror is served as it is (stale,
// counted, logged, and marked with X-Hoard-Stale).
//
// All of it reads time from the injected Clock, so its tests advance time
// instead of sleeping (test/git/mirror-manager.test.ts).

import { statSync } from 'node:fs';
import { type Clock, raceTimeout } from '../core/clock.ts';
import { DEFAULTS } from '../core/defaults.ts';
import type { GitLogger } from './git-logger.ts';
import type { GitMetrics } from './git-metrics.ts';
import { missingObjects } from './git-queries.ts';
import type { Mirror } from './mirror.ts';
import { notRefTips } from './ref-tips.ts';

export interface FreshnessOptions {
  clock: Clock;
  maxStalenessMs: number;
  fetchTimeoutMs: number;
  unknownObjectFetchesPerWindow: number;
  unknownObjectFetchWindowMs: number;
  metrics: GitMetrics;
  /** Read at each use: the manager's logger may be set after construction. */
  log(): GitLogger;
}

export class MirrorFreshness {
  readonly #o: FreshnessOptions;
  /** Per mirror key: when a stale serve was last logged as a warning (clock time). */
  #staleWarnedAt = new Map<string, number>();
  /** Per mirror key: start times of the fetches for unknown objects in the current window. */
  #unknownFetchTimes = new Map<string, number[]>();

  constructor(opts: FreshnessOptions) {
    this.#o = opts;
  }

  /** The clock time a request arriving now is measured from (take it before any await). */
  now(): number {
    return this.#o.clock.now();
  }

  /**
   * Enforces the bound for a ref advertisement asked for at `t0`: null when
   * the mirror is fresh enough, else (after at most fetchTimeoutMs) the
   * staleness in seconds it is served with.
   */
  refsFresh(m: Mirror, t0: number): Promise<number | null> {
    return this.#ensureFresh(m, t0 - this.#o.maxStalenessMs, t0 + this.#o.fetchTimeoutMs);
  }

  /**
   * Of `ids`, those the mirror lacks even after a fetch (a client wanting a
   * commit just pushed upstream). Unknown ids are attacker-chosen (any client
   * can ask for random commits), so these fetches are bounded per mirror: a
   * request joins the fetch in flight if there is one (20 concurrent requests
   * for unknown commits cause one fetch), and otherwise starts one only within
   * the budget of unknownObjectFetchesPerWindow per unknownObjectFetchWindowMs;
   * beyond it the ids are reported missing without contacting the upstream
   * (logged, counted).
   */
  async missingAfterFetch(m: Mirror, ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    // The mirror's own ref tips (what ls-refs advertised) are there: no git process for
    // them (ref-tips.ts); git is asked about the rest only.
    const unknown = await notRefTips(m.dir, ids);
    if (unknown.length === 0) return [];
    let missing = await missingObjects(m.dir, unknown);
    if (missing.length === 0) return [];
    const t0 = this.now();
    const joined = m.inflight;
    if (joined) {
      await joined.promise.catch(() => {});
      missing = await missingObjects(m.dir, missing);
      // A fetch that started after this request could see all it wants; one that started
      // before may predate a push: then one more, shared by everyone in the same position.
      if (missing.length === 0 || joined.startedAt >= t0) return missing;
      const next = m.inflight;
      if (next && next.startedAt >= t0) {
        await next.promise.catch(() => {});
        return missingObjects(m.dir, missing);
      }
    }
    const log = this.#o.log();
    if (!this.#takeUnknownObjectBudget(m.id.key)) {
      this.#o.metrics.unknownObjectFetchesLimited.inc();
      log.info(
        { repo: m.id.key, missing: missing.length },
        'git: wanted objects missing; upstream fetch budget for unknown objects used up, not fetching',
      );
      return missing;
    }
    log.debug({ repo: m.id.key, missing: missing.length }, 'git: wanted objects missing; fetching');
    await this.#ensureFresh(m, t0, t0 + this.#o.fetchTimeoutMs);
    return missingObjects(m.dir, missing);
  }

  /** Takes one unknown-object fetch from the mirror's window budget; false when none is left. */
  #takeUnknownObjectBudget(key: string): boolean {
    const now = this.now();
    const since = now - this.#o.unknownObjectFetchWindowMs;
    const times = (this.#unknownFetchTimes.get(key) ?? []).filter((t) => t > since);
    this.#unknownFetchTimes.set(key, times);
    if (times.length >= this.#o.unknownObjectFetchesPerWindow) return false;
    times.push(now);
    return true;
  }

  /**
   * Waits until `freshAt >= need`, fetching as needed, or until `deadline`
   * (clock time); returns null when fresh, else the staleness in seconds.
   */
  async #ensureFresh(m: Mirror, need: number, deadline: number): Promise<number | null> {
    const { clock } = this.#o;
    let reason = 'timeout';
    // Pushes forwarded upstream before this request: a fetch started before one of them does not
    // satisfy it (the pusher's next clone must see the push).
    const pushes = m.invalidations;
    for (;;) {
      m.checkReplaced();
      if (m.freshAt !== null && m.freshAt >= need) return null;
      const f = m.fetchJoinable();
      const satisfies = f.startedAt >= need && f.invalidations >= pushes;
      const remaining = deadline - clock.now();
      if (remaining <= 0) break;
      const outcome = await raceTimeout(
        f.promise.then(
          () => 'ok' as const,
          (err: Error) => {
            reason = err.message;
            return 'failed' as const;
          },
        ),
        remaining,
        clock,
      );
      if (outcome === 'timeout') {
        reason = `upstream fetch did not finish within ${this.#o.fetchTimeoutMs} ms`;
        break;
      }
      if (outcome === 'failed' && satisfies) break;
      if (outcome === 'ok' && satisfies && m.freshAt === null) {
        // Not fresh after a fetch that should have made it so. A push went through while it
        // ran, after this request arrived: what it fetched is new enough for this request (the
        // mirror stays stale for the next ones). Otherwise the directory was replaced meanwhile.
        if (m.invalidations !== f.invalidations) return null;
        break;
      }
    }
    const stale = staleSeconds(m);
    this.#o.metrics.staleServes.inc();
    m.activity.staleServes++;
    // One warning per mirror per DEFAULTS.gitStaleWarnIntervalMs; every stale serve is counted.
    const now = clock.now();
    const warnedAt = this.#staleWarnedAt.get(m.id.key) ?? Number.NEGATIVE_INFINITY;
    const level = now - warnedAt >= DEFAULTS.gitStaleWarnIntervalMs ? 'warn' : 'debug';
    if (level === 'warn') this.#staleWarnedAt.set(m.id.key, now);
    this.#o
      .log()
      [level](
        { repo: m.id.key, staleSeconds: stale, reason },
        `git: serving ${m.id.key} stale (last successful fetch ${stale} s ago): ${reason}`,
      );
    return stale;
  }
}

/**
 * Seconds since the last successful fetch known (wall clock: it is compared
 * with persisted times), or since the directory changed when none is known.
 */
function staleSeconds(m: Mirror): number {
  let last = m.lastFetchWall;
  if (last === null) {
    try {
      last = statSync(m.dir).mtimeMs;
    } catch {
      last = Date.now();
    }
  }
  return Math.max(0, Math.round((Date.now() - last) / 1000));
}
