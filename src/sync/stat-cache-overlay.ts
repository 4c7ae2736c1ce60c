// The entries of a stat cache set (or deleted) since its load, until the
// next save: records of the file's own fixed layout (stat-cache-format.ts)
// in one growing buffer, found by path. Not an object per entry: a first
// push sets an entry for every file, and 50,000 objects with three BigInts
// each were a fifth of its heap.

import { FIXED } from './stat-cache-format.ts';

export class StatCacheOverlay {
  /** path → offset of its record in `buf`, or -1 when deleted. */
  readonly offsets = new Map<string, number>();
  /** The records (FIXED bytes each), `end` bytes used. */
  buf: Buffer = Buffer.alloc(0);
  end = 0;

  /** The offset of `path`'s record, made (uninitialised) when it has none. May replace `buf`. */
  record(path: string): number {
    let at = this.offsets.get(path) ?? -1;
    if (at < 0) {
      if (this.end + FIXED > this.buf.byteLength) {
        const grown = Buffer.allocUnsafe(Math.max(64 * FIXED, this.buf.byteLength * 2));
        this.buf.copy(grown, 0, 0, this.end);
        this.buf = grown;
      }
      at = this.end;
      this.end += FIXED;
      this.offsets.set(path, at);
    }
    return at;
  }

  /** Room for `n` more records (a scan's misses): the buffer grows once, not by doubling. */
  reserve(n: number): void {
    const need = this.end + n * FIXED;
    if (need <= this.buf.byteLength) return;
    const grown = Buffer.allocUnsafe(need);
    this.buf.copy(grown, 0, 0, this.end);
    this.buf = grown;
  }

  /** After a save: what was saved is the new base. */
  clear(): void {
    this.offsets.clear();
    this.buf = Buffer.alloc(0);
    this.end = 0;
  }
}
