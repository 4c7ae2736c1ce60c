// Tree: the canonical listing of a directory. Equal directories give equal
// bytes (and so equal tree digests) on every machine: entries are sorted by
// path bytes, and the encoding is one fixed-key JSON object per line. Decoding
// untrusted bytes validates every field and insists the input is already in
// canonical form, so a tree digest always names exactly one listing.

import { type Digest, Hasher, isDigest, sha256 } from './digest.ts';
import { HoardError } from './errors.ts';
import {
  checkNormalizationCollisions,
  comparePathBytes,
  MAX_PATH_BYTES,
  validateTreePath,
} from './tree-path.ts';

export type EntryKind = 'file' | 'exec' | 'symlink' | 'dir';

export interface FileEntry {
  path: string;
  kind: 'file' | 'exec';
  size: number;
  digest: Digest;
}

export interface SymlinkEntry {
  path: string;
  kind: 'symlink';
  /** The link target, stored as data: never followed when writing. */
  target: string;
}

/** An empty directory (directories with content are implied by their entries). */
export interface DirEntry {
  path: string;
  kind: 'dir';
}

export type TreeEntry = FileEntry | SymlinkEntry | DirEntry;

export interface Tree {
  entries: TreeEntry[];
}

/** First line of every tree blob. */
export const TREE_HEADER = '{"hoard":"tree/1"}';
const HEADER = TREE_HEADER;
export const MAX_SYMLINK_TARGET_BYTES = 4096;
/** A digest's characters: `sha256:` and 64 hex digits. */
const DIGEST_CHARS = 71;

export function invalidTree(why: string, cause?: unknown): never {
  throw new HoardError('HOARD_ETREE_INVALID', `invalid tree: ${why}`, { cause });
}

/** Characters JSON.stringify escapes in a well-formed string (validateTreePath rejects lone surrogates). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

/** JSON string literal of `s`, as JSON.stringify writes it (without calling it for plain names). */
function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * The canonical line of one entry (without the newline): exactly what
 * JSON.stringify of the fixed-key object gives (the decoder compares
 * against it), written as a template so a tree of millions of entries
 * does not build an object and walk it per line.
 */
export function encodeEntry(e: TreeEntry): string {
  switch (e.kind) {
    case 'file':
    case 'exec':
      return `{"path":${jsonString(e.path)},"kind":"${e.kind}","size":${e.size},"digest":"${e.digest}"}`;
    case 'symlink':
      return `{"path":${jsonString(e.path)},"kind":"symlink","target":${jsonString(e.target)}}`;
    case 'dir':
      return `{"path":${jsonString(e.path)},"kind":"dir"}`;
  }
}

/** Validates entries (paths, kinds, sizes, structure) and returns them sorted canonically. */
export function normalizeTree(entries: readonly TreeEntry[]): Tree {
  for (const e of entries) validateEntry(e); // before sorting: sorting trusts .path
  const sorted = [...entries].sort((a, b) => comparePathBytes(a.path, b.path));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].path === sorted[i - 1].path)
      invalidTree(`duplicate path ${JSON.stringify(sorted[i].path)}`);
  }
  checkStructure(sorted);
  return { entries: sorted };
}

/** The checks on a sorted, duplicate-free list of valid entries that need the whole list. */
function checkStructure(sorted: readonly TreeEntry[]): void {
  checkNormalizationCollisions(sorted.map((e) => e.path));
  // A path can only have children if no entry claims it as a file, symlink
  // or empty directory: "a" and "a/b" together cannot both be written.
  const leaves = new Set(sorted.map((e) => e.path));
  // Entries of one folder are mostly neighbours: its ancestors are checked once per run of them.
  let lastFolder = '';
  for (const e of sorted) {
    const folderEnd = e.path.lastIndexOf('/');
    if (folderEnd === -1) continue;
    if (folderEnd === lastFolder.length && e.path.startsWith(lastFolder)) continue;
    lastFolder = e.path.slice(0, folderEnd);
    let i = e.path.indexOf('/');
    while (i !== -1) {
      const parent = e.path.slice(0, i);
      if (leaves.has(parent))
        invalidTree(`${JSON.stringify(e.path)} lies under non-directory entry ${JSON.stringify(parent)}`);
      i = e.path.indexOf('/', i + 1);
    }
  }
}

