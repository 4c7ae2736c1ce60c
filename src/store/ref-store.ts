// The RefStore interface: the only mutable state in hoard. A ref maps a name
// to a digest and changes only by compare-and-set against the version the
// writer read (an ETag, a GCS generation, a local version token). Every
// backend passes test/store/ref-store-conformance.ts.

import { type Digest, isDigest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';

export interface RefValue {
  target: Digest;
  /** Opaque version token; changes on every successful write. */
  version: string;
}

export interface RefListing extends RefValue {
  name: string;
}

export interface RefStore {
  readonly description: string;
  get(name: string, signal?: AbortSignal): Promise<RefValue | undefined>;
  /**
   * Compare-and-set. `expected` is the version the writer read, or null for
   * "must not exist". Throws RefConflictError when the ref is elsewhere.
   * Returns the new version.
   */
  set(name: string, target: Digest, expected: string | null, signal?: AbortSignal): Promise<RefValue>;
  /** Deletes if at `expected` version; RefConflictError otherwise, RefNotFoundError if absent. */
  delete(name: string, expected: string, signal?: AbortSignal): Promise<void>;
  /** Refs whose names start with `prefix`, sorted by name. */
  list(prefix?: string, signal?: AbortSignal): AsyncIterable<RefListing>;
  close?(): Promise<void>;
}

/** The bytes stored for a ref in file and bucket layouts (`refs/<name>`). */
export function encodeRefObject(target: Digest): Buffer {
  return Buffer.from(`${JSON.stringify({ target })}\n`, 'utf8');
}

/** Parses a ref object (`{"target":"sha256:…"}`); extra fields are ignored. */
export function decodeRefObject(
  bytes: Uint8Array,
  name: string,
): { target: Digest } & Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new HoardError('HOARD_EREMOTE', `ref ${name} is not valid JSON`, { cause: err });
  }
  if (typeof v !== 'object' || v === null || !isDigest((v as { target?: unknown }).target))
    throw new HoardError('HOARD_EREMOTE', `ref ${name} has no valid target`);
  return v as { target: Digest };
}
