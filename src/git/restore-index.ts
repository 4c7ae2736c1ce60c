// The git index of a restored work tree, derived from the extraction itself.
//
// The snapshot archive has no index (stat data cannot be deterministic), and
// building one with `git reset -q` re-reads and re-hashes every file just
// written: 0.45-0.75 s of an eslint restore (issue 16). The extractor already
// holds every byte it writes, so this recorder hashes each file's body as a
// git blob while it is written and takes its stat data from the open
// descriptor (fstat, after the last write and the mtime), then writes a
// version-2 index with those entries. Nothing in it comes from the archive's
// word: the object ids are of the bytes on disk, the stat data is the
// kernel's, and restore still verifies the result against the commit (the
// index equal to HEAD's tree, `git status` clean), so an archive whose files
// differ from its commit fails exactly as before.
//
// Racy git: an entry whose mtime is not older than the index file's is
// "racily clean", and git re-hashes it on every status until the index is
// rewritten later. The extraction therefore keeps the archive's mtimes (the
// commit time) for files, so the index, written after them, is newer.
// (A commit time in the future only makes those entries racy: git then
// re-hashes them, which is correct, merely slower.)
//
// Not covered, so restore falls back to `git reset -q` (`usable` false):
// hard links, empty directories (the archive's form of a submodule: the
// gitlink's commit is not in the archive) and SHA-256 repositories.

import { createHash, type Hash } from 'node:crypto';
import { type BigIntStats, fstatSync, lstatSync } from 'node:fs';
import type { ExtractRecorder } from '../archive/safe-extract.ts';

/** Bytes of an index entry before its name: stat data, mode, object id, flags. */
const FIXED = 62;

const U32 = 0xffffffffn;
const NS = 1_000_000_000n;

function underGit(name: string): boolean {
  return name === '.git' || name.startsWith('.git/');
}

function blobHash(size: number): Hash {
  return createHash('sha1').update(`blob ${size}\0`);
}

/** Records the work tree's files as the extractor writes them; `encode()` is the index. */
export class GitIndexRecorder implements ExtractRecorder {
  /** False when the index cannot be derived (see the header): build it with `git reset` instead. */
  usable = true;
  /**
   * Each entry's fixed part, encoded as it is recorded (in arrival order), and
   * its name: two objects kept per file, not a record of seven BigInts, two
   * Buffers and a stat object, which every young-generation GC of the
   * extraction had to copy and promote (issue 16).
   */
  #fixed = Buffer.alloc(FIXED * 1024);
  readonly #names: Buffer[] = [];
  /** Whether the names arrived in index order (a hoard snapshot is sorted): no sort needed. */
  #sorted = true;
  #hash: Hash | null = null;
  #name = '';
  /** Directory entries of the archive, and the parents of what it wrote: an entry of the first missing from the second is empty. */
  readonly #dirs: string[] = [];
  readonly #parents = new Set<string>();

  fileStart(name: string, size: number): void {
    this.#hash = underGit(name) ? null : blobHash(size);
    this.#name = name;
  }

  fileData(piece: Buffer): void {
    this.#hash?.update(piece);
  }

  fileEnd(fd: number): void {
    const hash = this.#hash;
    if (!hash) return;
    this.#hash = null;
    const st = fstatSync(fd, { bigint: true });
    // What git records for a regular file: 644 or 755 by the owner's execute bit.
    const mode = st.mode & 0o100n ? 0o100755 : 0o100644;
    this.#add(this.#name, mode, hash.digest(), st);
  }

  symlink(name: string, target: string, path: string): void {
    if (underGit(name)) return;
    const body = Buffer.from(target, 'utf8');
    const oid = blobHash(body.byteLength).update(body).digest();
    this.#add(name, 0o120000, oid, lstatSync(path, { bigint: true }));
  }

  hardlink(): void {
    this.usable = false;
  }

  directory(name: string): void {
    if (!underGit(name)) this.#dirs.push(name);
  }

  #add(name: string, mode: number, oid: Buffer, st: BigIntStats): void {
    for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) this.#parents.add(name.slice(0, i));
    const nameBuf = Buffer.from(name, 'utf8');
    const i = this.#names.length;
    if (i > 0 && Buffer.compare(this.#names[i - 1], nameBuf) > 0) this.#sorted = false;
    this.#names.push(nameBuf);
    if ((i + 1) * FIXED > this.#fixed.byteLength) {
      const grown = Buffer.alloc(this.#fixed.byteLength * 2);
      this.#fixed.copy(grown);
      this.#fixed = grown;
    }
    const f = this.#fixed;
    let at = i * FIXED;
    const u32 = (v: bigint) => {
      f.writeUInt32BE(Number(v & U32), at);
      at += 4;
    };
    u32(st.ctimeNs / NS);
    u32(st.ctimeNs % NS);
    u32(st.mtimeNs / NS);
    u32(st.mtimeNs % NS);
    u32(st.dev);
    u32(st.ino);
    f.writeUInt32BE(mode, at);
    at += 4;
    u32(st.uid);
    u32(st.gid);
    u32(st.size);
    oid.copy(f, at);
    at += 20;
    f.writeUInt16BE(Math.min(nameBuf.byteLength, 0xfff), at);
  }

  /** Whether every directory of the archive holds something (else it may be a submodule). */
  #noEmptyDirectories(): boolean {
    return this.#dirs.every((d) => this.#parents.has(d));
  }

  /** The index file (version 2, no extensions), or null when it cannot be derived. */
  encode(commit: string): Buffer | null {
    if (!this.usable || commit.length !== 40 || !this.#noEmptyDirectories()) return null;
    const names = this.#names;
    const order = names.map((_, i) => i);
    if (!this.#sorted) order.sort((a, b) => Buffer.compare(names[a], names[b]));
    let total = 12 + 20;
    for (const name of names) total += (FIXED + name.byteLength + 8) & ~7;
    const out = Buffer.alloc(total);
    out.write('DIRC', 0, 'latin1');
    out.writeUInt32BE(2, 4);
    out.writeUInt32BE(names.length, 8);
    let at = 12;
    for (const i of order) {
      this.#fixed.copy(out, at, i * FIXED, (i + 1) * FIXED);
      names[i].copy(out, at + FIXED);
      // 1-8 NULs: the name is NUL-terminated and the entry padded to 8 bytes.
      at += (FIXED + names[i].byteLength + 8) & ~7;
    }
    createHash('sha1').update(out.subarray(0, at)).digest().copy(out, at);
    return out;
  }
}
