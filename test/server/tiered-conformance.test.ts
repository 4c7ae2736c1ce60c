// The server's tier stack is a BlobStore like any other: it runs the one
// BlobStore conformance suite unchanged, as memory → disk (the disk
// authoritative), as memory → disk → a shared file:// remote, and with the
// bounded disk (--max-disk) in the stack; the bounded disk store on its own too.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openRemote } from '../../src/remote/remote.ts';
import { BoundedDiskStore } from '../../src/server/bounded-disk-store.ts';
import { DiskIndex } from '../../src/server/disk-index.ts';
import { TieredBlobStore } from '../../src/server/tiered-blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';
import { blobStoreConformance } from '../store/blob-store-conformance.ts';

/** The bounded disk of `hoard serve --max-disk` (a cache: plenty of room, so the suite sees no eviction). */
async function boundedDisk(root: string) {
  const fs = await FsBlobStore.open(root);
  const index = new DiskIndex(fs, { maxBytes: 1024 * 1024 * 1024, mode: 'cache' });
  await index.open();
  return { disk: new BoundedDiskStore(fs, index), index };
}

async function tiers(withShared: boolean, bounded = false) {
  const root = await mkdtemp(join(tmpdir(), 'hoard-tiers-'));
  const b = bounded ? await boundedDisk(join(root, 'disk')) : undefined;
  const disk = b?.disk ?? (await FsBlobStore.open(join(root, 'disk')));
  const shared = withShared
    ? await openRemote(pathToFileURL(join(root, 'shared')).href, { create: true })
    : undefined;
  // A small memory tier, so the large blob of the suite streams past it.
  const memory = new MemoryBlobStore({ maxBytes: 1024 * 1024, maxBlobBytes: 256 * 1024 });
  const store = new TieredBlobStore({ memory, disk, shared: shared?.blobs });
  return {
    store,
    cleanup: async () => {
      await b?.index.close();
      await shared?.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

blobStoreConformance('tiers: memory → disk', () => tiers(false));
blobStoreConformance('tiers: memory → disk → shared file://', () => tiers(true));
blobStoreConformance('tiers: memory → bounded disk → shared file://', () => tiers(true, true));

blobStoreConformance('bounded disk store', async () => {
  const root = await mkdtemp(join(tmpdir(), 'hoard-bounded-'));
  const { disk, index } = await boundedDisk(root);
  return {
    store: disk,
    cleanup: async () => {
      await index.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});
