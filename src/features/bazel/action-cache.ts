// The action cache (AC) of the Remote Execution API, protocol neutral: the
// Bazel HTTP cache serves it today, a gRPC REAPI front-end later, both on the
// one store. An action digest maps to a cache entry
// `cache/bazel/<instance>/ac/<hex>` whose content blob is the ActionResult,
// stored as the client sent it.
//
// Integrity: a hit is served only when every blob the result references —
// output files, output directory Trees and every file a Tree lists, stdout
// and stderr — is present in some tier. A cache that keeps an action but has
// evicted one of its outputs breaks builds (the client trusts the hit and
// then cannot download the output), so such an entry is a miss: the client
// runs the action and uploads it again.
//
// Writes are last-writer-wins: REAPI's UpdateActionResult replaces, and a
// re-run of a non-deterministic action must be able to replace an entry
// whose outputs were evicted (create-if-absent would keep the dead one
// forever).

import { Readable } from 'node:stream';
import type { Digest } from '../../core/digest.ts';
import { HoardError, isHoardError } from '../../core/errors.ts';
import { readAllBounded } from '../../core/streams.ts';
import type { CacheEntries, CacheEntry } from '../../server/cache-entries.ts';
import { type BlobHandle, bufferHandle } from '../../store/blob-handle.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { decodeActionResult, treeFileDigests } from './action-result.ts';

/**
 * Largest ActionResult accepted (and read back): it is parsed in memory.
 * Results are small unless stdout/stderr are inlined; Bazel inlines little.
 */
export const MAX_ACTION_RESULT_BYTES = 16 * 1024 * 1024;

/**
 * Largest output-directory Tree read to check its files on a hit. A larger
 * one cannot be checked in bounded memory, so its action is a miss (the safe
 * answer: a wrong hit breaks a build, a miss only costs a re-run).
 */
export const MAX_TREE_BYTES = 32 * 1024 * 1024;

/** How many digests one `missing` question carries. */
const MISSING_BATCH = 1000;

/** Entry metadata: `format` tells an ActionResult from an opaque value (see put). */
export const FORMAT_ACTION_RESULT = 'action-result';
const FORMAT_OPAQUE = 'opaque';

export interface ActionCacheHit {
  /** The cache entry (its digest is the ETag). */
  readonly entry: CacheEntry;
  /** The stored value as the client sent it, opened (sendContent closes it). */
  readonly handle: BlobHandle;
}

/** What the integrity check reads of the CAS. */
export type ActionCacheBlobs = Pick<BlobStore, 'stat' | 'read' | 'missing'>;

export class ActionCache {
  readonly #entries: CacheEntries;
  readonly #blobs: ActionCacheBlobs;

  constructor(entries: CacheEntries, blobs: ActionCacheBlobs) {
    this.#entries = entries;
    this.#blobs = blobs;
  }

  /** The entry name of an action digest (`hex`) in an instance (`_`: none). Invalid parts are 400. */
  name(instance: string | undefined, hex: string): string {
    if (!/^[0-9a-f]{64}$/.test(hex))
      throw new HoardError(
        'HOARD_EDIGEST_INVALID',
        `invalid action digest ${JSON.stringify(hex.slice(0, 80))}`,
        {
          hint: 'an action cache key is 64 lowercase hex characters (a SHA-256)',
        },
      );
    return this.#entries.refName(instance ?? '_', 'ac', hex);
  }

  /** The verified hit, or undefined: no entry, or one of the blobs it references is gone. */
  async get(name: string, signal?: AbortSignal): Promise<ActionCacheHit | undefined> {
    return (await this.lookup(name, { signal })).hit;
  }

  /** As get(), telling an incomplete entry (present, but an output is gone) from an absent one. */
  async lookup(
    name: string,
    opts: { ranged?: boolean; signal?: AbortSignal } = {},
  ): Promise<{ hit?: ActionCacheHit; incomplete: boolean }> {
    const opened = await this.#entries.open(name, opts);
    if (!opened) return { incomplete: false };
    const { entry, handle } = opened;
    // An opaque value is streamed as it is (ccache entries can be large).
    if (entry.meta.format === FORMAT_OPAQUE) return { hit: { entry, handle }, incomplete: false };
    // Too large to be one of ours: a miss.
    if (handle.size > MAX_ACTION_RESULT_BYTES) {
      handle.close();
      return { incomplete: true };
    }
    const bytes = handle.bytes
      ? handle.bytes(0, handle.size)
      : await readAllBounded(handle.stream(0, handle.size), MAX_ACTION_RESULT_BYTES);
    if (!(await this.#complete(bytes, opts.signal))) return { incomplete: true };
    return { hit: { entry, handle: bufferHandle(bytes, handle.tier) }, incomplete: false };
  }

  /**
   * Stores an action result (last writer wins); a body that is not an
   * ActionResult is HOARD_EBAD_REQUEST and stores nothing. `opaque`: a value
   * stored as it comes, without validation or integrity check on reads —
   * ccache's `bazel` layout keeps its own entries under /ac/ (bazel-routes.ts).
   */
  async put(
    name: string,
    body: Readable,
    opts: { size?: number; opaque?: boolean; signal?: AbortSignal } = {},
  ): Promise<void> {
    const { signal } = opts;
    if (opts.opaque) {
      const meta = { format: FORMAT_OPAQUE };
      await this.#entries.put(name, body, { size: opts.size, meta, mode: 'overwrite', signal });
      return;
    }
    const bytes = await readAllBounded(body, MAX_ACTION_RESULT_BYTES);
    if (opts.size !== undefined && bytes.byteLength !== opts.size)
      throw new HoardError('HOARD_ETRUNCATED', `expected ${opts.size} bytes, got ${bytes.byteLength}`);
    decodeActionResult(bytes);
    const meta = { format: FORMAT_ACTION_RESULT };
    await this.#entries.put(name, Readable.from([bytes]), {
      size: bytes.byteLength,
      meta,
      mode: 'overwrite',
      signal,
    });
  }

  async delete(name: string): Promise<boolean> {
    return this.#entries.delete(name);
  }

  /** Whether every blob the result references is present (Trees opened to check their files). */
  async #complete(bytes: Buffer, signal?: AbortSignal): Promise<boolean> {
    let refs: ReturnType<typeof decodeActionResult>;
    try {
      refs = decodeActionResult(bytes);
    } catch (err) {
      // Stored through another door (the refs API) and not an ActionResult: never a hit.
      if (isHoardError(err, 'HOARD_EBAD_REQUEST')) return false;
      throw err;
    }
    if (!(await this.#allPresent([...refs.blobs, ...refs.trees], signal))) return false;
    for (const tree of refs.trees) {
      const info = await this.#blobs.stat(tree, signal);
      if (!info || info.size > MAX_TREE_BYTES) return false;
      let files: Digest[];
      try {
        files = treeFileDigests(
          await readAllBounded(await this.#blobs.read(tree, undefined, signal), MAX_TREE_BYTES),
        );
      } catch (err) {
        if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND') || isHoardError(err, 'HOARD_EBAD_REQUEST'))
          return false;
        throw err;
      }
      if (!(await this.#allPresent(files, signal))) return false;
    }
    return true;
  }

  async #allPresent(digests: readonly Digest[], signal?: AbortSignal): Promise<boolean> {
    for (let i = 0; i < digests.length; i += MISSING_BATCH) {
      const missing = await this.#blobs.missing(digests.slice(i, i + MISSING_BATCH), signal);
      if (missing.length > 0) return false;
    }
    return true;
  }
}
