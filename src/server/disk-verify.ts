// Reading disk-tier blobs without trusting the disk. A file under blobs/ was
// verified when it was written, but bits rot, people edit files, and another
// process (fsck) may move one away; so the server trusts a file only once it
// has hashed it in this process, and only while the file is the same one:
// same device, inode, size, mtime and ctime (TrustedFiles). Any change to
// the file, including a re-upload that replaced it, means hashing it again.
// Silent bit rot changes none of those, which is what the scrub is for.
// Serving a file while verifying it: disk-stream.ts.

import { readSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { type Digest, Hasher } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';

/** What must stay equal for a verified file to stay trusted. */
export function fileIdentity(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** Digests whose disk file was verified in this process, with that file's identity; bounded, oldest forgotten first. */
export class TrustedFiles {
  readonly max: number;
  #map = new Map<Digest, string>();

  constructor(max: number) {
    this.max = max;
  }

  has(digest: Digest, identity: string): boolean {
    const id = this.#map.get(digest);
    if (id === undefined) return false;
    if (id !== identity) {
      this.#map.delete(digest);
      return false;
    }
    // Refresh: the map forgets the least recently used first.
    this.#map.delete(digest);
    this.#map.set(digest, id);
    return true;
  }

  add(digest: Digest, identity: string): void {
    if (this.max <= 0) return;
    this.#map.delete(digest);
    this.#map.set(digest, identity);
    for (const key of this.#map.keys()) {
      if (this.#map.size <= this.max) break;
      this.#map.delete(key);
    }
  }

  forget(digest: Digest): void {
    this.#map.delete(digest);
  }

  get size(): number {
    return this.#map.size;
  }
}

/** Reads `length` bytes at `position` fully into `buf` (short only if the file is shorter). */
export async function readFully(
  fh: FileHandle,
  buf: Buffer,
  length: number,
  position: number,
): Promise<number> {
  let off = 0;
  while (off < length) {
    const { bytesRead } = await fh.read(buf, off, length - off, position + off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return off;
}

/** readFully with synchronous calls, on a descriptor number. */
export function readFullySync(fd: number, buf: Buffer, length: number, position: number): number {
  let off = 0;
  while (off < length) {
    const got = readSync(fd, buf, off, length - off, position + off);
    if (got === 0) break;
    off += got;
  }
  return off;
}

/**
 * Hashes the first `size` bytes of an open file with one reused buffer.
 * `beforeChunk` runs before each read (the scrub's rate limit); a file
 * shorter than `size` is a truncation error.
 */
export async function hashFile(
  fh: FileHandle,
  size: number,
  opts: { chunkBytes: number; beforeChunk?: (bytes: number) => Promise<void> },
): Promise<Digest> {
  const hasher = new Hasher();
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(opts.chunkBytes, size)));
  let pos = 0;
  while (pos < size) {
    const n = Math.min(buf.byteLength, size - pos);
    await opts.beforeChunk?.(n);
    const got = await readFully(fh, buf, n, pos);
    if (got < n) throw new HoardError('HOARD_ETRUNCATED', `file shorter than its ${size} bytes`);
    hasher.update(buf.subarray(0, got));
    pos += got;
  }
  return hasher.digest();
}
