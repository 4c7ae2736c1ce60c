// Filesystem RefStore: `<root>/refs/<name>` holds `{"target","version"}`.
// Compare-and-set takes a per-ref lock file (`<name>.lock`, created with
// O_EXCL), re-reads the ref, compares, then publishes by atomic rename. The
// lock is what makes read-compare-write safe between processes; the rename is
// what makes it crash-safe. A lock left by a killed process (its pid is gone)
// is broken by the next writer.

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError, noSpaceOr, RefConflictError, RefNotFoundError } from '../core/errors.ts';
import { validateRefName, validateRefPrefix } from '../core/ref-name.ts';
import { isErrno, writeFileAtomic } from './fs-atomic.ts';
import { withLockFile } from './lock-file.ts';
import { decodeRefObject, type RefListing, type RefStore, type RefValue } from './ref-store.ts';
import { readStatedFileSync, statSyncIfExists } from './sync-metadata.ts';

/** A ref file is `{"target","version"}` (~100 bytes); anything far larger is not one. */
const MAX_REF_FILE_BYTES = 4096;
/** Decoded ref files kept by the synchronous reader (~250 bytes each). */
const REF_FILE_CACHE = 20_000;
/**
 * A ref file is decoded once and reused only when it was last changed at
 * least this long ago (by the wall clock file times use). Why: a file's
 * identity is (inode, ctime, mtime, size); a rewritten ref has the same
 * size and often reuses a freed inode, and on coarse-grained kernel clocks
 * two rewrites a few ms apart can share a ctime. A file reused from the
 * cache was settled when it was cached; any later file in that inode was
 * created after that moment, so its times differ.
 */
const REF_SETTLED_MS = 2000;

/** A decoded ref file and the identity of the file it came from. */
interface CachedRef {
  ino: number;
  ctimeMs: number;
  mtimeMs: number;
  size: number;
  value: RefValue;
}

export class FsRefStore implements RefStore {
  readonly root: string;
  readonly refsDir: string;
  readonly description: string;

  /** Ref reads done synchronously (sync-metadata.ts): the server's own local data directory. */
  readonly #syncReads: boolean;
  /**
   * With #syncReads: decoded ref files by path, reused while a stat shows the
   * same settled file (REF_SETTLED_MS). A ref is only ever replaced by a
   * rename or unlinked, never rewritten in place, so a changed ref shows as
   * a changed identity, whichever process changed it. A small cache hit
   * then costs one stat instead of stat, open, read, close and a JSON
   * decode. Compare-and-set never uses it: the read under the ref's lock
   * goes to the file.
   */
  readonly #decoded = new Map<string, CachedRef>();
  readonly #now: () => number;

  private constructor(root: string, syncReads: boolean, now: () => number) {
    this.root = root;
    this.#syncReads = syncReads;
    this.#now = now;
    this.refsDir = join(root, 'refs');
    this.description = `file://${root}`;
  }

  /** `now`: the wall clock that file times are compared with (tests). */
  static async open(
    root: string,
    opts: { create?: boolean; syncReads?: boolean; now?: () => number } = {},
  ): Promise<FsRefStore> {
    const store = new FsRefStore(root, opts.syncReads ?? false, opts.now ?? Date.now);
    if (opts.create !== false) await mkdir(store.refsDir, { recursive: true });
    return store;
  }

