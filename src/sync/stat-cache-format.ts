// The stat cache's file, `<dir>/.hoard/stat-cache.bin` (stat-cache.ts):
// its layout, the check a loaded file passes, its entries' fixed parts
// read and written in place, and the bytes of a save.
//
//   "hoard-stat-cache/3\n"  magic (19 bytes)
//   u32 entry count
//   per entry: u16 path length, path (UTF-8), u8 flags (bit 0: racy, bit 1: executable),
//              u64 size, i64 mtime ns, i64 ctime ns, u64 inode, 32-byte SHA-256
//   u8 summary present (0|1); when 1: 32-byte tree digest, 32-byte digest of the other entries
//   u32 CRC-32 of everything before it
//
// Format 2 (the same without the executable bit and the summary) is still
// read: its entries claim "not executable", which the next scan corrects
// where it is wrong (setting the bit, no re-hash), and it has no summary.
//
// Everything little-endian. A file that is truncated, fails its CRC, is of
// another format (the JSON of format 1, stat-cache.json) or does not parse
// is ignored: the cache starts empty and every file is hashed once, which is
// slow but never wrong. The CRC matters: a flipped bit in a digest would
// otherwise name a file by the wrong content.
//
// Nothing here makes a string or an object per entry on a hit: paths are
// compared in place (pathIs), a trusted digest is the only string made.

import { crc32 } from 'node:zlib';
import { type Digest, hexOf } from '../core/digest.ts';
import type { ScanSummary } from './stat-cache-summary.ts';
import { type LooseStat, SAME_TIME_MS, type StatKey } from './stat-key.ts';

export const FILE = 'stat-cache.bin';
/** Format 1 (JSON): ignored when found, removed by the next save. */
export const OLD_FILE = 'stat-cache.json';
export const MAGIC = Buffer.from('hoard-stat-cache/3\n', 'latin1');
/** Format 2: read (no executable bit, no summary), never written. */
const MAGIC_2 = Buffer.from('hoard-stat-cache/2\n', 'latin1');
/** Where the first entry starts: after the magic and the entry count. */
export const FIRST_ENTRY = MAGIC.length + 4;
/** flags u8 + size, mtime, ctime, inode (8 bytes each) + digest. */
export const FIXED = 1 + 8 * 4 + 32;
/** Flag bits of an entry. */
export const RACY = 1;
export const EXEC = 2;
/** The summary's bytes after its presence byte: the tree digest, the other entries' digest. */
const SUMMARY = 32 + 32;
export const MAX_PATH_BYTES = 0xffff;

export interface StatCacheEntry extends StatKey {
  digest: Digest;
  /** Observed too close to its last change to be trusted next time. */
  racy: boolean;
  /** The file's kind in the tree of the scan that recorded it (owner's x bit). */
  exec: boolean;
}

/** The file of a cache with no entries (never written as such: only the base of an empty cache). */
export function emptyFile(): Buffer {
  const buf = Buffer.alloc(MAGIC.length + 8);
  MAGIC.copy(buf);
  return buf;
}

/** Whether the `len` UTF-8 bytes of `b` at `at` spell `path` (ASCII compared in place, no string made). */
export function pathIs(b: Buffer, at: number, len: number, path: string): boolean {
  if (len < path.length) return false; // UTF-8 is never shorter than the UTF-16 length
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0x80) return b.toString('utf8', at, at + len) === path;
    if (i >= len || b[at + i] !== c) return false;
  }
  return len === path.length;
}

/**
 * Checks a saved cache whole — magic, CRC, every entry's bounds — and
 * returns its entry count and summary, or undefined when it is not a whole,
 * intact cache of format 3 or 2. No path is decoded.
 */
export function checkFile(buf: Buffer): { count: number; summary?: ScanSummary } | undefined {
  if (buf.length < MAGIC.length + 8) return undefined;
  const head = buf.subarray(0, MAGIC.length);
  const v3 = head.equals(MAGIC);
  if (!v3 && !head.equals(MAGIC_2)) return undefined;
  const end = buf.length - 4;
  if (crc32(buf.subarray(0, end)) !== buf.readUInt32LE(end)) return undefined;
  const count = buf.readUInt32LE(MAGIC.length);
  const maxFlags = v3 ? RACY | EXEC : RACY;
  let pos = FIRST_ENTRY;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > end) return undefined;
    const len = buf[pos] | (buf[pos + 1] << 8);
    pos += 2 + len;
    if (pos + FIXED > end || buf[pos] > maxFlags) return undefined;
    pos += FIXED;
  }
  if (!v3) return pos === end ? { count } : undefined;
  if (pos + 1 > end) return undefined;
  const present = buf[pos++];
  if (present === 0) return pos === end ? { count } : undefined;
  if (present !== 1 || pos + SUMMARY !== end) return undefined;
  const summary: ScanSummary = {
    tree: `sha256:${buf.toString('hex', pos, pos + 32)}`,
    others: `sha256:${buf.toString('hex', pos + 32, pos + 64)}`,
  };
  return { count, summary };
}

/** path → offset of its fixed part, for a file checkFile accepted. */
export function indexOf(buf: Buffer, count: number): Map<string, number> {
  const index = new Map<string, number>();
  let pos = FIRST_ENTRY;
  for (let i = 0; i < count; i++) {
    const len = buf[pos] | (buf[pos + 1] << 8);
    pos += 2;
    index.set(buf.toString('utf8', pos, pos + len), pos + len);
    pos += len + FIXED;
  }
  return index;
}