/** Validates one entry on its own (path, kind, size, digest, target); cross-entry rules are normalizeTree's. */
export function validateEntry(e: TreeEntry): void {
  if (typeof e !== 'object' || e === null) invalidTree('entry is not an object');
  validateTreePath(e.path);
  switch (e.kind) {
    case 'file':
    case 'exec':
      if (!Number.isSafeInteger(e.size) || e.size < 0) invalidTree(`bad size for ${JSON.stringify(e.path)}`);
      if (!isDigest(e.digest)) invalidTree(`bad digest for ${JSON.stringify(e.path)}`);
      return;
    case 'symlink':
      if (typeof e.target !== 'string' || e.target.length === 0 || e.target.includes('\0'))
        invalidTree(`bad symlink target for ${JSON.stringify(e.path)}`);
      if (Buffer.byteLength(e.target) > MAX_SYMLINK_TARGET_BYTES)
        invalidTree(`symlink target too long for ${JSON.stringify(e.path)}`);
      return;
    case 'dir':
      return;
    default:
      invalidTree(`unknown kind ${JSON.stringify((e as { kind: unknown }).kind)}`);
  }
}

/** Canonical bytes of a tree (validates and sorts first). */
export function encodeTree(entries: readonly TreeEntry[]): Buffer {
  return encodeNormalized(normalizeTree(entries).entries);
}

/**
 * Bytes of a tree that normalizeTree already validated and sorted: one
 * buffer of the exact size, measured in a first pass and filled in a second
 * (no joined string of the whole tree next to it: a tree may be hundreds of
 * MiB). A file entry whose path needs no JSON escape and is ASCII (nearly
 * every one) is measured by arithmetic and written byte by byte from its
 * fields; any other line is encodeEntry's string, written with one call.
 * Making a string per line and copying it (two native calls a line, or one
 * a 64 Ki chunk of joined lines, which must then be flattened) was a tenth
 * of a no-op push at 50,000 files.
 */
function encodeNormalized(entries: readonly TreeEntry[]): Buffer {
  const plain = new Uint8Array(entries.length);
  let size = HEADER.length + 1;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (
      (e.kind === 'file' || e.kind === 'exec') &&
      PLAIN_PATH.test(e.path) &&
      e.digest.length === DIGEST_CHARS
    ) {
      plain[i] = 1;
      size += FILE_LINE_FIXED + e.path.length + e.kind.length + digitsOf(e.size) + DIGEST_CHARS;
    } else size += Buffer.byteLength(encodeEntry(e)) + 1;
  }
  const out = Buffer.allocUnsafe(size);
  let at = out.write(HEADER, 0, 'latin1');
  out[at++] = 0x0a;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (plain[i] === 1) {
      const f = e as FileEntry;
      at = put(out, at, LINE_PATH);
      at = ascii(out, at, f.path);
      at = put(out, at, LINE_KIND);
      at = ascii(out, at, f.kind);
      at = put(out, at, LINE_SIZE);
      at = digits(out, at, f.size);
      at = put(out, at, LINE_DIGEST);
      at = ascii(out, at, f.digest);
      at = put(out, at, LINE_END);
    } else {
      at += out.write(encodeEntry(e), at);
      out[at++] = 0x0a;
    }
  }
  if (at !== size)
    throw new HoardError('HOARD_EINTERNAL', `tree encoding measured ${size} bytes, wrote ${at}`);
  return out;
}

/** ASCII without the characters JSON escapes (`"`, `\`, controls) and without DEL: written as is. */
const PLAIN_PATH = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const LINE_PATH = Buffer.from('{"path":"', 'latin1');
const LINE_KIND = Buffer.from('","kind":"', 'latin1');
const LINE_SIZE = Buffer.from('","size":', 'latin1');
const LINE_DIGEST = Buffer.from(',"digest":"', 'latin1');
const LINE_END = Buffer.from('"}\n', 'latin1');
/** The bytes of a plain file line besides its path, kind, size digits and digest. */
const FILE_LINE_FIXED =
  LINE_PATH.length + LINE_KIND.length + LINE_SIZE.length + LINE_DIGEST.length + LINE_END.length;

