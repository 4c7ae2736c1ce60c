// When the server reads its own data directory with synchronous calls (a
// small blob whole, or the chunks of a stream): a read from the page cache
// costs microseconds on the event loop, against two thread-pool hand-offs
// and a promise each; a read that waits on the disk blocks every client.
// The guard times each synchronous read and hands reads to the thread pool
// for PAUSE_MS once the disk looks slow. One slow read proves little (on a
// busy machine the process is simply descheduled now and then, mid-read or
// not), so it pauses only when SLOW_TO_PAUSE of the last 16 reads took more
// than slowMs: a cold or congested disk then blocks the loop for a few
// reads, and after that for at most one read per pause while it stays slow.

/** A synchronous read slower than this probably did not come from the page cache. */
const SLOW_READ_MS = 2;
const SLOW_TO_PAUSE = 3;
const PAUSE_MS = 1000;

export class SyncReadGuard {
  readonly #slowMs: number;
  readonly #now: () => number;
  /** now() before which reads should go through the thread pool. */
  #pausedUntil = 0;
  /** Which of the last 16 reads were slow, one bit each (newest lowest). */
  #slow = 0;
  /** Times the guard paused synchronous reads, since start. */
  pauses = 0;

  /** `slowMs` and `now` (performance.now) are for tests. */
  constructor(opts: { slowMs?: number; now?: () => number } = {}) {
    this.#slowMs = opts.slowMs ?? SLOW_READ_MS;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Whether reads should go through the thread pool for now. */
  get paused(): boolean {
    return this.#now() < this.#pausedUntil;
  }

  /** Runs one synchronous read and times it. */
  run<T>(read: () => T): T {
    const t0 = this.#now();
    const out = read();
    const ms = this.#now() - t0;
    const slow = ms > this.#slowMs;
    this.#slow = ((this.#slow << 1) | (slow ? 1 : 0)) & 0xffff;
    if (slow && bitCount(this.#slow) >= SLOW_TO_PAUSE) {
      this.#pausedUntil = t0 + ms + PAUSE_MS;
      this.pauses++;
    }
    return out;
  }
}

function bitCount(n: number): number {
  let c = 0;
  for (let x = n; x; x &= x - 1) c++;
  return c;
}
