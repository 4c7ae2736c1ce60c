// Streaming decoder of tree blobs: entries come out one line at a time while
// the bytes are still being read, so a tree of any size costs one read chunk
// and one line (at most MAX_TREE_LINE_BYTES) instead of the whole blob, its
// text and its entry array (issue 11: a 509 MB tree decoded at once took a
// server to 6.4 GB and held the event loop for 72 s).
//
// It accepts exactly the inputs decodeTree (tree.ts) accepts: the header,
// every line in canonical form and valid UTF-8, each entry valid on its own,
// paths strictly increasing in byte order (no duplicates), nothing under a
// non-directory entry, no two paths equal after Unicode normalisation, and a
// final newline. The cross-entry rules need only bounded state because the
// input must already be sorted:
// - "under a non-directory": if entry L is a proper prefix of a later path p,
//   every path between them in byte order also starts with L. So a stack of
//   the earlier entries that are prefixes of the previous path (a chain no
//   longer than a path) is all that can be an ancestor of the next one.
// - normalisation: two distinct paths can share an NFC form only if one is not
//   NFC, and an NFC path can be the NFC form of another string only if it has
//   a non-ASCII character or one of `K`, `;`, `` ` `` (the NFC forms of the
//   singletons U+212A, U+037E, U+1FEF; test/core/tree-stream.test.ts checks this
//   against every code point). Only those paths and the non-NFC ones are kept,
//   so a tree of plain ASCII names keeps nothing.
//
// Entries are yielded before the end of the input is seen: a consumer must
// treat what it got as provisional until the iteration ends without an error
// (gc marking only keeps more when it stops early, which is safe).
//
// The decoder yields to the event loop (setImmediate) whenever it has run for
// DEFAULTS.treeDecodeSliceMs, also within one large chunk, so a big tree never
// holds up request handling for longer than that slice.

import { isUtf8 } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DEFAULTS } from './defaults.ts';
import { HoardError } from './errors.ts';
import {
  encodeEntry,
  invalidTree,
  MAX_SYMLINK_TARGET_BYTES,
  TREE_HEADER,
  type TreeEntry,
  validateEntry,
} from './tree.ts';
import { MAX_PATH_BYTES } from './tree-path.ts';

/**
 * Longest line the streaming decoder accepts. The longest canonical entry is a
 * symlink whose path and target (4096 bytes each) are all control characters,
 * each escaped as `\u00XX` (6 bytes): ~48 KiB plus the keys.
 */
export const MAX_TREE_LINE_BYTES = 64 * 1024;
// The bound above must stay above the longest valid line.
if (6 * (MAX_PATH_BYTES + MAX_SYMLINK_TARGET_BYTES) + 256 > MAX_TREE_LINE_BYTES)
  throw new Error('MAX_TREE_LINE_BYTES is below the longest canonical tree line');

export interface TreeStreamOptions {
  /** More bytes than this: HOARD_ETOO_LARGE (default: no bound). */
  maxBytes?: number;
  /** Longest line (tests lower it; default MAX_TREE_LINE_BYTES). */
  maxLineBytes?: number;
  /** Longest run on the event loop before yielding (default DEFAULTS.treeDecodeSliceMs). */
  sliceMs?: number;
}

