// Cache entry record: what a keyed cache entry (a Turborepo artifact, a
// Gradle or ccache key, a Bazel action result) points at — `{blob, size,
// meta}` as a small canonical JSON blob, so the entry's metadata (a
// signature tag, a duration) travels with it and the content blob stays
// shared by digest between every tool that stores the same bytes. gc and
// fsck follow a record to its blob, as they follow a snapshot to its tree.

import { type Digest, isDigest, sha256 } from './digest.ts';
import { HoardError } from './errors.ts';

export interface EntryRecord {
  blob: Digest;
  size: number;
  meta: Record<string, string>;
}

const KIND = 'entry/1';
/** The first bytes of every encoded record (gc and fsck tell records from other blobs by them). */
export const ENTRY_PREFIX = Buffer.from(`{"hoard":"${KIND}"`);
export const MAX_ENTRY_BYTES = 64 * 1024;

function invalid(why: string): never {
  throw new HoardError('HOARD_EBAD_REQUEST', `invalid cache entry record: ${why}`);
}

export function encodeEntry(rec: EntryRecord): { digest: Digest; bytes: Buffer } {
  validate(rec);
  const meta: Record<string, string> = {};
  for (const k of Object.keys(rec.meta).sort()) meta[k] = rec.meta[k];
  const bytes = Buffer.from(
    `${JSON.stringify({ hoard: KIND, blob: rec.blob, size: rec.size, meta })}\n`,
    'utf8',
  );
  if (bytes.byteLength > MAX_ENTRY_BYTES) invalid('metadata too large');
  return { digest: sha256(bytes), bytes };
}

/** The record in `bytes`, or undefined when they are not a record at all. */
export function decodeEntry(bytes: Uint8Array): EntryRecord | undefined {
  if (bytes.byteLength > MAX_ENTRY_BYTES) return undefined;
  if (!Buffer.from(bytes.subarray(0, ENTRY_PREFIX.length)).equals(ENTRY_PREFIX)) return undefined;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || v.hoard !== KIND) return undefined;
  const rec = { blob: v.blob, size: v.size, meta: v.meta } as EntryRecord;
  validate(rec);
  return rec;
}

function validate(rec: EntryRecord): void {
  if (!isDigest(rec.blob)) invalid('bad blob digest');
  if (!Number.isSafeInteger(rec.size) || rec.size < 0) invalid('bad size');
  if (typeof rec.meta !== 'object' || rec.meta === null || Array.isArray(rec.meta)) invalid('bad meta');
  for (const [k, val] of Object.entries(rec.meta))
    if (typeof val !== 'string') invalid(`meta ${JSON.stringify(k)} is not a string`);
}
