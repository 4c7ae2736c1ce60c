// The last step of every way a batch of small blobs (fs-blob-batch.ts) stores
// a blob: a temp file whose contents are already durable (fsynced, made
// durable by a syncfs round, or covered by a durable journal record) linked to
// its blob name, create-if-absent, and the temp name dropped. A name never
// points at bytes that are not durable: callers publish only after that.

import { linkSync, mkdirSync, renameSync } from 'node:fs';
import type { Digest } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import { unlinkQuietly } from './blob-temp-files.ts';
import { isErrno } from './fs-atomic.ts';

/**
 * Links a durable temp file to its blob name (create-if-absent) and drops
 * the temp name; true when this call made the name. `shards`: the shard
 * folders known to exist (one mkdir each). `linked`: where the shard folder
 * is recorded for flush() to fsync (undefined in journal mode, where the
 * record stands for it).
 */
export function publishTemp(
  tmp: string,
  shard: string,
  final: string,
  digest: Digest,
  shards: Set<string>,
  linked: Set<string> | undefined,
): boolean {
  try {
    if (!shards.has(shard)) {
      mkdirSync(shard, { recursive: true });
      shards.add(shard);
    }
    try {
      try {
        linkSync(tmp, final);
      } catch (err) {
        // A shard folder known to the store but gone since (removed by hand): made again.
        if (!isErrno(err, 'ENOENT')) throw err;
        mkdirSync(shard, { recursive: true });
        linkSync(tmp, final);
      }
      linked?.add(shard);
    } catch (err) {
      if (isErrno(err, 'EEXIST')) {
        // A racing writer published the same verified bytes first: theirs stays.
        unlinkQuietly(tmp);
        return false;
      }
      if (isErrno(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV')) {
        // No hard links here: rename is atomic too, and the bytes are identical.
        renameSync(tmp, final);
        linked?.add(shard);
        return true;
      }
      throw err;
    }
  } catch (err) {
    unlinkQuietly(tmp);
    throw noSpaceOr(err, `blob ${digest}`);
  }
  unlinkQuietly(tmp);
  return true;
}
