// The reading side of the tar format, for the safe extractor (safe-extract.ts):
// one 512-byte header decoded (ustar, old GNU and v7; octal or GNU base-256
// numbers; the checksum checked both ways tar implementations computed it),
// pax records, and the pax fields that override a header. Only decoding: what
// an entry may be and where it may go is decided by the extractor's checks
// (extract-path-checks.ts, tar-entry-writer.ts). The writing side is
// tar-format.ts.

import { BLOCK } from './tar-format.ts';

/** A decoded header (after its extended headers applied, the entry the extractor sees). */
export interface TarEntryHeader {
  name: string;
  linkname: string;
  type: string;
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
}

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

/** A malformed archive (the extractor reports it as HOARD_EARCHIVE_UNSAFE "invalid archive"). */
export function invalid(why: string): Error {
  return new Error(`invalid tar: ${why}`);
}

/** A NUL-terminated (or field-filling) UTF-8 string. */
export function cString(buf: Buffer, start: number, len: number): string {
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

/** Whether the block at `at` is all zeros (the end-of-archive marker). */
export function isZeroBlock(buf: Buffer, at: number): boolean {
  for (let i = at; i < at + BLOCK; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Decodes one 512-byte header at `at`; throws on a bad checksum. */
export function decodeHeader(buf: Buffer, at: number): TarEntryHeader {
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
export function decodePax(buf: Buffer): Map<string, string> {
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

/** Applies a pax header's `path`, `linkpath`, `size` and `mtime` to the entry after it. */
export function applyPax(h: TarEntryHeader, pax: Map<string, string>): void {
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