function put(out: Buffer, at: number, bytes: Buffer): number {
  for (let i = 0; i < bytes.length; i++) out[at + i] = bytes[i];
  return at + bytes.length;
}

/** Writes a string known to be ASCII. */
function ascii(out: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
  return at + s.length;
}

/** Decimal digits of a safe non-negative integer. */
function digitsOf(n: number): number {
  let d = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) d++;
  return d;
}

/** Writes a safe non-negative integer in decimal, as JSON.stringify does. */
function digits(out: Buffer, at: number, n: number): number {
  const end = at + digitsOf(n);
  let x = n;
  for (let i = end - 1; i >= at; i--) {
    out[i] = 0x30 + (x % 10);
    x = Math.floor(x / 10);
  }
  return end;
}

/** Characters of encoded lines joined before treeDigestOnly hashes them. */
const ENCODE_CHUNK_CHARS = 64 * 1024;

/** The header and the entries' lines, newline-terminated, as consecutive chunks. */
function eachChunk(entries: readonly TreeEntry[], fn: (chunk: string) => void): void {
  let chunk = `${HEADER}\n`;
  for (const e of entries) {
    chunk += `${encodeEntry(e)}\n`;
    if (chunk.length >= ENCODE_CHUNK_CHARS) {
      fn(chunk);
      chunk = '';
    }
  }
  fn(chunk);
}

export function treeDigest(entries: readonly TreeEntry[]): { digest: Digest; bytes: Buffer } {
  const bytes = encodeTree(entries);
  return { digest: sha256(bytes), bytes };
}

/**
 * The digest and bytes of a directory walk's entries (scan.ts), which are
 * valid by construction: every path passed validateTreePath as it was
 * listed, a walk lists each name once, an empty-folder entry has nothing
 * under it and a file nothing under it, sizes come from stat and digests
 * from hashing (or the checked stat cache), and the walk sorted them
 * canonically. What a walk cannot rule out is checked: two names that are
 * the same after Unicode normalisation. Re-validating and re-sorting 50,000
 * entries was a tenth of a no-op push.
 */
export function treeDigestOfWalk(sorted: readonly TreeEntry[]): { digest: Digest; bytes: Buffer } {
  checkNormalizationCollisions(sorted.map((e) => e.path));
  const bytes = encodeNormalized(sorted);
  return { digest: sha256(bytes), bytes };
}

/**
 * The digest of a tree without its bytes: validated like encodeTree, then
 * hashed in bounded chunks, for callers that only compare digests.
 */
export function treeDigestOnly(entries: readonly TreeEntry[]): Digest {
  const tree = normalizeTree(entries);
  const h = new Hasher();
  eachChunk(tree.entries, (chunk) => h.update(Buffer.from(chunk, 'utf8')));
  return h.digest();
}

/**
 * Decodes untrusted tree bytes chunk by chunk; only canonical encodings are
 * accepted. Each line must be exactly the canonical encoding of the entry it
 * parses to, and paths strictly increasing, which together mean the whole
 * input is canonical, without the tree as one text or re-encoded copy: peak
 * memory is the entries plus one chunk, so a tree can be decoded while it
 * streams in (the caller verifies its digest before trusting the result).
 */
/**
 * Longest line a canonical tree can have: a path and a symlink target of
 * MAX_PATH_BYTES / MAX_SYMLINK_TARGET_BYTES, every byte escaped as \u00XX
 * (6 bytes), plus the keys. A longer line is refused before it is parsed or
 * buffered further (a tree without newlines must not grow a buffer without end).
 */
const MAX_LINE_BYTES = 6 * (MAX_PATH_BYTES + MAX_SYMLINK_TARGET_BYTES) + 1024;

export class TreeDecoder {
  readonly entries: TreeEntry[] = [];
  #tail: Buffer | undefined;
  #line = 1;
  #prevPath: string | undefined;
  #prevAscii = false;
  #scratch = Buffer.allocUnsafe(16 * 1024);

