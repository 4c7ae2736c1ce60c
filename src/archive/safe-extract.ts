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
//   directory that already exists);
// - `maxBytes` bounds the decompressed stream and `maxEntries` the number of
//   headers (a zstd bomb is cut off at the bound, not after filling the disk);
// - an optional `policy` sees every entry before anything is written and may
//   refuse it (throw) or skip it (its body is read and dropped): restore uses
//   it to accept only the `.git` files a snapshot may hold.
// Every refusal is a HOARD_EARCHIVE_UNSAFE error naming the entry. Cleaning
// up the staging directory after a failure is the caller's job.
//
// Speed and memory: the tar headers are parsed here, straight from the
// decompressed chunks (no per-entry streams), and entries are written with
// synchronous system calls, like `tar -x`: one open/write/close per file,
// each parent directory created or checked once. zstd is decoded
// synchronously into one reused buffer (zstd-decoder.ts), each slice written
// out before the next is decoded: no garbage per decoded chunk, no thread
// hand-off (a restore's peak RSS and its decoding time, issue 16). Between
// input slices the event loop runs, so a download feeding the extraction
// keeps reading its sockets; the zlib stream remains the fallback.

import {
  closeSync,
  constants as fsc,
  futimesSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { readdir, realpath } from 'node:fs/promises';
import { join, posix, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { HoardError, isHoardError } from '../core/errors.ts';
import { validateTreePath } from '../core/tree-path.ts';
import { createZstdDecoder } from './zstd-decoder.ts';

export interface ExtractOptions {
  signal?: AbortSignal;
  /**
   * Set each entry's mtime from the archive (default true). False leaves the
   * time of extraction, like `git clone`, and saves a system call per file.
   */
  mtimes?: boolean;
  /**
   * Also set directories' mtimes from the archive (default: as `mtimes`).
   * One `utimes` by path per directory after the last entry; false leaves
   * them at the time of extraction, as `git clone` does (restore: git never
   * looks at a directory's mtime).
   */
  directoryMtimes?: boolean;
  /** Called after each entry with the running count of body bytes written. */
  onProgress?: (bytesWritten: number) => void;
  /** Refuse (HOARD_ETOO_LARGE) once the uncompressed tar stream exceeds this many bytes. */
  maxBytes?: number;
  /** Refuse (HOARD_ETOO_LARGE) once the archive has more headers than this. */
  maxEntries?: number;
  /**
   * Decides each entry (name already validated) before it is written:
   * 'extract', 'skip' (not written; its body is dropped), or throw to refuse.
   */
  policy?: (entry: EntryInfo) => 'extract' | 'skip';
  /**
   * Sees what is written, as it is written (restore derives the git index
   * from it instead of re-reading every file): each regular file's body
   * pieces, then its descriptor before it is closed; symlinks, hard links
   * and directories after they are made. Pieces are views of reused buffers,
   * valid only during the call.
   */
  recorder?: ExtractRecorder;
  /**
   * Decode zstd with zlib's stream instead of the synchronous decoder: the
   * path a Node without the decoder's internals takes (zstd-decoder.ts).
   * Tests set it so that path is checked on this Node too.
   */
  zstdStream?: boolean;
}

/** Observer of an extraction (see ExtractOptions.recorder); names are validated relative paths. */
export interface ExtractRecorder {
  fileStart(name: string, size: number): void;
  fileData(piece: Buffer): void;
  /** The body is complete (and its mtime set); `fd` is still open. */
  fileEnd(fd: number): void;
  symlink(name: string, target: string, path: string): void;
  hardlink(name: string, linkname: string): void;
  directory(name: string): void;
}

/** What a policy sees of an entry. */
export interface EntryInfo {
  /** Validated relative path, no trailing slash. */
  name: string;
  type: string;
  /** Permission bits (mode & 0o777). */
  mode: number;
  size: number;
  /** Symlink target, or the validated path a hard link points at. */
  linkname: string;
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

const BLOCK = 512;
/** Decompressed chunk size (the one reused output buffer; the fallback stream's chunks). */
const ZSTD_CHUNK_BYTES = 256 * 1024;
/** Compressed bytes decoded between two turns of the event loop. */
const ZSTD_INPUT_SLICE_BYTES = 1024 * 1024;
/** Largest zstd window accepted: 2^27 = 128 MiB of decoder memory (zstd's own default limit). */
const ZSTD_MAX_WINDOW_LOG = 27;
/** Largest pax or GNU long-name body accepted (they are buffered). */
const MAX_META_BYTES = 1024 * 1024;
const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

/** Entry types by typeflag; anything else is refused. */
const TYPES: Record<number, string> = {
  0: 'file',
  48: 'file',
  49: 'link',
  50: 'symlink',
  51: 'character-device',
  52: 'block-device',
  53: 'directory',
  54: 'fifo',
  55: 'contiguous-file',
  103: 'pax-global-header',
  120: 'pax-header',
  76: 'gnu-long-path',
  75: 'gnu-long-link-path',
};

interface Header {
  name: string;
  linkname: string;
  type: string;
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
}

function invalid(why: string): Error {
  return new Error(`invalid tar: ${why}`);
}

function cString(buf: Buffer, start: number, len: number): string {
  let end = start;
  const max = start + len;
  while (end < max && buf[end] !== 0) end++;
  return buf.toString('utf8', start, end);
}

/** A numeric header field: octal (space/NUL padded) or GNU base-256. */
function num(buf: Buffer, start: number, len: number): number {
  if (buf[start] & 0x80) {
    if (buf[start] !== 0x80) throw invalid('negative or oversized base-256 number');
    let v = 0;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + buf[i];
    if (!Number.isSafeInteger(v)) throw invalid('number too large');
    return v;
  }
  let i = start;
  const end = start + len;
  while (i < end && buf[i] === 0x20) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = buf[i];
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
  }
  return v;
}

function isZeroBlock(buf: Buffer, at: number): boolean {
  for (let i = at; i < at + BLOCK; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Decodes one 512-byte header at `at`; throws on a bad checksum. */
function decodeHeader(buf: Buffer, at: number): Header {
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = at; i < at + BLOCK; i++) {
    if (i >= at + 148 && i < at + 156) continue;
    unsigned += buf[i];
    signed += (buf[i] << 24) >> 24;
  }
  const sum = num(buf, at + 148, 8);
  if (sum !== unsigned && sum !== signed) throw invalid('header checksum mismatch');
  const flag = buf[at + 156];
  let name = cString(buf, at, 100);
  // ustar (not old GNU): a prefix for long names.
  if (buf.toString('latin1', at + 257, at + 263) === 'ustar\0') {
    const prefix = cString(buf, at + 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  let type = TYPES[flag] ?? `0x${flag.toString(16)}`;
  // Old tars mark directories with a trailing slash on a file entry.
  if (flag === 0 && name.endsWith('/')) type = 'directory';
  return {
    name,
    linkname: cString(buf, at + 157, 100),
    type,
    mode: num(buf, at + 100, 8),
    mtime: num(buf, at + 136, 12),
    size: num(buf, at + 124, 12),
  };
}

/** pax records `"<len> <key>=<value>\n"`. */
function decodePax(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < buf.byteLength) {
    if (buf[pos] === 0) break;
    const space = buf.indexOf(0x20, pos);
    if (space < 0) throw invalid('bad pax record');
    const len = Number(buf.toString('latin1', pos, space));
    if (!Number.isSafeInteger(len) || len <= space - pos || pos + len > buf.byteLength)
      throw invalid('bad pax record length');
    const rec = buf.toString('utf8', space + 1, pos + len - 1);
    const eq = rec.indexOf('=');
    if (eq < 0) throw invalid('bad pax record');
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    pos += len;
  }
  return out;
}

/** A refusal of one entry (also for policies). */
export function unsafe(entry: string, why: string): HoardError {
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
  // The window (memory of the decoder) is bounded whatever the frame declares.
  const decoder = opts.zstdStream
    ? null
    : createZstdDecoder({ windowLogMax: ZSTD_MAX_WINDOW_LOG, outputBytes: ZSTD_CHUNK_BYTES });
  if (!decoder) {
    const zstd = zlib.createZstdDecompress({
      chunkSize: ZSTD_CHUNK_BYTES,
      params: { [zlib.constants.ZSTD_d_windowLogMax]: ZSTD_MAX_WINDOW_LOG },
    });
    return extractStreams([source, zstd], dir, opts);
  }
  try {
    return await extractStreams([source], dir, opts, async (src, x) => {
      const push = (c: Buffer) => x.push(c);
      for await (const c of src) {
        const buf = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        for (let at = 0; at < buf.byteLength; at += ZSTD_INPUT_SLICE_BYTES) {
          if (at > 0) await new Promise(setImmediate);
          decoder.write(buf.subarray(at, at + ZSTD_INPUT_SLICE_BYTES), push);
        }
      }
      decoder.end(push);
    });
  } finally {
    decoder.close();
  }
}

/** Writes all of `buf` to `fd`. */
function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
}

/** The tar state machine and the writes; fed decompressed chunks in order. */
class Extractor {
  readonly result: ExtractResult = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0 };
  readonly links: string[] = [];
  readonly dirTimes: { path: string; mtime: number }[] = [];
  #root: string;
  #opts: ExtractOptions;
  #keepMtimes: boolean;
  #keepDirMtimes: boolean;
  #kinds = new Map<string, Kind>();
  /** A partial header block carried over between chunks. */
  #hdr = Buffer.alloc(BLOCK);
  #hdrFill = 0;
  /** Bytes of the current body still to come, then padding to skip. */
  #left = 0;
  #pad = 0;
  /** The file being written (its body spans chunks), or -1. */
  #fd = -1;
  #file: Header | null = null;
  /** A pax or GNU long-name body being collected. */
  #meta: Buffer[] | null = null;
  #metaType = '';
  #pax: Map<string, string> | null = null;
  #longName: string | null = null;
  #longLink: string | null = null;
  /** Uncompressed bytes and headers seen, against opts.maxBytes / maxEntries. */
  #seen = 0;
  #headers = 0;

  constructor(root: string, opts: ExtractOptions) {
    this.#root = root;
    this.#opts = opts;
    this.#keepMtimes = opts.mtimes !== false;
    this.#keepDirMtimes = opts.directoryMtimes ?? this.#keepMtimes;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.byteLength;
    this.#seen += len;
    const maxBytes = this.#opts.maxBytes;
    if (maxBytes !== undefined && this.#seen > maxBytes)
      throw new HoardError('HOARD_ETOO_LARGE', `archive expands to more than ${maxBytes} bytes; refused`, {
        hint: 'the archive is a decompression bomb or larger than the configured bound',
        details: { maxBytes },
      });
    while (pos < len) {
      if (this.#left > 0) {
        const take = Math.min(this.#left, len - pos);
        const piece = chunk.subarray(pos, pos + take);
        if (this.#fd >= 0) {
          writeAll(this.#fd, piece);
          this.#opts.recorder?.fileData(piece);
        }
        // A copy: the chunk may be a reused buffer, overwritten after this call.
        else if (this.#meta) this.#meta.push(Buffer.from(piece));
        this.#left -= take;
        pos += take;
        if (this.#left === 0) this.#endBody();
        continue;
      }
      if (this.#pad > 0) {
        const take = Math.min(this.#pad, len - pos);
        this.#pad -= take;
        pos += take;
        continue;
      }
      // A header: straight from the chunk when it is whole, else assembled.
      if (this.#hdrFill === 0 && len - pos >= BLOCK) {
        this.#header(chunk, pos);
        pos += BLOCK;
        continue;
      }
      const take = Math.min(BLOCK - this.#hdrFill, len - pos);
      chunk.copy(this.#hdr, this.#hdrFill, pos, pos + take);
      this.#hdrFill += take;
      pos += take;
      if (this.#hdrFill === BLOCK) {
        this.#hdrFill = 0;
        this.#header(this.#hdr, 0);
      }
    }
  }

  /** At the end of the stream: nothing may be left half-read. */
  end(): void {
    if (this.#left > 0 || this.#pad > 0 || this.#hdrFill > 0) throw invalid('unexpected end of data');
    if (this.#meta || this.#pax || this.#longName !== null || this.#longLink !== null)
      throw invalid('unexpected end of data after an extended header');
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

  #body(size: number): void {
    this.#left = size;
    this.#pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) this.#endBody();
  }

  #endBody(): void {
    if (this.#file) {
      const h = this.#file;
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
    } else if (this.#meta) {
      const data = Buffer.concat(this.#meta);
      this.#meta = null;
      if (this.#metaType === 'pax-header') this.#pax = decodePax(data);
      else {
        const s = cString(data, 0, data.byteLength);
        if (this.#metaType === 'gnu-long-path') this.#longName = s;
        else this.#longLink = s;
      }
    }
  }

  #header(buf: Buffer, at: number): void {
    if (buf[at] === 0 && isZeroBlock(buf, at)) return; // end-of-archive blocks
    const h = decodeHeader(buf, at);
    if (!Number.isSafeInteger(h.size)) throw invalid('bad size');
    const maxEntries = this.#opts.maxEntries;
    if (maxEntries !== undefined && ++this.#headers > maxEntries)
      throw new HoardError('HOARD_ETOO_LARGE', `archive has more than ${maxEntries} entries; refused`, {
        details: { maxEntries },
      });
    switch (h.type) {
      case 'pax-global-header':
        this.#body(h.size); // skipped: #file and #meta are unset
        return;
      case 'pax-header':
      case 'gnu-long-path':
      case 'gnu-long-link-path':
        if (h.size > MAX_META_BYTES) throw invalid(`${h.type} of ${h.size} bytes`);
        this.#meta = [];
        this.#metaType = h.type;
        this.#body(h.size);
        return;
    }
    // Extended headers apply to this entry only.
    const pax = this.#pax;
    if (pax) {
      const path = pax.get('path');
      if (path !== undefined) h.name = path;
      const linkpath = pax.get('linkpath');
      if (linkpath !== undefined) h.linkname = linkpath;
      const size = pax.get('size');
      if (size !== undefined) {
        if (!/^[0-9]{1,16}$/.test(size) || !Number.isSafeInteger(Number(size))) throw invalid('bad pax size');
        h.size = Number(size);
      }
      const mtime = pax.get('mtime');
      if (mtime !== undefined && Number.isFinite(Number(mtime))) h.mtime = Number(mtime);
    }
    if (this.#longName !== null) h.name = this.#longName;
    if (this.#longLink !== null) h.linkname = this.#longLink;
    this.#pax = null;
    this.#longName = null;
    this.#longLink = null;
    this.#entry(h);
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

  #entry(h: Header): void {
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
      if (this.#opts.policy({ name, type: h.type, mode, size: h.size, linkname }) === 'skip') {
        this.#body(h.size); // #file is unset: the body is read and dropped
        return;
      }
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
        this.#body(h.size);
        return;
      }
      case 'file':
      case 'contiguous-file': {
        kinds.set(name, 'file');
        // Created with its final mode (the umask applies, as for git checkout);
        // an fd opened for writing stays writable even for a read-only mode.
        this.#fd = openSync(target, CREATE_FLAGS, mode);
        this.#file = h;
        this.#opts.recorder?.fileStart(name, h.size);
        this.#body(h.size);
        return;
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
        this.#body(h.size);
        return;
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
        this.#body(h.size);
        return;
      }
      default:
        throw unsafe(h.name, `entry type ${h.type} is not allowed`);
    }
  }
}

/** Hands the extractor every tar byte of `src`, in order (x.end() is called after it). */
type Feed = (src: AsyncIterable<Uint8Array>, x: Extractor) => Promise<void>;

const feedTar: Feed = async (src, x) => {
  for await (const c of src)
    x.push(Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength));
};

async function extractStreams(
  stages: (Readable | AsyncIterable<Uint8Array> | NodeJS.ReadWriteStream)[],
  dir: string,
  opts: ExtractOptions,
  feed: Feed = feedTar,
): Promise<ExtractResult> {
  if ((await readdir(dir)).length > 0)
    throw new HoardError('HOARD_EUSAGE', `staging directory ${dir} is not empty`);
  const root = await realpath(dir);
  const x = new Extractor(root, opts);
  try {
    const sink = async (src: AsyncIterable<Uint8Array>) => {
      await feed(src, x);
      x.end();
    };
    // biome-ignore lint/suspicious/noExplicitAny: node's pipeline typing does not cover a variable stage list
    await pipeline([...stages, sink] as any, { signal: opts.signal });
    // Physical check of every link: chains of in-archive links must not lead out.
    for (const l of x.links) {
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
    for (const d of x.dirTimes.reverse()) utimesSync(d.path, d.mtime, d.mtime);
    return x.result;
  } catch (e) {
    x.abort();
    if (isHoardError(e)) throw e;
    if (opts.signal?.aborted) throw new HoardError('HOARD_EABORTED', 'extraction aborted', { cause: e });
    throw new HoardError('HOARD_EARCHIVE_UNSAFE', `invalid archive: ${(e as Error).message}`, {
      cause: e,
      hint: 'the archive is corrupt or not a tar.zst',
    });
  }
}
