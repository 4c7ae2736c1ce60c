// What the console knows about a disk tier that keeps no accounting of its
// own (no --max-disk): its blob count, bytes and largest blobs, found by one
// listing of the blobs directory. The listing is bounded (maxBlobs; beyond
// it the figures are marked truncated), done at most once per maxAgeMs
// whoever asks (single-flight, the result cached), and yields to the event
// loop between entries as the store's list() does, so a large disk costs a
// background walk now and then, never a stall of the server.

import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../../core/digest.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { largestOf } from '../../store/tier-usage.ts';

export interface Census {
  blobs: number;
  bytes: number;
  largest: { digest: Digest; size: number }[];
  /** More blobs than maxBlobs: the figures cover the first maxBlobs in digest order. */
  truncated: boolean;
  /** Wall-clock ms of the walk. */
  at: number;
}

export class DiskCensus {
  readonly #store: BlobStore;
  readonly #maxBlobs: number;
  readonly #maxAgeMs: number;
  #last: Census | undefined;
  #running: Promise<Census> | undefined;

  constructor(store: BlobStore, opts: { maxBlobs: number; maxAgeMs: number }) {
    this.#store = store;
    this.#maxBlobs = opts.maxBlobs;
    this.#maxAgeMs = opts.maxAgeMs;
  }

  /** The last census taken, however old (never starts a walk). */
  peek(): Census | undefined {
    return this.#last;
  }

  /** The last census when fresh enough, else a new one (joined if one is running). */
  get(): Promise<Census> {
    if (this.#last && Date.now() - this.#last.at < this.#maxAgeMs) return Promise.resolve(this.#last);
    this.#running ??= this.#walk().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #walk(): Promise<Census> {
    let blobs = 0;
    let bytes = 0;
    let truncated = false;
    const seen: { digest: Digest; size: number }[] = [];
    let largest: { digest: Digest; size: number }[] = [];
    for await (const b of this.#store.list()) {
      if (blobs >= this.#maxBlobs) {
        truncated = true;
        break;
      }
      blobs++;
      bytes += b.size;
      seen.push({ digest: b.digest, size: b.size });
      // Keeps memory bounded: fold the candidates into the top 20 every 4096.
      if (seen.length >= 4096) {
        largest = largestOf([...largest, ...seen], 20);
        seen.length = 0;
      }
    }
    largest = largestOf([...largest, ...seen], 20);
    this.#last = { blobs, bytes, largest, truncated, at: Date.now() };
    return this.#last;
  }
}

/** Bytes of the files under `dir` (a git mirror), walked with a bound on entries; cached per directory. */
export class DirSizes {
  readonly #cache = new Map<string, { bytes: number; at: number }>();
  readonly #maxAgeMs: number;
  readonly #maxEntries: number;

  constructor(opts: { maxAgeMs: number; maxEntries: number }) {
    this.#maxAgeMs = opts.maxAgeMs;
    this.#maxEntries = opts.maxEntries;
  }

  async of(dir: string): Promise<number | null> {
    const hit = this.#cache.get(dir);
    if (hit && Date.now() - hit.at < this.#maxAgeMs) return hit.bytes;
    let bytes = 0;
    let entries = 0;
    const walk = async (d: string, depth: number): Promise<void> => {
      let list: Dirent[];
      try {
        list = await readdir(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of list) {
        if (++entries > this.#maxEntries) return;
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if (depth < 16) await walk(p, depth + 1);
        } else if (e.isFile()) bytes += (await stat(p).catch(() => undefined))?.size ?? 0;
      }
    };
    await walk(dir, 0);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(dir, { bytes, at: Date.now() });
    return bytes;
  }
}
