// A minimal, fully specified tar header encoder for hoard's deterministic
// archives. Every byte of a header is decided here (not by a library whose
// defaults could change): POSIX ustar headers, and a pax extended header
// (typeflag `x`, fixed name `PaxHeader`) only when a path or link target does
// not fit ustar or is not ASCII, or a size does not fit 11 octal digits.
// uid/gid are 0, uname/gname empty, devmajor/devminor 0.

export type TarEntryType = 'file' | 'symlink' | 'directory';

export interface TarHeader {
  /** Relative path; directories without a trailing slash (one is added). */
  path: string;
  type: TarEntryType;
  /** Permission bits only (e.g. 0o644). */
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Body size (files only; 0 otherwise). */
  size: number;
  /** Symlink target. */
  linkname?: string;
}

export const BLOCK = 512;
/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

const TYPEFLAG: Record<TarEntryType | 'pax', number> = {
  file: 0x30, // '0'
  symlink: 0x32, // '2'
  directory: 0x35, // '5'
  pax: 0x78, // 'x'
};

const MAX_OCTAL_SIZE = 0o77777777777; // 11 octal digits

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

function writeOctal(buf: Buffer, value: number, offset: number, width: number): void {
  // width includes the terminating NUL: width-1 zero-padded octal digits.
  const digits = value.toString(8).padStart(width - 1, '0');
  buf.write(digits, offset, width - 1, 'ascii');
  buf[offset + width - 1] = 0;
}

/** Splits a path into ustar (prefix, name), or returns null when it does not fit. */
function splitUstar(path: string): { prefix: string; name: string } | null {
  if (!isAscii(path)) return null;
  if (path.length <= 100) return { prefix: '', name: path };
  // The prefix is everything up to some '/', at most 155 bytes; the rest at most 100.
  for (let i = path.length - 1; i >= 0; i--) {
    if (path[i] !== '/') continue;
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (name.length > 100) return null;
    if (prefix.length <= 155 && name.length > 0) return { prefix, name };
  }
  return null;
}

function rawHeader(
  fields: { name: string; prefix: string; linkname: string; size: number; mode: number; mtime: number },
  typeflag: number,
): Buffer {
  const buf = Buffer.alloc(BLOCK);
  buf.write(fields.name, 0, 100, 'utf8');
  writeOctal(buf, fields.mode, 100, 8);
  writeOctal(buf, 0, 108, 8); // uid
  writeOctal(buf, 0, 116, 8); // gid
  writeOctal(buf, fields.size, 124, 12);
  writeOctal(buf, fields.mtime, 136, 12);
  buf.fill(0x20, 148, 156); // checksum placeholder: spaces
  buf[156] = typeflag;
  buf.write(fields.linkname, 157, 100, 'utf8');
  buf.write('ustar\0', 257, 6, 'ascii');
  buf.write('00', 263, 2, 'ascii');
  // uname (265..297) and gname (297..329) stay empty.
  writeOctal(buf, 0, 329, 8); // devmajor
  writeOctal(buf, 0, 337, 8); // devminor
  buf.write(fields.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[i];
  buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return buf;
}

/** A pax record `"<len> <key>=<value>\n"` where len counts the whole record in bytes. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + 1;
  while (bodyLen + String(len).length !== len) len = bodyLen + String(len).length;
  return `${len}${body}`;
}

/** Padding after a body of `size` bytes, up to the next block boundary. */
export function padding(size: number): Buffer {
  const rem = size % BLOCK;
  return rem === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rem);
}

/** Encodes the header block(s) of one entry (pax header + its data + ustar header). */
export function encodeHeader(h: TarHeader): Buffer {
  const path = h.type === 'directory' ? `${h.path}/` : h.path;
  const size = h.type === 'file' ? h.size : 0;
  const linkname = h.type === 'symlink' ? (h.linkname ?? '') : '';
  const split = splitUstar(path);
  const linkFits = isAscii(linkname) && linkname.length <= 100;
  const sizeFits = size <= MAX_OCTAL_SIZE;
  const mode = h.mode & 0o7777;
  const main = rawHeader(
    {
      name: split ? split.name : 'PaxHeader/long-name',
      prefix: split ? split.prefix : '',
      linkname: linkFits ? linkname : '',
      size: sizeFits ? size : 0,
      mode,
      mtime: h.mtime,
    },
    TYPEFLAG[h.type],
  );
  if (split && linkFits && sizeFits) return main;
  // Records in a fixed order: path, linkpath, size.
  let records = '';
  if (!split) records += paxRecord('path', path);
  if (!linkFits) records += paxRecord('linkpath', linkname);
  if (!sizeFits) records += paxRecord('size', String(size));
  const data = Buffer.from(records, 'utf8');
  const pax = rawHeader(
    { name: 'PaxHeader', prefix: '', linkname: '', size: data.byteLength, mode: 0o644, mtime: h.mtime },
    TYPEFLAG.pax,
  );
  return Buffer.concat([pax, data, padding(data.byteLength), main]);
}
