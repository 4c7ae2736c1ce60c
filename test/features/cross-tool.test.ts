// One store under every front-end: the same bytes written by two tools (a
// Gradle build cache PUT and the API v1 blob PUT) are one blob file on the
// server's disk, and each tool reads them back under its own name. (Beside
// it on disk: the keyed entries' small records, `{blob, size, meta}`, which
// name that one content blob.)

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { decodeEntry } from '../../src/core/entry-record.ts';
import type { TestServer } from '../server/helpers.ts';
import { blobFiles, getEntry, newKey, putEntry, startGradleServer } from './gradle/helpers.ts';

describe('one blob written by two tools is stored once', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startGradleServer();
  });
  after(() => srv?.close());

  test('PUT /gradle/<key> and PUT /v1/blobs/sha256/<hex> of the same bytes: one file on disk', async () => {
    const bytes = randomBytes(200_000);
    const hex = hexOf(sha256(bytes));
    assert.deepEqual(await blobFiles(srv.dataDir), []);

    const viaGradle = await putEntry(srv.url, newKey(), bytes);
    assert.equal(viaGradle.status, 201);
    await viaGradle.arrayBuffer();
    const viaApi = await fetch(`${srv.url}/v1/blobs/sha256/${hex}`, { method: 'PUT', body: bytes });
    assert.equal(viaApi.status, 200, 'the API finds the blob Gradle stored (200, not 201 created)');
    await viaApi.arrayBuffer();
    // A second Gradle key with the same outputs: still the one blob.
    const key2 = newKey();
    await (await putEntry(srv.url, key2, bytes)).arrayBuffer();

    const files = await blobFiles(srv.dataDir);
    const holding: string[] = [];
    for (const f of files) {
      const data = await readFile(f);
      if (data.equals(bytes)) holding.push(basename(f));
      else
        assert.equal(
          decodeEntry(data)?.blob,
          `sha256:${hex}`,
          `${basename(f)}: only entry records beside the blob`,
        );
    }
    assert.deepEqual(holding, [hex], 'the bytes are on disk once');
    assert.deepEqual(Buffer.from(await (await getEntry(srv.url, key2)).arrayBuffer()), bytes);
    assert.deepEqual(
      Buffer.from(await (await fetch(`${srv.url}/v1/blobs/sha256/${hex}`)).arrayBuffer()),
      bytes,
    );
  });
});
