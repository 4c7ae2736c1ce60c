// Safe extraction of untrusted tar (or tar.zst) streams into an empty staging
// directory. An archive can never make hoard write outside that directory:
//
// - entry names must be relative tree paths (no absolute paths, `..`, empty
//   segments, NUL or backslashes);
// - an entry whose parent is a symlink or a file from this archive is refused
//   (a symlink to /etc followed by `link/passwd`), and every file is created
//   with O_EXCL|O_NOFOLLOW, so nothing is ever written through a link;
// - symlink targets must stay inside the directory: absolute targets and
//   targets climbing out are refused when the link is created, and after the
//   last entry every link that resolves is checked physically (realpath), so
//   chains of links cannot escape either;
// - hard links may only point at a regular file extracted earlier;
// - device files, FIFOs and unknown entry types are refused;
// - a path appearing twice is refused (except a directory entry for a
//   directory that already exists).
// Every refusal is a HOARD_EARCHIVE_UNSAFE error naming the entry. Cleaning
// up the staging directory after a failure is the caller's job.

import { constants as fsc } from 'node:fs';
import { link, lutimes, mkdir, open, readdir, realpath, symlink, utimes } from 'node:fs/promises';
import { join, posix, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { HoardError, isHoardError } from '../core/errors.ts';
import { validateTreePath } from '../core/tree-path.ts';

export interface ExtractOptions {
  signal?: AbortSignal;
  /**
   * Set each entry's mtime from the archive (default true). False leaves the
   * time of extraction, like `git clone`, and saves a system call per file.
   */
  mtimes?: boolean;
  /** Called after each entry with the running count of body bytes written. */
  onProgress?: (bytesWritten: number) => void;
}

export interface ExtractResult {
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  /** Total bytes of file bodies written. */
  bytes: number;
}

type Kind = 'file' | 'directory' | 'symlink';

/** Files up to this size are buffered and written in the background. */
const SMALL_FILE_BYTES = 1024 * 1024;
/** Background file writes in flight (memory: at most this × SMALL_FILE_BYTES). */
const WRITE_CONCURRENCY = 32;

/** Bounded background writes; the first failure is rethrown by add() or drain(). */
class WritePool {
  #max: number;
  #inflight = new Set<Promise<void>>();
  #error: unknown;
  constructor(max: number) {
    this.#max = max;
  }
  async add(fn: () => Promise<unknown>): Promise<void> {
    if (this.#error) throw this.#error;
    while (this.#inflight.size >= this.#max) await Promise.race(this.#inflight);
    if (this.#error) throw this.#error;
    const p: Promise<void> = fn()
      .then(
        () => {},
        (err) => {
          this.#error ??= err;
        },
      )
      .finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }
  async drain(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    if (this.#error) throw this.#error;
  }
}

/** Creates a new file (never through a link, never over an existing one) with `body`; returns its size. */
async function writeNew(
  target: string,
  mode: number,
  mtime: Date | undefined,
  body: AsyncIterable<Buffer> | Buffer[],
): Promise<number> {
  // Created with its final mode (the umask applies, as for git checkout); an
  // fd opened for writing stays writable even for a read-only mode.
  const fh = await open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  try {
    let written = 0;
    for await (const chunk of body) {
      let off = 0;
      while (off < chunk.byteLength) {
        const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off);
        off += bytesWritten;
      }
      written += chunk.byteLength;
    }
    if (mtime) await fh.utimes(mtime, mtime);
    return written;
  } finally {
    await fh.close();
  }
}

function unsafe(entry: string, why: string): HoardError {
  return new HoardError('HOARD_EARCHIVE_UNSAFE', `unsafe archive entry ${JSON.stringify(entry)}: ${why}`, {
    hint: 'the archive was refused and nothing was written outside the staging directory',
    details: { entry },
  });
}

function checkName(raw: string): string {
  const name = raw.replace(/\/+$/, '');
  if (raw.startsWith('/')) throw unsafe(raw, 'absolute path');
  if (name.split('/').includes('..')) throw unsafe(raw, 'path climbs out of the directory');
  try {
    return validateTreePath(name.replace(/^(\.\/)+/, ''));
  } catch (err) {
    throw unsafe(raw, (err as Error).message);
  }
}

/** Resolves a symlink target lexically against the link's directory; null if it escapes. */
function resolveInside(linkPath: string, target: string): string | null {
  if (target === '' || target.includes('\0')) return null;
  if (target.startsWith('/') || /^[A-Za-z]:[\\/]/.test(target) || target.includes('\\')) return null;
  const joined = posix.normalize(posix.join(posix.dirname(linkPath), target));
  if (joined === '..' || joined.startsWith('../') || posix.isAbsolute(joined)) return null;
  return joined;
}

/** Extracts an uncompressed tar stream into `dir`, which must exist and be empty. */
export async function extractTar(
  source: Readable | AsyncIterable<Uint8Array>,
  dir: string,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  return extractStreams([source], dir, opts);
}

/** Extracts a zstd-compressed tar stream into `dir`, which must exist and be empty. */
export async function extractTarZst(
  source: Readable | AsyncIterable<Uint8Array>,
  dir: string,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  return extractStreams([source, zlib.createZstdDecompress()], dir, opts);
}

async function extractStreams(
  stages: (Readable | AsyncIterable<Uint8Array> | NodeJS.ReadWriteStream)[],
  dir: string,
  opts: ExtractOptions,
): Promise<ExtractResult> {
  if ((await readdir(dir)).length > 0)
    throw new HoardError('HOARD_EUSAGE', `staging directory ${dir} is not empty`);
  const root = await realpath(dir);
  const kinds = new Map<string, Kind>();
  const dirTimes: { path: string; mtime: Date }[] = [];
  const keepMtimes = opts.mtimes !== false;
  const links: string[] = [];
  const result: ExtractResult = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0 };
  const extract = tar.extract();
  const writes = new WritePool(WRITE_CONCURRENCY);
  // biome-ignore lint/suspicious/noExplicitAny: node's pipeline typing does not cover streamx
  const feeding = pipeline([...stages, extract] as any, { signal: opts.signal });
  let failure: unknown;
  feeding.catch((err) => {
    failure ??= err;
  });

  const ensureParents = async (name: string) => {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const k = kinds.get(p);
      if (k === 'symlink') throw unsafe(name, `its parent ${JSON.stringify(p)} is a symlink`);
      if (k === 'file') throw unsafe(name, `its parent ${JSON.stringify(p)} is a file`);
      if (k === undefined) {
        await mkdir(join(root, p));
        kinds.set(p, 'directory');
      }
    }
  };

  try {
    for await (const entry of extract) {
      const h = entry.header;
      if ((h.type as string) === 'pax-global-header') {
        entry.resume();
        continue;
      }
      const name = checkName(h.name);
      const target = join(root, name);
      if (!(target === root || target.startsWith(root + sep))) throw unsafe(h.name, 'escapes the directory');
      const existing = kinds.get(name);
      if (existing !== undefined && !(existing === 'directory' && h.type === 'directory'))
        throw unsafe(h.name, 'appears twice');
      await ensureParents(name);
      const mtime = keepMtimes ? (h.mtime ?? new Date(0)) : undefined;
      const mode = (h.mode ?? 0o644) & 0o777;
      switch (h.type) {
        case 'directory': {
          if (existing === undefined) await mkdir(target, { mode: mode | 0o700 });
          kinds.set(name, 'directory');
          if (mtime) dirTimes.push({ path: target, mtime });
          result.directories++;
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file': {
          kinds.set(name, 'file');
          const size = h.size ?? 0;
          if (size <= SMALL_FILE_BYTES) {
            // Small files: read the body, then write it in the background
            // (bounded), so the many small files of a checkout overlap.
            const parts: Buffer[] = [];
            let n = 0;
            for await (const chunk of entry as AsyncIterable<Buffer>) {
              parts.push(chunk);
              n += chunk.byteLength;
            }
            if (n !== size) throw unsafe(h.name, 'truncated body');
            const body = parts.length === 1 ? parts[0] : Buffer.concat(parts, n);
            await writes.add(() => writeNew(target, mode, mtime, [body]));
            result.bytes += n;
          } else {
            // Large files stream straight from the archive.
            const n = await writeNew(target, mode, mtime, entry as AsyncIterable<Buffer>);
            if (n !== size) throw unsafe(h.name, 'truncated body');
            result.bytes += n;
          }
          result.files++;
          opts.onProgress?.(result.bytes);
          break;
        }
        case 'symlink': {
          const linkname = h.linkname ?? '';
          if (resolveInside(name, linkname) === null)
            throw unsafe(h.name, `symlink target ${JSON.stringify(linkname)} points outside the directory`);
          await symlink(linkname, target);
          kinds.set(name, 'symlink');
          links.push(target);
          if (mtime) await lutimes(target, mtime, mtime).catch(() => {});
          result.symlinks++;
          entry.resume();
          break;
        }
        case 'link': {
          const linkname = checkName(h.linkname ?? '');
          if (kinds.get(linkname) !== 'file')
            throw unsafe(
              h.name,
              `hard link to ${JSON.stringify(linkname)}, which is not a file of this archive`,
            );
          await link(join(root, linkname), target);
          kinds.set(name, 'file');
          result.hardlinks++;
          entry.resume();
          break;
        }
        default:
          throw unsafe(h.name, `entry type ${h.type} is not allowed`);
      }
    }
    await feeding;
    await writes.drain();
    // Physical check of every link: chains of in-archive links must not lead out.
    for (const l of links) {
      let real: string;
      try {
        real = await realpath(l);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // dangling inside the directory: harmless
        if (code === 'ELOOP') throw unsafe(l.slice(root.length + 1), 'symlink loop');
        throw err;
      }
      if (real !== root && !real.startsWith(root + sep))
        throw unsafe(l.slice(root.length + 1), 'symlink resolves outside the directory');
    }
    // Directory mtimes last, deepest first, after their contents were written.
    for (const d of dirTimes.reverse()) await utimes(d.path, d.mtime, d.mtime);
    return result;
  } catch (err) {
    extract.destroy();
    await feeding.catch(() => {});
    await writes.drain().catch(() => {});
    const e = failure && !isHoardError(err) ? failure : err;
    if (isHoardError(e)) throw e;
    if (opts.signal?.aborted) throw new HoardError('HOARD_EABORTED', 'extraction aborted', { cause: e });
    throw new HoardError('HOARD_EARCHIVE_UNSAFE', `invalid archive: ${(e as Error).message}`, {
      cause: e,
      hint: 'the archive is corrupt or not a tar.zst',
    });
  }
}
