// This server's own record of the snapshot digests it generated or verified:
// `<verifiedDir>/<sha256 of the ref name>` holding the digest, on its own
// disk, never in the shared stores. The ref and the blob it names may have
// been written by anyone who can write the shared bucket (or, before the
// namespace was server-owned, a user token), so only a digest recorded here
// is served as a commit's snapshot (snapshot-service.ts verifies any other by
// regenerating it).

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Digest, hexOf, sha256 } from '../core/digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { writeFileAtomic } from '../store/fs-atomic.ts';

export class SnapshotTrustRecords {
  readonly dir: string;
  readonly #blobs: BlobStore;
  /** Creates the directory (once) before the first record is written. */
  readonly #prepare: () => Promise<void>;
  /** Ref name → digest this server generated or verified (cache of the directory). */
  readonly #verified = new Map<string, Digest>();

  constructor(dir: string, blobs: BlobStore, prepare: () => Promise<void>) {
    this.dir = dir;
    this.#blobs = blobs;
    this.#prepare = prepare;
  }

  /** This server's own record of the ref's digest, when its blob is still stored. */
  async trusted(refName: string): Promise<{ digest: Digest; size: number } | undefined> {
    const digest = await this.#recorded(refName);
    if (!digest) return undefined;
    const st = await this.#blobs.stat(digest);
    // A blob that aged out is regenerated (deterministically: same digest).
    return st ? { digest, size: st.size } : undefined;
  }

  /** The record's file (its mtime: when this server generated or verified the snapshot). */
  pathOf(refName: string): string {
    return join(this.dir, hexOf(sha256(refName)));
  }

  async #recorded(refName: string): Promise<Digest | undefined> {
    const cached = this.#verified.get(refName);
    if (cached) return cached;
    let text: string;
    try {
      text = (await readFile(this.pathOf(refName), 'utf8')).trim();
    } catch {
      return undefined;
    }
    if (!/^sha256:[0-9a-f]{64}$/.test(text)) return undefined;
    this.#verified.set(refName, text as Digest);
    return text as Digest;
  }

  async record(refName: string, digest: Digest): Promise<void> {
    await this.#prepare();
    await writeFileAtomic(this.pathOf(refName), `${digest}\n`, this.dir);
    this.#verified.set(refName, digest);
  }
}
