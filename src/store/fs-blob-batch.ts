// FsBlobStore's BlobBatch: small blobs written from memory with synchronous
// calls (a page-cached small write costs microseconds; through the thread
// pool each call costs a hand-off and a promise, which is what a
// 10,000-file push spent its time on), the fsyncs running in the thread
// pool meanwhile, and one fsync per shard folder at flush() instead of one
// per blob.
//
// Per blob: existence check (stat), temp file in <root>/tmp, write, fsync of
// the temp file, then link(2) to its final name (create-if-absent, as in
// FsBlobStore.write) and unlink of the temp name. flush() waits for all of
// that, then fsyncs every shard folder a link went into.
//
// The crash windows (a kill, or a power loss, at any instant):
// - before the link: a temp file in tmp/, never a blob; the next open of the
//   store removes it (its writer's pid is dead).
// - after the link, before flush() fsynced its folder: the file's contents
//   are already durable (fsynced before the link), so the name, if it
//   survives, names complete bytes — never a torn blob that a later push
//   would take for present. After a power loss the name may be gone: the
//   blob is simply missing, and nothing names it yet, because the caller
//   moves its ref only after flush() resolved.
// - after flush(): contents and names are durable; the ref update that
//   follows is the ref store's own atomic step.
// So the invariant of the one-blob write holds for the batch: every blob is
// durable before a ref that names it is compare-and-set.
//
// The fsyncs are not fewer than one per blob: Node has no syncfs(2), and a
// link before the data is durable is exactly the torn-blob window above. What
// the batch removes is the waiting: the main thread goes on reading and
// hashing while up to `inFlight` fsyncs are queued in the thread pool, where
// the file system merges concurrent fsyncs into shared journal commits.

import {
  closeSync,
  fsync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Digest, hexOf } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import type { BlobBatch } from './blob-batch.ts';
import { fsyncDir, isErrno, tempName } from './fs-atomic.ts';

const fsyncFd = promisify(fsync);

export class FsBlobBatch implements BlobBatch {
  readonly #blobsDir: string;
  readonly #tmpDir: string;
  readonly #inFlight: number;
  /**
   * Shard folders known to exist: one mkdir each, not one per blob. Shared by
   * the store's batches (a server makes one batch per upload request or
   * group of PUTs: without it, every batch paid a mkdir per shard again).
   */
  readonly #shards: Set<string>;
  /** Shard folders that gained a name since the last flush. */
  readonly #linked = new Set<string>();
  /** Digests added to this batch: a file duplicated in the tree is written once. */
  readonly #added = new Set<Digest>();
  /** Writes whose fsync/link has not finished; they never reject (failures go to #error). */
  readonly #pending = new Set<Promise<void>>();
  /** add() calls waiting for a write to finish (one is woken per finished write). */
  readonly #slotWaiters: (() => void)[] = [];
  #error: unknown;

  constructor(blobsDir: string, tmpDir: string, inFlight: number, shards: Set<string> = new Set()) {
    this.#shards = shards;
    this.#blobsDir = blobsDir;
    this.#tmpDir = tmpDir;
    this.#inFlight = Math.max(1, inFlight);
  }

  async add(digest: Digest, bytes: Uint8Array): Promise<{ created: boolean }> {
    this.#throwIfFailed();
    if (this.#added.has(digest)) return { created: false };
    const hex = hexOf(digest);
    const shard = join(this.#blobsDir, hex.slice(0, 2));
    const final = join(shard, hex);
    if (exists(final)) {
      this.#added.add(digest);
      return { created: false };
    }
    // Wait for a free slot in a queue, not with Promise.race over the pending
    // writes: each race adds a reaction to every pending promise, kept until
    // it settles, so a 50,000-file push made millions of them (promoted to
    // the old generation, most of its heap).
    while (this.#pending.size >= this.#inFlight) await new Promise<void>((r) => this.#slotWaiters.push(r));
    this.#throwIfFailed();
    if (this.#added.has(digest)) return { created: false }; // added while we waited
    this.#added.add(digest);

    // Written before this call returns: the caller may reuse `bytes` afterwards.
    const tmp = join(this.#tmpDir, tempName());
    let fd: number;
    try {
      fd = openTemp(tmp, this.#tmpDir);
    } catch (err) {
      throw noSpaceOr(err, `blob ${digest}`);
    }
    try {
      for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off);
    } catch (err) {
      closeQuietly(fd);
      unlinkQuietly(tmp);
      throw noSpaceOr(err, `blob ${digest}`);
    }
    const p: Promise<void> = this.#settle(fd, tmp, shard, final, digest)
      .catch((err: unknown) => {
        this.#error ??= err;
      })
      .finally(() => {
        this.#pending.delete(p);
        this.#slotWaiters.shift()?.();
      });
    this.#pending.add(p);
    return { created: true };
  }

  /** fsync, then publish: the contents are durable before any name points at them. */
  async #settle(fd: number, tmp: string, shard: string, final: string, digest: Digest): Promise<void> {
    try {
      await fsyncFd(fd);
      // close can report a deferred write error (NFS): the data is not known to be there.
      closeSync(fd);
    } catch (err) {
      closeQuietly(fd);
      unlinkQuietly(tmp);
      throw noSpaceOr(err, `blob ${digest}`);
    }
    try {
      if (!this.#shards.has(shard)) {
        mkdirSync(shard, { recursive: true });
        this.#shards.add(shard);
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
        this.#linked.add(shard);
      } catch (err) {
        if (isErrno(err, 'EEXIST')) {
          // A racing writer published the same verified bytes first: theirs stays.
        } else if (isErrno(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV')) {
          // No hard links here: rename is atomic too, and the bytes are identical.
          renameSync(tmp, final);
          this.#linked.add(shard);
          return;
        } else throw err;
      }
    } catch (err) {
      unlinkQuietly(tmp);
      throw noSpaceOr(err, `blob ${digest}`);
    }
    unlinkQuietly(tmp);
  }

  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    this.#throwIfFailed();
    const dirs = [...this.#linked];
    this.#linked.clear();
    await Promise.all(dirs.map((d) => fsyncDir(d)));
  }

  async abort(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    this.#linked.clear();
  }

  #throwIfFailed(): void {
    if (this.#error !== undefined) throw this.#error;
  }
}

/** Creates the temp file, and tmp/ with it when a store opened read-only never made it. */
function openTemp(tmp: string, tmpDir: string): number {
  try {
    return openSync(tmp, 'wx');
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    mkdirSync(tmpDir, { recursive: true });
    return openSync(tmp, 'wx');
  }
}

/** Whether a blob file is there; a shard that is not a folder counts as absent (its publish fails, at flush). */
function exists(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    if (isErrno(err, 'ENOTDIR')) return false;
    throw err;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already failing: the first error is the one reported
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already, or the next open's stale-temp sweep removes it
  }
}
