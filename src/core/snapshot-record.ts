// Snapshot record: one version of a synced directory, `{tree, parents,
// createdAt, meta}`, stored as a small blob. Encoded canonically (fixed key
// order, meta keys sorted) so that the same record always has the same digest.

import { type Digest, isDigest, sha256 } from './digest.ts';
import { HoardError } from './errors.ts';

export interface SnapshotRecord {
  tree: Digest;
  parents: Digest[];
  /** ISO-8601 UTC timestamp. */
  createdAt: string;
  /** Free-form string metadata (message, host, tool version). */
  meta: Record<string, string>;
}

const KIND = 'snapshot/1';
export const MAX_SNAPSHOT_BYTES = 1024 * 1024;

function invalid(why: string, cause?: unknown): never {
  throw new HoardError('HOARD_ESNAPSHOT_INVALID', `invalid snapshot record: ${why}`, { cause });
}

export function encodeSnapshot(rec: SnapshotRecord): Buffer {
  validate(rec);
  const meta: Record<string, string> = {};
  for (const k of Object.keys(rec.meta).sort()) meta[k] = rec.meta[k];
  const obj = { hoard: KIND, tree: rec.tree, parents: rec.parents, createdAt: rec.createdAt, meta };
  return Buffer.from(`${JSON.stringify(obj)}\n`, 'utf8');
}

export function snapshotDigest(rec: SnapshotRecord): { digest: Digest; bytes: Buffer } {
  const bytes = encodeSnapshot(rec);
  return { digest: sha256(bytes), bytes };
}

export function decodeSnapshot(bytes: Uint8Array): SnapshotRecord {
  if (bytes.byteLength > MAX_SNAPSHOT_BYTES) invalid('too large');
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    invalid('not JSON', err);
  }
  if (typeof v !== 'object' || v === null || v.hoard !== KIND) invalid('not a hoard snapshot record');
  const rec = { tree: v.tree, parents: v.parents, createdAt: v.createdAt, meta: v.meta } as SnapshotRecord;
  validate(rec);
  return rec;
}

function validate(rec: SnapshotRecord): void {
  if (!isDigest(rec.tree)) invalid('bad tree digest');
  if (!Array.isArray(rec.parents) || !rec.parents.every(isDigest)) invalid('bad parents');
  if (typeof rec.createdAt !== 'string' || Number.isNaN(Date.parse(rec.createdAt))) invalid('bad createdAt');
  if (typeof rec.meta !== 'object' || rec.meta === null || Array.isArray(rec.meta)) invalid('bad meta');
  for (const [k, val] of Object.entries(rec.meta)) {
    if (typeof val !== 'string') invalid(`meta ${JSON.stringify(k)} is not a string`);
  }
}
