// The start-up replay of the blob journal (blob-journal.ts; run by
// BlobJournal.open, before the store serves anything): every segment left by
// a writer that is gone is read record by record up to the first invalid one
// (a torn tail: nothing after it was acknowledged); each valid record's blob
// file is checked (size and digest), rewritten when absent or torn (temp,
// fsync, rename over the torn one), then fsynced with its folder, and the
// segment deleted. Idempotent: two processes replaying one segment is harmless.

import {
  closeSync,
  fstatSync,
  fsync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Digest, digestFromHex, hexOf, sha256 } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import {
  JOURNAL_BOOT,
  JOURNAL_HEAD_BYTES,
  JOURNAL_MAGIC,
  LIVE,
  MAX_RECORD_BYTES,
  readFully,
  SEGMENT_PREFIX,
  SEGMENT_SUFFIX,
} from './blob-journal-format.ts';
import { fsyncDir, isErrno, isPidAlive, pidOfTempName, tempName } from './fs-atomic.ts';
import { fsyncFiles } from './fsync-files.ts';
import { statSyncIfExists } from './sync-metadata.ts';

const fsyncFd = promisify(fsync);

export interface ReplayResult {
  segments: number;
  records: number;
  /** Records whose file was absent or did not verify, written again. */
  rewritten: number;
}

/**
 * Replays every segment in `dir` left by a writer that is gone (see the
 * header): each valid record's blob file made whole and durable, then the
 * segment deleted. Runs before the store serves anything.
 */
export async function replayJournal(dir: string, blobsDir: string, tmpDir: string): Promise<ReplayResult> {
  const result: ReplayResult = { segments: 0, records: 0, rewritten: 0 };
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return result;
    throw err;
  }
  for (const name of names) {
    if (!name.endsWith(SEGMENT_SUFFIX)) continue;
    const pid = pidOfTempName(name, SEGMENT_PREFIX);
    // A segment from before the last boot: its writer is gone, whatever runs under its pid now.
    const earlierBoot = name.split('.')[1] !== JOURNAL_BOOT;
    const path = join(dir, name);
    if (pid === undefined || LIVE.has(path)) continue;
    // Our own pid on a segment we did not create: an earlier process that had this pid (a restarted container).
    if (!earlierBoot && pid !== process.pid && isPidAlive(pid)) continue;
    await replaySegment(path, blobsDir, tmpDir, result);
    result.segments++;
  }
  if (result.segments > 0) await fsyncDir(dir);
  return result;
}

async function replaySegment(
  path: string,
  blobsDir: string,
  tmpDir: string,
  result: ReplayResult,
): Promise<void> {
  const fd = openSync(path, 'r');
  const shards = new Set<string>();
  const durable: Promise<void>[] = [];
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.allocUnsafe(JOURNAL_HEAD_BYTES);
    for (let off = 0; off + JOURNAL_HEAD_BYTES <= size; ) {
      if (readFully(fd, head, off) < JOURNAL_HEAD_BYTES) break;
      const len = head.readUInt32BE(4);
      if (
        head.readUInt32BE(0) !== JOURNAL_MAGIC ||
        len > MAX_RECORD_BYTES ||
        off + JOURNAL_HEAD_BYTES + len > size
      )
        break;
      const body = Buffer.allocUnsafe(len);
      if (readFully(fd, body, off + JOURNAL_HEAD_BYTES) < len) break;
      const digest = digestFromHex(head.toString('hex', 8, 40));
      if (sha256(body) !== digest) break; // a torn tail: nothing after it was acknowledged
      off += JOURNAL_HEAD_BYTES + len;
      result.records++;
      const hex = hexOf(digest);
      const shard = join(blobsDir, hex.slice(0, 2));
      const file = join(shard, hex);
      shards.add(shard);
      if (fileHolds(file, body, digest)) durable.push(fsyncFiles([file], 1, true));
      else {
        result.rewritten++;
        durable.push(rewrite(file, shard, tmpDir, body, digest));
      }
      // Bounded: a few fsyncs at a time, not one promise per record of a 64 MiB segment.
      if (durable.length >= 16) await Promise.all(durable.splice(0));
    }
    await Promise.all(durable.splice(0));
    await Promise.all([...shards].map((d) => fsyncDir(d)));
  } finally {
    await Promise.allSettled(durable);
    closeSync(fd);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    // Two processes starting at once replayed it both (replay is idempotent): gone already.
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

/** Whether `file` holds exactly `body` (a torn file from a power loss does not). */
function fileHolds(file: string, body: Buffer, digest: Digest): boolean {
  const st = statSyncIfExists(file);
  if (!st?.isFile() || st.size !== body.byteLength) return false;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.allocUnsafe(body.byteLength);
    return readFully(fd, buf, 0) === body.byteLength && sha256(buf) === digest;
  } finally {
    closeSync(fd);
  }
}

/** The record's bytes written again under its name: temp, fsync, rename (over a torn file). */
async function rewrite(
  file: string,
  shard: string,
  tmpDir: string,
  body: Buffer,
  digest: Digest,
): Promise<void> {
  mkdirSync(shard, { recursive: true });
  mkdirSync(tmpDir, { recursive: true });
  const tmp = join(tmpDir, tempName());
  const fd = openSync(tmp, 'wx');
  try {
    for (let o = 0; o < body.byteLength; ) o += writeSync(fd, body, o);
    await fsyncFd(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw noSpaceOr(err, `blob ${digest}`);
  }
  closeSync(fd);
  renameSync(tmp, file);
}
