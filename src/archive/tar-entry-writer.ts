// The safe extractor's writes (safe-extract.ts): each entry the parser
// (tar-stream-parser.ts) hands over is checked and made under the staging
// directory with synchronous system calls, like `tar -x`: one
// open/write/close per file, each parent directory created or checked once.
// The rules it enforces as it goes (the lexical ones are
// extract-path-checks.ts's): a name twice is refused (but a directory entry
// for a directory that exists), a parent that is a symlink or a file of this
// archive is refused, files are created O_EXCL|O_NOFOLLOW, symlink targets
// must resolve inside, hard links must point at a file extracted earlier, and
// any other entry type is refused. The caller's policy sees each entry
// before anything of it is written.

import {
  closeSync,
  constants as fsc,
  futimesSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join, sep } from 'node:path';
import type { ExtractOptions, ExtractResult } from './extract-options.ts';
import { checkName, resolveInside, unsafe } from './extract-path-checks.ts';
import type { TarEntryHeader } from './tar-header-decoder.ts';
import type { TarEntrySink } from './tar-stream-parser.ts';

type Kind = 'file' | 'directory' | 'symlink';

const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

/** Writes all of `buf` to `fd`. */
function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
}

export class TarEntryWriter implements TarEntrySink {
  readonly result: ExtractResult = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0 };
  /** Every symlink made (absolute paths), for the physical check after the last entry. */
  readonly links: string[] = [];
  /** Directories whose mtime is set after the last entry (their contents would change it). */
  readonly dirTimes: { path: string; mtime: number }[] = [];
  readonly #root: string;
  readonly #opts: ExtractOptions;
  readonly #keepMtimes: boolean;
  readonly #keepDirMtimes: boolean;
  /** What this archive made at each path (nothing outside it is ever looked at). */
  readonly #kinds = new Map<string, Kind>();
  /** The file being written (its body spans chunks), or -1. */
  #fd = -1;
  #file: TarEntryHeader | null = null;

  /** `root`: the staging directory's real path, empty. */
  constructor(root: string, opts: ExtractOptions) {
    this.#root = root;
    this.#opts = opts;
    this.#keepMtimes = opts.mtimes !== false;
    this.#keepDirMtimes = opts.directoryMtimes ?? this.#keepMtimes;
  }

  entry(h: TarEntryHeader): boolean {
    const root = this.#root;
    const kinds = this.#kinds;
    const name = checkName(h.name);
    const target = join(root, name);
    if (!(target === root || target.startsWith(root + sep))) throw unsafe(h.name, 'escapes the directory');
    const existing = kinds.get(name);
    if (existing !== undefined && !(existing === 'directory' && h.type === 'directory'))
      throw unsafe(h.name, 'appears twice');
    const mode = h.mode & 0o777;
    if (this.#opts.policy) {
      const linkname = h.type === 'link' ? checkName(h.linkname) : h.linkname;
      // Skipped: not written, its body read and dropped.
      if (this.#opts.policy({ name, type: h.type, mode, size: h.size, linkname }) === 'skip') return false;
    }
    this.#ensureParents(name);
    const mtime = this.#keepMtimes ? h.mtime : undefined;
    switch (h.type) {
      case 'directory': {
        if (existing === undefined) mkdirSync(target, { mode: mode | 0o700 });
        kinds.set(name, 'directory');
        if (this.#keepDirMtimes) this.dirTimes.push({ path: target, mtime: h.mtime });
        this.#opts.recorder?.directory(name);
        this.result.directories++;
        return false;
      }
      case 'file':
      case 'contiguous-file': {
        kinds.set(name, 'file');
        // Created with its final mode (the umask applies, as for git checkout);
        // an fd opened for writing stays writable even for a read-only mode.
        this.#fd = openSync(target, CREATE_FLAGS, mode);
        this.#file = h;
        this.#opts.recorder?.fileStart(name, h.size);
        return true;
      }
      case 'symlink': {
        const linkname = h.linkname;
        if (resolveInside(name, linkname) === null)
          throw unsafe(h.name, `symlink target ${JSON.stringify(linkname)} points outside the directory`);
        symlinkSync(linkname, target);
        kinds.set(name, 'symlink');
        this.links.push(target);
        if (mtime !== undefined) {
          try {
            lutimesSync(target, mtime, mtime);
          } catch {}
        }
        this.#opts.recorder?.symlink(name, linkname, target);
        this.result.symlinks++;
        return false;
      }
      case 'link': {
        const linkname = checkName(h.linkname);
        if (kinds.get(linkname) !== 'file')
          throw unsafe(
            h.name,
            `hard link to ${JSON.stringify(linkname)}, which is not a file of this archive`,
          );
        linkSync(join(root, linkname), target);
        kinds.set(name, 'file');
        this.#opts.recorder?.hardlink(name, linkname);
        this.result.hardlinks++;
        return false;
      }
      default:
        throw unsafe(h.name, `entry type ${h.type} is not allowed`);
    }
  }

  data(piece: Buffer): void {
    writeAll(this.#fd, piece);
    this.#opts.recorder?.fileData(piece);
  }

  fileEnd(): void {
    const h = this.#file as TarEntryHeader;
    const fd = this.#fd;
    this.#file = null;
    this.#fd = -1;
    try {
      if (this.#keepMtimes) futimesSync(fd, h.mtime, h.mtime);
      this.#opts.recorder?.fileEnd(fd);
    } finally {
      closeSync(fd);
    }
    this.result.bytes += h.size;
    this.result.files++;
    this.#opts.onProgress?.(this.result.bytes);
  }

  /** Closes a file left open by a failure. */
  abort(): void {
    if (this.#fd >= 0) {
      try {
        closeSync(this.#fd);
      } catch {}
      this.#fd = -1;
    }
  }

  #ensureParents(name: string): void {
    const kinds = this.#kinds;
    let i = name.lastIndexOf('/');
    if (i < 0) return;
    // The nearest known directory ends the walk: its own parents were checked when it was made.
    const missing: string[] = [];
    for (;;) {
      const p = name.slice(0, i);
      const k = kinds.get(p);
      if (k === 'symlink') throw unsafe(name, `its parent ${JSON.stringify(p)} is a symlink`);
      if (k === 'file') throw unsafe(name, `its parent ${JSON.stringify(p)} is a file`);
      if (k === 'directory') break;
      missing.push(p);
      i = p.lastIndexOf('/');
      if (i < 0) break;
    }
    for (let j = missing.length - 1; j >= 0; j--) {
      mkdirSync(join(this.#root, missing[j]));
      kinds.set(missing[j], 'directory');
    }
  }
}
