// What this process knows about how fresh one mirror's refs are: when the
// last successful fetch (or creation) of this process started, the pushes
// forwarded upstream since, and the directory's identity at that fetch. The
// policy that reads it (the freshness bound, joining a fetch in flight) is
// mirror-freshness.ts; the fetches that earn it run in mirror.ts.
//
// Freshness is only earned by a fetch that succeeded in this process and saw
// no push go through while it ran; reset() (a directory replaced or restored
// on disk) makes the mirror infinitely stale again.

import type { ColdFill } from './mirror-cold-fill.ts';
import { dirIdentity } from './mirror-disk.ts';

/** A fetch in flight: waiters may join it when it started late enough for them. */
export interface InflightFetch {
  /** Clock time at which the fetch was started (its refs are at least this new). */
  startedAt: number;
  /** Mirror.invalidations when it was started: a change by its end means a push may have outdated it. */
  invalidations: number;
  promise: Promise<void>;
}

/** Taken when a fetch or creation starts, given back when it succeeded. */
export interface FetchStart {
  startedAt: number;
  invalidations: number;
}

export class MirrorFreshnessRecord {
  /** Clock time at which the last successful fetch of this process started; null: infinitely stale. */
  #freshAt: number | null = null;
  /**
   * Pushes forwarded upstream (invalidate()) so far. A fetch or clone that
   * was running when one went through may have read the upstream's refs
   * before it: it keeps what it wrote but does not make the mirror fresh
   * (the pusher's next clone would otherwise miss its own push for up to the
   * freshness bound).
   */
  #invalidations = 0;
  /** The cold fill creating the mirror, while it runs: a push outdates its refs too. */
  #fill: ColdFill | null = null;
  /** Identity (device, inode, birth time) of the directory when last fetched; a change means it was replaced. */
  #ino: string | null = null;

  get freshAt(): number | null {
    return this.#freshAt;
  }

  /** Changes with every invalidate(): a fetch that saw it change while it ran left the mirror stale. */
  get invalidations(): number {
    return this.#invalidations;
  }

  /** Forgets the freshness of the directory (replaced or restored on disk). */
  reset(): void {
    this.#freshAt = null;
    this.#ino = null;
  }

  /**
   * Stale after a push went through to the upstream: the next ref
   * advertisement fetches, and no fetch or cold fill already running counts
   * as fresh when it ends (it may have read the refs before the push).
   */
  invalidate(): void {
    this.#freshAt = null;
    this.#invalidations++;
    this.#fill?.outdate();
  }

  /** The cold fill running (outdated by invalidate()), or null once it ended. */
  set fill(fill: ColdFill | null) {
    this.#fill = fill;
  }

  start(now: number): FetchStart {
    return { startedAt: now, invalidations: this.#invalidations };
  }

  /** A fetch or creation taken at `start` succeeded on the directory of identity `ino`. */
  succeeded(start: FetchStart, ino: string | null): void {
    this.#freshAt = this.#invalidations === start.invalidations ? start.startedAt : null;
    this.#ino = ino;
  }

  /** Whether the directory at `dir` is no longer the one last fetched. */
  replaced(dir: string): boolean {
    if (this.#ino === null) return false;
    return dirIdentity(dir) !== this.#ino;
  }
}
