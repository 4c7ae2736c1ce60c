// The anchor pack of a mirror's HEAD (snapshot-anchor.ts), built in the
// background when the mirror is created or fetched (only when HEAD moved
// since the last time). A repository's first snapshot otherwise pays the
// anchor's full delta search (≈ 15-20 s for eslint) while the client waits;
// prebuilt, it pays the rest's pack and the archive only. Deterministic like
// any anchor (a function of the commit graph, built by the same command), so
// the bytes do not depend on whether it was prebuilt. A request that arrives
// while it is built joins it (AnchorPacks is single-flight). Per repository,
// the newest HEAD wins: fetches during a build leave one more build at most.

import { Semaphore } from '../core/pool.ts';
import { type AnchorPacks, anchorsOf } from './snapshot-anchor.ts';
import type { SnapshotLogger } from './snapshot-service-deps.ts';

export class AnchorPrebuilds {
  readonly #anchors: AnchorPacks;
  readonly #log: SnapshotLogger;
  /** The service's start-up clean-up, run before any build of this process. */
  readonly #prepare: () => Promise<void>;
  /** Repo key → the newest HEAD to build for, waiting. */
  readonly #wanted = new Map<string, { dir: string; commit: string }>();
  /** Repo key → the HEAD whose anchor was last ensured (a fetch that did not move it costs nothing). */
  readonly #done = new Map<string, string>();
  readonly #running = new Map<string, Promise<void>>();
  /** One prebuild at a time (it is a full single-core delta search); requests are not limited by it. */
  readonly #sem = new Semaphore(1);
  readonly #abort = new AbortController();
  #closed = false;

  constructor(anchors: AnchorPacks, log: SnapshotLogger, prepare: () => Promise<void>) {
    this.#anchors = anchors;
    this.#log = log;
    this.#prepare = prepare;
  }

  /** Prebuilds in progress. */
  get running(): Iterable<Promise<void>> {
    return this.#running.values();
  }
  get size(): number {
    return this.#running.size;
  }

  /** A fetch (or the creation) of the mirror `key` left HEAD at `after`. */
  fetched(ev: { key: string; dir: string; after?: string | null }): void {
    if (this.#closed || !ev.after || this.#done.get(ev.key) === ev.after) return;
    this.#wanted.set(ev.key, { dir: ev.dir, commit: ev.after });
    if (this.#running.has(ev.key)) return; // the running loop takes the newest next
    const key = ev.key;
    const anchors = this.#anchors;
    const run = async () => {
      // The start-up clean-up of the anchor directory's half-built packs runs
      // once, before any build of this process (it would delete this one's).
      await this.#prepare();
      for (let w = this.#wanted.get(key); w && !this.#closed; w = this.#wanted.get(key)) {
        this.#wanted.delete(key);
        const t0 = Date.now();
        const signal = this.#abort.signal;
        const built = anchors.built;
        const anchor = await this.#sem.run(async () => {
          const a = await anchorsOf(w.dir, w.commit, anchors.step, anchors.subStep, signal);
          if (a.anchor) await anchors.ensure(key, w.dir, a.anchor, signal);
          if (a.sub && a.anchor) await anchors.ensure(key, w.dir, a.sub, signal, a.anchor);
          return a.anchor;
        });
        this.#done.set(key, w.commit);
        // info only when a pack was built (once per `step` commits), not per fetch.
        const fields = { repo: key, commit: w.commit, anchor, ms: Date.now() - t0 };
        if (anchors.built > built) this.#log.info(fields, 'git: snapshot anchor pack ready');
        else this.#log.debug(fields, 'git: snapshot anchor pack ready');
      }
    };
    const p = run()
      .catch((err) => {
        if (!this.#closed)
          this.#log.warn({ repo: key, err: (err as Error).message }, 'git: snapshot anchor prebuild failed');
      })
      .finally(() => this.#running.delete(key));
    this.#running.set(key, p);
  }

  /** No new builds; the running one's git is killed (a request that joined it fails like at any close). */
  close(): void {
    this.#closed = true;
    this.#abort.abort();
  }
}