/** The digest of the record at `off` when it is trusted (not racy) and its stat is `key`. */
export function trustedDigestAt(b: Buffer, off: number, key: StatKey): Digest | undefined {
  // Cheapest differences first; no entry object is built for a hit.
  if ((b[off] & RACY) !== 0 || Number(b.readBigUInt64LE(off + 1)) !== key.size) return undefined;
  if (b.readBigInt64LE(off + 9) !== key.mtimeNs || b.readBigInt64LE(off + 17) !== key.ctimeNs)
    return undefined;
  if (b.readBigUInt64LE(off + 25) !== key.ino) return undefined;
  return `sha256:${b.toString('hex', off + 33, off + 65)}`;
}

/** trustedDigestAt for a number-valued stat: size and inode exact, times to within SAME_TIME_MS. */
export function trustedDigestAtLoose(b: Buffer, off: number, st: LooseStat): Digest | undefined {
  if ((b[off] & RACY) !== 0 || u64At(b, off + 1) !== st.size || u64At(b, off + 25) !== st.ino)
    return undefined;
  if (Math.abs(i64At(b, off + 9) / 1e6 - st.mtimeMs) >= SAME_TIME_MS) return undefined;
  if (Math.abs(i64At(b, off + 17) / 1e6 - st.ctimeMs) >= SAME_TIME_MS) return undefined;
  return `sha256:${b.toString('hex', off + 33, off + 65)}`;
}

/** A u64 as a number (exact below 2^53), without a BigInt. */
export function u64At(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * 0x1_0000_0000;
}

/** An i64 as a number (nanoseconds: within 128 ns of the value today), without a BigInt. */
export function i64At(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readInt32LE(off + 4) * 0x1_0000_0000;
}

/** Writes an entry's fixed part (racy, size, mtime, ctime, inode, digest) at `off`. */
export function encodeFixed(out: Buffer, off: number, e: StatCacheEntry): void {
  out[off] = (e.racy ? RACY : 0) | (e.exec ? EXEC : 0);
  out.writeBigUInt64LE(BigInt(e.size), off + 1);
  out.writeBigInt64LE(e.mtimeNs, off + 9);
  out.writeBigInt64LE(e.ctimeNs, off + 17);
  out.writeBigUInt64LE(e.ino, off + 25);
  out.write(hexOf(e.digest), off + 33, 32, 'hex');
}

export function decodeAt(buf: Buffer, off: number): StatCacheEntry {
  return {
    racy: (buf[off] & RACY) !== 0,
    exec: (buf[off] & EXEC) !== 0,
    size: Number(buf.readBigUInt64LE(off + 1)),
    mtimeNs: buf.readBigInt64LE(off + 9),
    ctimeNs: buf.readBigInt64LE(off + 17),
    ino: buf.readBigUInt64LE(off + 25),
    digest: `sha256:${buf.toString('hex', off + 33, off + 65)}`,
  };
}

/**
 * The bytes of a save, entries added in the order they are to be read.
 * Entries taken from the loaded file are copied as they are (length, path,
 * fixed part), consecutive ones in one copy, so a save after a scan that
 * changed one file at 50,000 is a few copies, not a path encoded and a row
 * made per entry.
 */
export class StatCacheFileWriter {
  /** Per entry: [source buffer, start, end] of its whole record, or a path, an overlay offset and the path's length. */
  readonly #rows: (number | string | Buffer)[] = [];
  #size = MAGIC.length + 4 + 4;
  #count = 0;

  /** An entry whose fixed part is at `at` in the overlay's buffer; `len`: the path's UTF-8 bytes. */
  addRecord(path: string, at: number, len: number): void {
    this.#rows.push(path, at, len);
    this.#size += 2 + len + FIXED;
    this.#count++;
  }

  /** An entry of the loaded file `buf`, its fixed part at `off`; `len`: its path's UTF-8 bytes. */
  addCopy(buf: Buffer, off: number, len: number): void {
    const rows = this.#rows;
    const start = off - len - 2;
    const last = rows.length - 3;
    // Right after the previous record copied from the file: one copy for both.
    if (last >= 0 && rows[last] === buf && rows[last + 2] === start) rows[last + 2] = off + FIXED;
    else rows.push(buf, start, off + FIXED);
    this.#size += 2 + len + FIXED;
    this.#count++;
  }

  /** The whole file: the entries added, `overlay` holding the records addRecord named, the summary, the CRC. */
  finish(overlay: Buffer, summary: ScanSummary | undefined): Buffer {
    const rows = this.#rows;
    let size = this.#size;
    if (summary !== undefined) size += SUMMARY;
    const out = Buffer.allocUnsafe(size + 1);
    let pos = MAGIC.copy(out, 0);
    pos = out.writeUInt32LE(this.#count, pos);
    for (let i = 0; i < rows.length; i += 3) {
      const src = rows[i];
      if (typeof src === 'string') {
        pos = out.writeUInt16LE(rows[i + 2] as number, pos);
        pos += out.write(src, pos, 'utf8');
        const at = rows[i + 1] as number;
        pos += overlay.copy(out, pos, at, at + FIXED);
      } else {
        pos += (src as Buffer).copy(out, pos, rows[i + 1] as number, rows[i + 2] as number);
      }
    }
    out[pos++] = summary === undefined ? 0 : 1;
    if (summary !== undefined) {
      pos += out.write(hexOf(summary.tree), pos, 32, 'hex');
      pos += out.write(hexOf(summary.others), pos, 32, 'hex');
    }
    pos = out.writeUInt32LE(crc32(out.subarray(0, pos)), pos);
    return out.subarray(0, pos);
  }
}
