// A compact set of blob digests: 32 raw bytes per slot in one open-addressed
// table, instead of a JS Set of `sha256:<hex>` strings (~100+ bytes each on
// the V8 heap). Live-set marking and reachability hold one of these per pass,
// so their memory is ~45–90 bytes per distinct digest (load factor 0.35–0.7)
// and it sits outside the V8 heap, where the garbage collector never scans it.
//
// Digests inside a tree are chosen by whoever wrote the tree, not by SHA-256,
// so slots are picked by a hash of all 32 bytes mixed with a per-process
// random seed: a crafted tree cannot make every digest land in one probe run.

import { randomBytes } from 'node:crypto';
import type { Digest } from './digest.ts';

const KEY_WORDS = 8; // 32 bytes
const MIN_CAPACITY = 1024;
const MAX_LOAD = 0.7;
const SEED = new Uint32Array(randomBytes(4 * KEY_WORDS).buffer);

export class DigestSet {
  /** capacity * 8 words; an all-zero slot is empty (the zero digest is tracked apart). */
  #table: Uint32Array;
  #mask: number;
  #size = 0;
  #hasZero = false;
  readonly #key = new Uint32Array(KEY_WORDS);
  readonly #keyBytes = Buffer.from(this.#key.buffer);

  constructor(capacity = MIN_CAPACITY) {
    let cap = MIN_CAPACITY;
    while (cap < capacity / MAX_LOAD) cap *= 2;
    this.#table = new Uint32Array(cap * KEY_WORDS);
    this.#mask = cap - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** Bytes held by the table (what the set costs, for docs and tests). */
  get byteSize(): number {
    return this.#table.byteLength;
  }

  has(digest: Digest): boolean {
    if (!this.#load(digest)) return this.#hasZero;
    return this.#find(this.#table, this.#mask) < 0;
  }

  /** Adds `digest`; true when it was not in the set before. */
  add(digest: Digest): boolean {
    if (!this.#load(digest)) {
      if (this.#hasZero) return false;
      this.#hasZero = true;
      this.#size++;
      return true;
    }
    const slot = this.#find(this.#table, this.#mask);
    if (slot < 0) return false;
    this.#table.set(this.#key, slot * KEY_WORDS);
    this.#size++;
    if (this.#size > (this.#mask + 1) * MAX_LOAD) this.#grow();
    return true;
  }

  /** Parses the digest into #key; false for the all-zero digest. */
  #load(digest: Digest): boolean {
    // `sha256:` is 7 characters; Digest values are validated where they are decoded.
    this.#keyBytes.write(digest.slice(7), 0, 32, 'hex');
    const k = this.#key;
    return (k[0] | k[1] | k[2] | k[3] | k[4] | k[5] | k[6] | k[7]) !== 0;
  }

  #hash(): number {
    const k = this.#key;
    let h = 0x811c9dc5;
    for (let i = 0; i < KEY_WORDS; i++) h = Math.imul(h ^ k[i] ^ SEED[i], 0x9e3779b1) ^ (h >>> 15);
    // murmur3 finaliser: every input bit reaches the low bits used as the slot.
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /** The empty slot where #key belongs, or -1 when it is present (linear probing). */
  #find(table: Uint32Array, mask: number): number {
    const k = this.#key;
    for (let slot = this.#hash() & mask; ; slot = (slot + 1) & mask) {
      const o = slot * KEY_WORDS;
      if (
        (table[o] |
          table[o + 1] |
          table[o + 2] |
          table[o + 3] |
          table[o + 4] |
          table[o + 5] |
          table[o + 6] |
          table[o + 7]) ===
        0
      )
        return slot;
      if (
        table[o] === k[0] &&
        table[o + 1] === k[1] &&
        table[o + 2] === k[2] &&
        table[o + 3] === k[3] &&
        table[o + 4] === k[4] &&
        table[o + 5] === k[5] &&
        table[o + 6] === k[6] &&
        table[o + 7] === k[7]
      )
        return -1;
    }
  }

  #grow(): void {
    const old = this.#table;
    const cap = (this.#mask + 1) * 2;
    const table = new Uint32Array(cap * KEY_WORDS);
    const mask = cap - 1;
    for (let o = 0; o < old.length; o += KEY_WORDS) {
      if (
        (old[o] |
          old[o + 1] |
          old[o + 2] |
          old[o + 3] |
          old[o + 4] |
          old[o + 5] |
          old[o + 6] |
          old[o + 7]) ===
        0
      )
        continue;
      this.#key.set(old.subarray(o, o + KEY_WORDS));
      table.set(this.#key, this.#find(table, mask) * KEY_WORDS);
    }
    this.#table = table;
    this.#mask = mask;
  }
}
