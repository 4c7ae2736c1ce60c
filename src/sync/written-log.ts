// The files a materialize wrote (or changed the mode of), recorded in the
// stat cache so the next push re-reads none of them.
//
// A file whose stat was taken right after its write (its key) goes into the
// cache at once: held until the end as a WrittenFile, its entry, time, stat
// object and three BigInts were ~8 MiB of a 50,000-file pull's peak heap,
// where the cache's record is 65 bytes it needs anyway. It is recorded as
// observed at its write, which is racy (just written); finish() judges it
// again as observed at the end, as materialize always did (the stat was
// taken by the writer itself, and the file's ctime cannot be later unless
// someone else changed it, which the next scan then sees). A pull that fails
// saves no cache, so no entry of an unfinished materialize is kept.
// A file without a key (copied from a local file, or a mode change) is
// looked up by path at the end, under the same rule as before: its ctime
// must not be after the write.

import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import type { FileEntry } from '../core/tree.ts';
import type { WrittenFile } from './small-file-writer.ts';
import type { StatCache } from './stat-cache.ts';
import { statKeyOf } from './stat-key.ts';

export class WrittenLog {
  readonly #cache: StatCache;
  /** Files landed (the materialize's filesWritten). */
  length = 0;
  /** Entries set at their write, to be judged again at the end. */
  readonly #keyed: FileEntry[] = [];
  /** Files whose stat is taken at the end. */
  readonly #unkeyed: WrittenFile[] = [];

  constructor(cache: StatCache) {
    this.#cache = cache;
  }

  push(w: WrittenFile): void {
    this.length++;
    if (w.key === undefined) {
      this.#unkeyed.push(w);
      return;
    }
    this.#cache.set(w.entry.path, w.key, w.entry.digest, w.doneAt, w.entry.kind === 'exec');
    this.#keyed.push(w.entry);
  }

  /** Records every file as observed now (after the writes, and any fsync of their folders). */
  finish(root: string): void {
    const now = Date.now();
    const cache = this.#cache;
    for (const entry of this.#keyed) cache.observedAt(entry.path, now);
    cache.reserve(this.#unkeyed.length);
    for (const { entry, doneAt } of this.#unkeyed) {
      const st = lstatSync(join(root, entry.path), { bigint: true, throwIfNoEntry: false });
      // Changed by someone else since we wrote it: leave it uncached, the next scan hashes it.
      if (!st?.isFile() || st.ctimeNs > BigInt(doneAt + 1) * 1_000_000n) continue;
      cache.set(entry.path, statKeyOf(st), entry.digest, now, entry.kind === 'exec');
    }
  }
}
