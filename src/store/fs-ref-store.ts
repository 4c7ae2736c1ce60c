// Filesystem RefStore: `<root>/refs/<name>` holds `{"target","version"}`.
// Compare-and-set takes a per-ref lock file (`<name>.lock`, created with
// O_EXCL), re-reads the ref, compares, then publishes by atomic rename. The
// lock is what makes read-compare-write safe between processes; the rename is
// what makes it crash-safe. A lock left by a killed process (its pid is gone)
// is broken by the next writer.

import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError, RefConflictError, RefNotFoundError } from '../core/errors.ts';
import { validateRefName, validateRefPrefix } from '../core/ref-name.ts';
import { hostName, isErrno, isPidAlive, writeFileAtomic } from './fs-atomic.ts';
import { decodeRefObject, type RefListing, type RefStore, type RefValue } from './ref-store.ts';

export class FsRefStore implements RefStore {
  readonly root: string;
  readonly refsDir: string;
  readonly description: string;

  private constructor(root: string) {
    this.root = root;
    this.refsDir = join(root, 'refs');
    this.description = `file://${root}`;
  }

  static async open(root: string, opts: { create?: boolean } = {}): Promise<FsRefStore> {
    const store = new FsRefStore(root);
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
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
      if (isErrno(err, 'EISDIR')) return undefined; // a prefix of other refs, not a ref
      throw err;
    }
    const obj = decodeRefObject(bytes, name);
    return { target: obj.target, version: typeof obj.version === 'string' ? obj.version : 'v0' };
  }

  async set(name: string, target: Digest, expected: string | null): Promise<RefValue> {
    const path = this.#path(name);
    return this.#locked(name, path, async () => {
      const cur = await this.#read(name, path);
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
      const cur = await this.#read(name, path);
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
      throw err;
    }
    const lock = `${path}.lock`;
    const token = `${hostName()} ${process.pid} ${randomBytes(8).toString('hex')}`;
    const deadline = Date.now() + DEFAULTS.refLockTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const fh = await open(lock, 'wx');
        await fh.writeFile(token);
        await fh.close();
        break;
      } catch (err) {
        if (isErrno(err, 'ENOTDIR')) throw nameClash(name);
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      if (await breakIfAbandoned(lock)) continue;
      if (Date.now() > deadline)
        throw new HoardError('HOARD_ELOCK_TIMEOUT', `timed out waiting for the lock of ref ${name}`, {
          hint: `if no hoard process is running, remove ${lock}`,
        });
      await sleep(Math.min(50, 2 + attempt * 2) * (0.5 + Math.random()));
    }
    try {
      return await fn();
    } finally {
      await unlink(lock).catch(() => {});
    }
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

/**
 * Removes a lock whose owner is gone: same host and pid dead, or (other
 * host, unknown owner) older than refLockStaleMs. The lock is first renamed
 * aside and its content compared, so two processes breaking the same stale
 * lock cannot also remove a fresh lock taken in between.
 */
async function breakIfAbandoned(lock: string): Promise<boolean> {
  let content: string;
  let mtimeMs: number;
  try {
    content = await readFile(lock, 'utf8');
    mtimeMs = (await stat(lock)).mtimeMs;
  } catch {
    return true; // released meanwhile: retry at once
  }
  const [host, pidText] = content.split(' ');
  const pid = Number(pidText);
  const abandoned =
    host === hostName() && Number.isSafeInteger(pid)
      ? !isPidAlive(pid)
      : Date.now() - mtimeMs > DEFAULTS.refLockStaleMs || content === ''; // '' = killed between create and write
  if (!abandoned) return false;
  if (content === '' && Date.now() - mtimeMs < 1000) return false; // probably being written right now
  const aside = `${lock}.${randomBytes(6).toString('hex')}.broken`;
  try {
    await rename(lock, aside);
  } catch {
    return true;
  }
  const taken = await readFile(aside, 'utf8').catch(() => '');
  if (taken !== content) {
    // We moved a fresh lock: put it back if nobody took the place meanwhile.
    // link, unlike rename, never replaces a lock someone else took meanwhile.
    await link(aside, lock).catch(() => {});
    await unlink(aside).catch(() => {});
    return false;
  }
  await unlink(aside).catch(() => {});
  return true;
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
