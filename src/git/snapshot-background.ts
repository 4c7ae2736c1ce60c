// After a fetch moves a repo's default branch, the new commit's snapshot is
// generated in the background (debounced per repo), for repos whose
// snapshots have been asked for by their default branch: the next request
// for that snapshot finds it made.

import type { SnapshotInfo } from './snapshot-service.ts';
import type { SnapshotLogger } from './snapshot-service-deps.ts';

/** Generates (or finds) the snapshot of `commit` with the archive origin of base URL `base`. */
export type BackgroundSnapshot = (
  key: string,
  dir: string,
  commit: string,
  base: string,
) => Promise<SnapshotInfo>;

export class BackgroundSnapshots {
  readonly #publicUrl: string | undefined;
  readonly #debounceMs: number;
  readonly #log: SnapshotLogger;
  readonly #generate: BackgroundSnapshot;
  /** Repos whose snapshots were asked for → the base URL to use for background generation. */
  readonly #watched = new Map<string, { path: string; base: string }>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #running = new Set<Promise<unknown>>();
  #closed = false;

  constructor(
    publicUrl: string | undefined,
    debounceMs: number,
    log: SnapshotLogger,
    generate: BackgroundSnapshot,
  ) {
    this.#publicUrl = publicUrl;
    this.#debounceMs = debounceMs;
    this.#log = log;
    this.#generate = generate;
  }

  /** The default branch of `key` was asked for: its next moves are generated in the background. */
  watch(key: string, path: string, base: string): void {
    this.#watched.set(key, { path, base });
  }

  /** Generations in progress. */
  get running(): ReadonlySet<Promise<unknown>> {
    return this.#running;
  }

  /** Whether a background generation is scheduled (debouncing) or running. */
  get busy(): boolean {
    return this.#timers.size > 0 || this.#running.size > 0;
  }

  defaultBranchMoved(ev: { key: string; path: string; dir: string; to: string }): void {
    if (this.#closed) return;
    const w = this.#watched.get(ev.key);
    if (!w || !(this.#publicUrl ?? w.base)) return; // nobody asked for this repo's snapshots
    clearTimeout(this.#timers.get(ev.key));
    const timer = setTimeout(() => {
      this.#timers.delete(ev.key);
      if (this.#closed) return;
      const p = this.#generate(ev.key, ev.dir, ev.to, w.base)
        .then((info) =>
          this.#log.debug(
            { repo: ev.key, commit: ev.to, digest: info.digest },
            'git: background snapshot ready',
          ),
        )
        .catch((err) =>
          this.#log.warn(
            { repo: ev.key, commit: ev.to, err: (err as Error).message },
            'git: background snapshot failed',
          ),
        )
        .finally(() => this.#running.delete(p));
      this.#running.add(p);
    }, this.#debounceMs);
    timer.unref();
    this.#timers.set(ev.key, timer);
  }

  /** Nothing new starts; scheduled generations are dropped (running ones are awaited by the service). */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}
