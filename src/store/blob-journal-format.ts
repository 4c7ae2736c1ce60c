// The blob journal's bytes on disk (blob-journal.ts): a record is magic
// "HJR1" | u32 BE size | 32-byte SHA-256 | size bytes, valid when its digest
// matches its bytes; segments are named `journal-<pid>.<boot>.<random><n>.log`,
// <boot> the kernel's boot id, so a replay (blob-journal-replay.ts) can tell
// the segments of dead writers from a live server's. LIVE: the segments this
// process has open, never replayed by a second store of the same process.

import { readFileSync, readSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { type Digest, hexOf } from '../core/digest.ts';
import { tempName } from './fs-atomic.ts';

export const JOURNAL_MAGIC = 0x484a5231; // "HJR1"
export const JOURNAL_HEAD_BYTES = 40;
export const SEGMENT_PREFIX = 'journal-';
export const SEGMENT_SUFFIX = '.log';
/** A record larger than this is not one of ours (replay stops there). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** Segments this process has open, by path: never replayed by a second store opened in the same process. */
export const LIVE = new Set<string>();
/** This boot of the machine (first 8 hex digits of its boot id), in segment names; '0' where there is none. */
export const JOURNAL_BOOT = bootId();

/** A new segment's path in `dir` (this process's pid and this boot in its name). */
export function segmentPath(dir: string): string {
  return join(
    dir,
    tempName(SEGMENT_PREFIX, SEGMENT_SUFFIX).replace(/^(journal-\d+\.)/, `$1${JOURNAL_BOOT}.`),
  );
}

/** A record's head: magic, size, digest. */
export function recordHead(digest: Digest, size: number): Buffer {
  const head = Buffer.allocUnsafe(JOURNAL_HEAD_BYTES);
  head.writeUInt32BE(JOURNAL_MAGIC, 0);
  head.writeUInt32BE(size, 4);
  head.write(hexOf(digest), 8, 'hex');
  return head;
}

function bootId(): string {
  try {
    return (
      readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')
        .replace(/[^0-9a-f]/g, '')
        .slice(0, 8) || '0'
    );
  } catch {
    return '0';
  }
}

/** writev of head and body, looping on short writes. */
export function writeAll(fd: number, head: Buffer, body: Uint8Array): void {
  const total = head.byteLength + body.byteLength;
  let n = writevSync(fd, [head, body]);
  while (n < total) {
    n +=
      n < head.byteLength
        ? writevSync(fd, [head.subarray(n), body])
        : writevSync(fd, [body.subarray(n - head.byteLength)]);
  }
}

/** Reads `buf.byteLength` bytes at `position`, fewer only at the end of the file. */
export function readFully(fd: number, buf: Buffer, position: number): number {
  let n = 0;
  while (n < buf.byteLength) {
    const got = readSync(fd, buf, n, buf.byteLength - n, position + n);
    if (got === 0) break;
    n += got;
  }
  return n;
}
