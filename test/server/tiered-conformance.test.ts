// The server's tier stack is a BlobStore like any other: it runs the one
// BlobStore conformance suite unchanged, as memory → disk (the disk
// authoritative) and as memory → disk → a shared file:// remote.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openRemote } from '../../src/remote/remote.ts';
import { TieredBlobStore } from '../../src/server/tiered-blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';
import { blobStoreConformance } from '../store/blob-store-conformance.ts';

async function tiers(withShared: boolean) {
  const root = await mkdtemp(join(tmpdir(), 'hoard-tiers-'));
  const disk = await FsBlobStore.open(join(root, 'disk'));
  const shared = withShared
    ? await openRemote(pathToFileURL(join(root, 'shared')).href, { create: true })
    : undefined;
  // A small memory tier, so the large blob of the suite streams past it.
  const memory = new MemoryBlobStore({ maxBytes: 1024 * 1024, maxBlobBytes: 256 * 1024 });
  const store = new TieredBlobStore({ memory, disk, shared: shared?.blobs });
  return {
    store,
    cleanup: async () => {
      await shared?.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

blobStoreConformance('tiers: memory → disk', () => tiers(false));
blobStoreConformance('tiers: memory → disk → shared file://', () => tiers(true));