  #path(name: string): string {
    return join(this.refsDir, ...validateRefName(name).split('/'));
  }

  async get(name: string): Promise<RefValue | undefined> {
    return this.#read(name, this.#path(name));
  }

  async #read(name: string, path: string): Promise<RefValue | undefined> {
    if (this.#syncReads) return this.#readSync(name, path, true);
    const bytes = await readRefFile(path);
    return bytes && decodeRef(bytes, name);
  }

  /** The ref, read synchronously; `cached`: a decoded copy of the same file may answer. */
  #readSync(name: string, path: string, cached: boolean): RefValue | undefined {
    const st = statSyncIfExists(path);
    if (!st || st.isDirectory()) {
      this.#decoded.delete(path);
      return undefined;
    }
    const known = cached ? this.#decoded.get(path) : undefined;
    if (
      known &&
      known.ino === st.ino &&
      known.ctimeMs === st.ctimeMs &&
      known.mtimeMs === st.mtimeMs &&
      known.size === st.size
    )
      return known.value;
    const bytes = readStatedFileSync(path, st, MAX_REF_FILE_BYTES);
    if (!bytes) return undefined;
    const value = decodeRef(bytes, name);
    this.#decoded.delete(path);
    if (this.#now() - Math.max(st.ctimeMs, st.mtimeMs) >= REF_SETTLED_MS) {
      this.#decoded.set(path, {
        ino: st.ino,
        ctimeMs: st.ctimeMs,
        mtimeMs: st.mtimeMs,
        size: st.size,
        value,
      });
      if (this.#decoded.size > REF_FILE_CACHE)
        this.#decoded.delete(this.#decoded.keys().next().value as string);
    }
    return value;
  }

  /** Under the ref's lock: always the file itself, and the decoded copy dropped (the caller changes it). */
  async #readLocked(name: string, path: string): Promise<RefValue | undefined> {
    if (!this.#syncReads) return this.#read(name, path);
    const value = this.#readSync(name, path, false);
    this.#decoded.delete(path);
    return value;
  }

  async set(name: string, target: Digest, expected: string | null): Promise<RefValue> {
    const path = this.#path(name);
    return this.#locked(name, path, async () => {
      const cur = await this.#readLocked(name, path);
      if ((cur?.version ?? null) !== expected) throw new RefConflictError(name, expected);
      const version = randomBytes(8).toString('hex');
      try {
        await writeFileAtomic(path, `${JSON.stringify({ target, version })}\n`, dirname(path));
      } catch (err) {
        if (isErrno(err, 'EISDIR', 'ENOTDIR', 'ENOTEMPTY', 'EEXIST')) throw nameClash(name);
        throw err;
      }
      return { target, version };
    });
  }

  async delete(name: string, expected: string): Promise<void> {
    const path = this.#path(name);
    await this.#locked(name, path, async () => {
      const cur = await this.#readLocked(name, path);
      if (!cur) throw new RefNotFoundError(name);
      if (cur.version !== expected) throw new RefConflictError(name, expected);
      await unlink(path);
    });
  }

  async *list(prefix = ''): AsyncIterable<RefListing> {
    validateRefPrefix(prefix);
    const names: string[] = [];
    await walk(this.refsDir, this.refsDir, names);
    for (const name of names.filter((n) => n.startsWith(prefix)).sort()) {
      const v = await this.#read(name, join(this.refsDir, name));
      if (v) yield { name, ...v };
    }
  }

  /** Runs `fn` holding the ref's lock file. */
  async #locked<T>(name: string, path: string, fn: () => Promise<T>): Promise<T> {
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      if (isErrno(err, 'EEXIST', 'ENOTDIR')) throw nameClash(name);
      throw noSpaceOr(err, `ref ${name}`);
    }
    const lock = `${path}.lock`;
    try {
      return await withLockFile(lock, fn, {
        timeoutMs: DEFAULTS.refLockTimeoutMs,
        onTimeout: () =>
          new HoardError('HOARD_ELOCK_TIMEOUT', `timed out waiting for the lock of ref ${name}`, {
            hint: `if no hoard process is running, remove ${lock}`,
          }),
      });
    } catch (err) {
      if (isErrno(err, 'ENOTDIR')) throw nameClash(name);
      throw err;
    }
  }
}

function decodeRef(bytes: Buffer, name: string): RefValue {
  const obj = decodeRefObject(bytes, name);
  return { target: obj.target, version: typeof obj.version === 'string' ? obj.version : 'v0' };
}

/** A ref file's bytes, or undefined when there is no such ref (or it is a prefix of other refs). */
async function readRefFile(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
    throw err;
  }
}

function nameClash(name: string): HoardError {
  return new HoardError(
    'HOARD_EREF_NAME_INVALID',
    `ref ${name} clashes with an existing ref that is a prefix of it`,
    {
      hint: 'a ref name cannot be both a ref and a folder of refs (like git)',
    },
  );
}

async function walk(root: string, dir: string, out: string[]): Promise<void> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory()) await walk(root, full, out);
    else if (
      e.isFile() &&
      !e.name.endsWith('.lock') &&
      !e.name.endsWith('.tmp') &&
      !e.name.endsWith('.broken')
    )
      out.push(relative(root, full).split(sep).join('/'));
  }
}
