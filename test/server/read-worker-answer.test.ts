// DiskBlobAnswers (src/server/read-worker-answer.ts) on its own: the file it
// reads for a blob is the one the store writes (FsBlobStore.pathIn).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiskBlobAnswers } from '../../src/server/read-worker-answer.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';

describe('read worker answers', () => {
  it('a blob’s file is FsBlobStore.pathIn’s, whatever shape the data directory is given in', () => {
    const hexes = ['00'.repeat(32), 'ab'.repeat(32), `f${'0'.repeat(62)}e`];
    for (const dataDir of ['/srv/hoard', '/srv/hoard/', '/srv//hoard/./', 'relative/data', '.', '/']) {
      const a = new DiskBlobAnswers({ dataDir, workerId: '1', onCorrupt() {} });
      for (const hex of hexes)
        assert.equal(a.pathOf(hex), FsBlobStore.pathIn(dataDir, `sha256:${hex}`), dataDir);
    }
  });
});
