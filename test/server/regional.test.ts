// A regional server caching in front of a central one: `--remote http://…`
// (the shared tier is another hoard server). Writes go through to the
// central server before they are acknowledged; cold reads fill the regional
// disk with one read of the central server per blob; refs are the central's.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { startTestServer } from './helpers.ts';

describe('regional server in front of a central one (http:// shared tier)', () => {
  it('writes through, fills once, serves ranges, shares refs', async () => {
    const central = await startTestServer();
    const regional = await startTestServer({ remote: central.url });
    try {
      const data = randomBytes(1024 * 1024 + 3);
      const hex = hexOf(sha256(data));
      const put = await fetch(`${regional.url}/v1/blobs/sha256/${hex}`, {
        method: 'PUT',
        body: new Uint8Array(data),
      });
      assert.equal(put.status, 201);
      // Acknowledged means the central server has it.
      const atCentral = await fetch(`${central.url}/v1/blobs/sha256/${hex}`, { method: 'HEAD' });
      assert.equal(atCentral.status, 200);

      // A blob only the central server has: cold on the regional one.
      const cold = randomBytes(2 * 1024 * 1024);
      const coldHex = hexOf(sha256(cold));
      await central.server.ctx.blobs.write(sha256(cold), Readable.from([cold]));
      const ranged = await fetch(`${regional.url}/v1/blobs/sha256/${coldHex}`, {
        headers: { range: 'bytes=-5' },
      });
      assert.equal(ranged.status, 206);
      assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(cold.subarray(cold.length - 5)));
      const many = await Promise.all(
        Array.from({ length: 10 }, async () =>
          Buffer.from(await (await fetch(`${regional.url}/v1/blobs/sha256/${coldHex}`)).arrayBuffer()),
        ),
      );
      for (const b of many) assert.ok(b.equals(cold));

      // Refs live on the central server.
      const ref = await fetch(`${regional.url}/v1/refs/team/app`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'if-none-match': '*' },
        body: JSON.stringify({ target: `sha256:${hex}` }),
      });
      assert.equal(ref.status, 201);
      const viaCentral = await fetch(`${central.url}/v1/refs/team/app`);
      assert.deepEqual(await viaCentral.json(), { target: `sha256:${hex}` });
      const stale = await fetch(`${central.url}/v1/refs/team/app`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'if-match': '"c3RhbGU"' },
        body: JSON.stringify({ target: `sha256:${hex}` }),
      });
      assert.equal(stale.status, 412);
      // Through the regional server, a stale ETag is a 412 too.
      const staleViaRegional = await fetch(`${regional.url}/v1/refs/team/app`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'if-match': '"c3RhbGU"' },
        body: JSON.stringify({ target: `sha256:${hex}` }),
      });
      assert.equal(staleViaRegional.status, 412);
    } finally {
      await regional.close();
      await central.close();
    }
  });
});