const NEWLINE = 0x0a;
const HEADER_BYTES = Buffer.from(TREE_HEADER, 'utf8');
/** Checked for the time slice every this many lines (performance.now() is not free). */
const LINES_PER_CLOCK_CHECK = 128;
/** An NFC path with one of these can be the NFC form of a different string. */
const NFC_TARGET = /[^\x00-\x7f]|[K;`]/;

/** Decodes untrusted tree bytes from a stream; only canonical encodings are accepted. */
export async function* decodeTreeStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: TreeStreamOptions = {},
): AsyncGenerator<TreeEntry, void, undefined> {
  const maxLine = opts.maxLineBytes ?? MAX_TREE_LINE_BYTES;
  const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  const sliceMs = opts.sliceMs ?? DEFAULTS.treeDecodeSliceMs;
  const rules = new CrossEntryRules();
  let carry: Buffer[] = [];
  let carryBytes = 0;
  let total = 0;
  let lineNo = 0;
  let sliceStart = performance.now();
  let sinceClock = 0;
  const tooLong = (): never => invalidTree(`line ${lineNo + 1} is longer than ${maxLine} bytes`);
  for await (const raw of source) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    total += chunk.length;
    if (total > maxBytes)
      throw new HoardError('HOARD_ETOO_LARGE', `tree is larger than ${maxBytes} bytes`, {
        details: { limit: maxBytes },
      });
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl === -1) {
        if (carryBytes + chunk.length - start > maxLine) tooLong();
        carry.push(chunk.subarray(start));
        carryBytes += chunk.length - start;
        break;
      }
      let line = chunk.subarray(start, nl);
      if (carryBytes + line.length > maxLine) tooLong();
      if (carryBytes > 0) {
        carry.push(line);
        line = Buffer.concat(carry, carryBytes + line.length);
        carry = [];
        carryBytes = 0;
      }
      start = nl + 1;
      lineNo++;
      if (lineNo === 1) {
        if (!line.equals(HEADER_BYTES)) invalidTree('missing tree header');
        continue;
      }
      yield rules.entry(line, lineNo);
      if (++sinceClock >= LINES_PER_CLOCK_CHECK) {
        sinceClock = 0;
        if (performance.now() - sliceStart >= sliceMs) {
          await nextTurn();
          sliceStart = performance.now();
        }
      }
    }
  }
  if (lineNo === 0) invalidTree('missing tree header');
  if (carryBytes > 0) invalidTree('missing final newline');
}

/** The per-line checks and the bounded state of the cross-entry rules. */
class CrossEntryRules {
  #prev: Buffer | undefined;
  /** Earlier entries that are prefixes of the previous path, shortest first. */
  #leaves: string[] = [];
  /** NFC form → path, for paths that are not NFC. */
  #nonNfc = new Map<string, string>();
  /** NFC paths that could be the NFC form of another path (see the header). */
  #targets = new Set<string>();

  entry(line: Buffer, lineNo: number): TreeEntry {
    // Invalid UTF-8 would decode to U+FFFD and re-encode differently: not canonical either way.
    if (!isUtf8(line)) invalidTree(`line ${lineNo} is not in canonical form (not UTF-8)`);
    const text = line.toString('utf8');
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      invalidTree(`line ${lineNo} is not JSON`, err);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      invalidTree(`line ${lineNo} is not an object`);
    const e = v as TreeEntry;
    validateEntry(e);
    if (encodeEntry(e) !== text) invalidTree(`line ${lineNo} is not in canonical form`);
    this.#order(e.path, lineNo);
    this.#notUnderLeaf(e.path);
    this.#normalization(e.path);
    return e;
  }

  #order(path: string, lineNo: number): void {
    const bytes = Buffer.from(path, 'utf8');
    if (this.#prev) {
      const c = Buffer.compare(this.#prev, bytes);
      if (c === 0) invalidTree(`duplicate path ${JSON.stringify(path)}`);
      if (c > 0) invalidTree(`not in canonical form (line ${lineNo} is out of order)`);
    }
    this.#prev = bytes;
  }

  #notUnderLeaf(path: string): void {
    const leaves = this.#leaves;
    // A leaf that is not a prefix of this path is a prefix of no later one (sorted input).
    while (leaves.length > 0 && !path.startsWith(leaves[leaves.length - 1])) leaves.pop();
    for (const leaf of leaves)
      if (path.charCodeAt(leaf.length) === 0x2f)
        invalidTree(`${JSON.stringify(path)} lies under non-directory entry ${JSON.stringify(leaf)}`);
    leaves.push(path);
  }

  #normalization(path: string): void {
    // Plain ASCII without K ; ` is NFC and the NFC form of nothing else: nothing to check or keep.
    if (!NFC_TARGET.test(path)) return;
    const key = path.normalize('NFC');
    const fail = (other: string): never => {
      throw new HoardError(
        'HOARD_EPATH_INVALID',
        `invalid path ${JSON.stringify(path)}: collides with ${JSON.stringify(other)} after Unicode normalisation`,
        { details: { path } },
      );
    };
    if (key !== path) {
      const other = this.#nonNfc.get(key) ?? (this.#targets.has(key) ? key : undefined);
      if (other !== undefined) fail(other);
      this.#nonNfc.set(key, path);
      return;
    }
    const other = this.#nonNfc.get(path);
    if (other !== undefined) fail(other);
    this.#targets.add(path);
  }
}
