// The console's blobs page: the largest blobs of the memory and disk tiers
// (their own accounting, or the disk census), the most-read ones
// (read-tally.ts through the metrics), and where one looked-up blob is.

import { type Digest, digestFromHex, isDigest } from '../../core/digest.ts';
import { HoardError } from '../../core/errors.ts';
import { mapLimit } from '../../core/pool.ts';
import type { FeatureContext } from '../../server/feature.ts';
import { reportsUsage } from '../../store/tier-usage.ts';
import type { BlobsView } from './console-views.ts';
import type { DiskCensus } from './disk-census.ts';

/** How many rows each list shows. */
const LIST_LIMIT = 20;

export async function blobsView(ctx: FeatureContext, census: DiskCensus, lookup: string): Promise<BlobsView> {
  const digest = lookup === '' ? undefined : parseLookupDigest(lookup);
  const sizeOf = async (d: Digest) => (await ctx.blobs.stat(d).catch(() => undefined))?.size ?? null;
  const memory = ctx.blobs.memory;
  const disk = ctx.blobs.disk;
  const largestMemory = reportsUsage(memory) && memory.largest ? memory.largest(LIST_LIMIT) : [];
  const largestDisk =
    reportsUsage(disk) && disk.largest ? disk.largest(LIST_LIMIT) : (await census.get()).largest;
  const mostRead = await mapLimit(ctx.metrics.reads.top(LIST_LIMIT), 8, async (e) => ({
    digest: e.digest,
    reads: e.reads,
    size: await sizeOf(e.digest),
  }));
  let found: BlobsView['lookup'] = null;
  if (digest) {
    found = {
      digest,
      size: await sizeOf(digest),
      memory: await memory.has(digest),
      disk: await disk.has(digest),
      shared: ctx.blobs.shared ? await ctx.blobs.shared.has(digest).catch(() => false) : null,
    };
  }
  return { largest: { memory: largestMemory, disk: largestDisk }, mostRead, lookup: found };
}

/** `sha256:<hex>` or the bare 64 hex digits. */
export function parseLookupDigest(text: string): Digest {
  const t = text.trim().toLowerCase();
  if (isDigest(t)) return t;
  if (/^[0-9a-f]{64}$/.test(t)) return digestFromHex(t);
  throw new HoardError('HOARD_EDIGEST_INVALID', `not a digest: ${JSON.stringify(text.slice(0, 100))}`, {
    hint: 'sha256:<64 hex digits>, or the 64 hex digits alone',
  });
}
