import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../src/store/fs-ref-store.ts';
import { blobStoreConformance } from './blob-store-conformance.ts';
import { refStoreConformance } from './ref-store-conformance.ts';

async function tempRoot() {
  const root = await mkdtemp(join(tmpdir(), 'hoard-fs-'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

blobStoreConformance('filesystem', async () => {
  const { root, cleanup } = await tempRoot();
  return { store: await FsBlobStore.open(root), cleanup };
});

refStoreConformance('filesystem', async () => {
  const { root, cleanup } = await tempRoot();
  return { store: await FsRefStore.open(root), cleanup };
});