  push(chunk: Uint8Array): void {
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.#tail) {
      buf = Buffer.concat([this.#tail, buf]);
      this.#tail = undefined;
    }
    let start = 0;
    for (;;) {
      const end = buf.indexOf(0x0a, start);
      if (end === -1) break;
      this.#takeLine(buf.subarray(start, end));
      start = end + 1;
    }
    // A partial line waits for the next chunk (copied: the caller may reuse its buffer).
    if (start < buf.byteLength) {
      if (buf.byteLength - start > MAX_LINE_BYTES)
        invalidTree(`line ${this.#line} is longer than ${MAX_LINE_BYTES} bytes`);
      this.#tail = Buffer.from(buf.subarray(start));
    }
  }

  end(): Tree {
    if (this.#tail) invalidTree(this.#line === 1 ? 'missing tree header' : 'missing final newline');
    if (this.#line === 1) invalidTree('missing tree header');
    checkStructure(this.entries);
    return { entries: this.entries };
  }

  #takeLine(raw: Buffer): void {
    const n = this.#line++;
    if (raw.byteLength > MAX_LINE_BYTES) invalidTree(`line ${n} is longer than ${MAX_LINE_BYTES} bytes`);
    if (n === 1) {
      if (raw.toString('latin1') !== HEADER) invalidTree('missing tree header');
      return;
    }
    const e = fastFileLine(raw) ?? this.#parseLine(raw, n);
    // Canonical order by path bytes. Two ASCII paths compare the same as
    // strings (no bytes to make); anything else compares as UTF-8 bytes.
    const ascii = ASCII_ONLY.test(e.path);
    if (this.#prevPath !== undefined) {
      const c =
        ascii && this.#prevAscii
          ? this.#prevPath === e.path
            ? 0
            : this.#prevPath < e.path
              ? -1
              : 1
          : comparePathBytes(this.#prevPath, e.path);
      if (c === 0) invalidTree(`duplicate path ${JSON.stringify(e.path)}`);
      if (c > 0) invalidTree('not in canonical form');
    }
    this.#prevPath = e.path;
    this.#prevAscii = ascii;
    this.entries.push(e);
  }

  /** Any line: parsed as JSON, validated, and compared byte for byte with its canonical encoding. */
  #parseLine(raw: Buffer, n: number): TreeEntry {
    let v: unknown;
    try {
      v = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      invalidTree(`line ${n} is not JSON`, err);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) invalidTree(`line ${n} is not an object`);
    const e = v as TreeEntry;
    validateEntry(e);
    const enc = encodeEntry(e);
    const len = Buffer.byteLength(enc, 'utf8');
    if (len !== raw.byteLength) invalidTree('not in canonical form');
    if (this.#scratch.byteLength < len) this.#scratch = Buffer.allocUnsafe(len);
    this.#scratch.write(enc, 0, 'utf8');
    if (!this.#scratch.subarray(0, len).equals(raw)) invalidTree('not in canonical form');
    return e;
  }
}

const DIGEST_KEY = Buffer.from(',"digest":"', 'latin1');

/**
 * The blob digests of a tree's canonical bytes, read in place: no line is
 * parsed and no entry made (a tree of 50,000 files decodes into as many
 * objects, most of a one-file push's time and memory when all it needs is
 * which blobs the tree references). Only for bytes known to be a valid tree
 * (checked against a digest that was validated when it was first decoded or
 * encoded): in canonical form every `"` inside a path or symlink target is
 * escaped, so `,"digest":"` occurs only as a file entry's own key.
 */
export function fileDigestsOfTreeBytes(bytes: Uint8Array): Set<Digest> {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Set<Digest>();
  let at = b.indexOf(DIGEST_KEY);
  while (at !== -1) {
    const start = at + DIGEST_KEY.length;
    const d = b.toString('latin1', start, start + DIGEST_CHARS);
    if (!isDigest(d)) invalidTree('a digest that is not one');
    out.add(d);
    at = b.indexOf(DIGEST_KEY, start + DIGEST_CHARS);
  }
  return out;
}

const ASCII_ONLY = /^[\x00-\x7f]*$/;
const FILE_HEAD = Buffer.from('{"path":"', 'latin1');
const KIND_FILE = Buffer.from('","kind":"file","size":', 'latin1');
const KIND_EXEC = Buffer.from('","kind":"exec","size":', 'latin1');
const DIGEST_HEAD = Buffer.from(',"digest":"sha256:', 'latin1');
/** Bytes of a canonical file line besides the path and the size digits. */
const FILE_FIXED = FILE_HEAD.length + KIND_FILE.length + DIGEST_HEAD.length + 64 + 2;

/**
 * The common line — a file or exec entry whose path is printable ASCII
 * without `"` or `\` — read in place from its canonical template, without
 * JSON.parse, an object walk and a re-encoding: undefined for anything
 * else, which then takes the general path (and is refused there if it is
 * not canonical). Accepting here means the line is byte for byte what
 * encodeEntry writes for the entry returned: the template's fixed parts
 * are compared exactly, the path needs no escaping in JSON and is ASCII (so
 * its string is its bytes), the size is a safe integer written without
 * leading zeros, and the digest is 64 lowercase hex digits; the path itself
 * passes validateTreePath, as on the general path.
 */
function fastFileLine(raw: Buffer): FileEntry | undefined {
  const len = raw.byteLength;
  if (len < FILE_FIXED + 2 || raw[0] !== 0x7b || raw[len - 1] !== 0x7d || raw[len - 2] !== 0x22)
    return undefined;
  if (raw.compare(FILE_HEAD, 0, FILE_HEAD.length, 0, FILE_HEAD.length) !== 0) return undefined;
  // The path: up to the first '"'; every byte printable ASCII other than '\\'.
  let i = FILE_HEAD.length;
  for (; i < len; i++) {
    const b = raw[i];
    if (b === 0x22) break;
    if (b < 0x20 || b > 0x7e || b === 0x5c) return undefined;
  }
  const pathEnd = i;
  if (pathEnd === FILE_HEAD.length || pathEnd + KIND_FILE.length > len) return undefined;
  let kind: 'file' | 'exec';
  if (raw.compare(KIND_FILE, 0, KIND_FILE.length, pathEnd, pathEnd + KIND_FILE.length) === 0) kind = 'file';
  else if (raw.compare(KIND_EXEC, 0, KIND_EXEC.length, pathEnd, pathEnd + KIND_EXEC.length) === 0)
    kind = 'exec';
  else return undefined;
  // The size: decimal digits, no leading zero (except "0" itself), a safe integer.
  const sizeStart = pathEnd + KIND_FILE.length;
  let j = sizeStart;
  let size = 0;
  for (; j < len && raw[j] >= 0x30 && raw[j] <= 0x39; j++) size = size * 10 + (raw[j] - 0x30);
  const digits = j - sizeStart;
  if (digits === 0 || digits > 16 || (digits > 1 && raw[sizeStart] === 0x30) || !Number.isSafeInteger(size))
    return undefined;
  // The digest: exactly the rest of the line.
  if (len - j !== DIGEST_HEAD.length + 64 + 2) return undefined;
  if (raw.compare(DIGEST_HEAD, 0, DIGEST_HEAD.length, j, j + DIGEST_HEAD.length) !== 0) return undefined;
  const hexStart = j + DIGEST_HEAD.length;
  for (let k = hexStart; k < hexStart + 64; k++) {
    const b = raw[k];
    if (!((b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66))) return undefined;
  }
  const path = raw.toString('latin1', FILE_HEAD.length, pathEnd);
  validateTreePath(path);
  return { path, kind, size, digest: `sha256:${raw.toString('latin1', hexStart, hexStart + 64)}` as Digest };
}

/** Decodes untrusted tree bytes; only canonical encodings are accepted (see TreeDecoder). */
export function decodeTree(bytes: Uint8Array): Tree {
  const d = new TreeDecoder();
  d.push(bytes);
  return d.end();
}

/** Files (and executables) of a tree, by path. */
export function fileEntries(tree: Tree): FileEntry[] {
  return tree.entries.filter((e): e is FileEntry => e.kind === 'file' || e.kind === 'exec');
}
