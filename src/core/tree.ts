// Tree: the canonical listing of a directory. Equal directories give equal
// bytes (and so equal tree digests) on every machine: entries are sorted by
// path bytes, and the encoding is one fixed-key JSON object per line. Decoding
// untrusted bytes validates every field and insists the input is already in
// canonical form, so a tree digest always names exactly one listing.

import { type Digest, isDigest, sha256 } from './digest.ts';
import { HoardError } from './errors.ts';
import { checkNormalizationCollisions, comparePathBytes, validateTreePath } from './tree-path.ts';

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

export function invalidTree(why: string, cause?: unknown): never {
  throw new HoardError('HOARD_ETREE_INVALID', `invalid tree: ${why}`, { cause });
}

/** The canonical line of one entry (without the newline). */
export function encodeEntry(e: TreeEntry): string {
  switch (e.kind) {
    case 'file':
    case 'exec':
      return JSON.stringify({ path: e.path, kind: e.kind, size: e.size, digest: e.digest });
    case 'symlink':
      return JSON.stringify({ path: e.path, kind: e.kind, target: e.target });
    case 'dir':
      return JSON.stringify({ path: e.path, kind: e.kind });
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
  checkNormalizationCollisions(sorted.map((e) => e.path));
  // A path can only have children if no entry claims it as a file, symlink
  // or empty directory: "a" and "a/b" together cannot both be written.
  const leaves = new Set(sorted.map((e) => e.path));
  for (const e of sorted) {
    let i = e.path.indexOf('/');
    while (i !== -1) {
      const parent = e.path.slice(0, i);
      if (leaves.has(parent))
        invalidTree(`${JSON.stringify(e.path)} lies under non-directory entry ${JSON.stringify(parent)}`);
      i = e.path.indexOf('/', i + 1);
    }
  }
  return { entries: sorted };
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
  return encodeNormalized(normalizeTree(entries));
}

/** Bytes of a tree that normalizeTree already validated and sorted. */
function encodeNormalized(tree: Tree): Buffer {
  const lines = [HEADER, ...tree.entries.map(encodeEntry)];
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8');
}

export function treeDigest(entries: readonly TreeEntry[]): { digest: Digest; bytes: Buffer } {
  const bytes = encodeTree(entries);
  return { digest: sha256(bytes), bytes };
}

/** Decodes untrusted tree bytes; only canonical encodings are accepted. */
export function decodeTree(bytes: Uint8Array): Tree {
  const text = Buffer.from(bytes).toString('utf8');
  if (!text.startsWith(`${HEADER}\n`)) invalidTree('missing tree header');
  const lines = text.slice(HEADER.length + 1).split('\n');
  if (lines.pop() !== '') invalidTree('missing final newline');
  const entries: TreeEntry[] = lines.map((line, i) => {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      invalidTree(`line ${i + 2} is not JSON`, err);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      invalidTree(`line ${i + 2} is not an object`);
    return v as TreeEntry;
  });
  const tree = normalizeTree(entries);
  if (!Buffer.from(bytes).equals(encodeNormalized(tree))) invalidTree('not in canonical form');
  return tree;
}

/** Files (and executables) of a tree, by path. */
export function fileEntries(tree: Tree): FileEntry[] {
  return tree.entries.filter((e): e is FileEntry => e.kind === 'file' || e.kind === 'exec');
}
