// Group commit of small single writes (a PUT of a few KiB) to the tier stack
// (tiered-blob-store.ts): every write that arrives while a group is being
// made durable joins the next group, one write batch (tiered-write-batch.ts)
// shared by all of them, so concurrent PUTs share its durability pass (one
// fsync per touched shard folder per group, the file fsyncs overlapping in
// the thread pool) instead of each paying a dozen thread-pool round trips and
// its own folder fsync. A write is answered only once its group's flush
// resolved: durable, and in the shared tier when there is one. A group that
// fails fails every write in it (a disk error: each client is told, nothing
// is reported stored).

import type { Digest } from '../core/digest.ts';
import type { ServingWriteBatch } from '../store/blob-handle.ts';
import type { WriteResult } from '../store/blob-store.ts';

interface WriteGroup {
  batch: ServingWriteBatch;
  adds: Promise<unknown>[];
  done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

export class SmallWriteGroups {
  readonly #newBatch: () => ServingWriteBatch;
  /** The group being gathered, and whether one is being flushed. */
  #group: WriteGroup | undefined;
  #committing = false;
  /** Groups flushed since start (tests). */
  commits = 0;

  /** `newBatch` opens the write batch a group shares. */
  constructor(newBatch: () => ServingWriteBatch) {
    this.#newBatch = newBatch;
  }

  /** Writes verified bytes with the next group; resolves once that group is durable. */
  async write(digest: Digest, bytes: Buffer): Promise<WriteResult> {
    let g = this.#group;
    if (!g) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      done.catch(() => {}); // awaited by every write of the group; none may be left to see it
      g = { batch: this.#newBatch(), adds: [], done, resolve, reject };
      this.#group = g;
    }
    const add = g.batch.add(digest, bytes);
    g.adds.push(add.catch(() => {}));
    if (!this.#committing) void this.#commit();
    const result = await add;
    await g.done;
    return { created: result.created, size: result.size };
  }

  /** Flushes groups one after another while writes keep arriving. */
  async #commit(): Promise<void> {
    this.#committing = true;
    try {
      for (let g = this.#group; g; g = this.#group) {
        this.#group = undefined;
        this.commits++;
        await Promise.all(g.adds);
        try {
          await g.batch.flush();
          g.resolve();
        } catch (err) {
          g.reject(err);
        }
      }
    } finally {
      this.#committing = false;
    }
  }
}
