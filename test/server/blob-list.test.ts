// GET /v1/blobs pages with a cursor the store seeks to: walking every page
// reads each blob of the authoritative tier about once, not once per page
// before it (what a listing that rescans from the start would cost).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { startWithCountingShared } from './helpers.ts';

describe('GET /v1/blobs paging', () => {
  it('seeks to ?after= instead of rescanning: all pages together list each blob about once', async () => {
    const srv = await startWithCountingShared();
    try {
      const digests: Digest[] = [];
      for (let i = 0; i < 12; i++) {
        const data = randomBytes(100 + i);
        const digest = sha256(data);
        digests.push(digest);
        const res = await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(digest)}`, {
          method: 'PUT',
          body: new Uint8Array(data),
        });
        assert.equal(res.status, 201);
      }
      const paged: Digest[] = [];
      let after: string | null = null;
      let pages = 0;
      srv.shared.listed = 0;
      do {
        const q = new URLSearchParams({ limit: '3' });
        if (after) q.set('after', after);
        const res = await fetch(`${srv.url}/v1/blobs?${q}`);
        assert.equal(res.status, 200);
        const page = (await res.json()) as { blobs: { digest: Digest; size: number }[]; next: string | null };
        paged.push(...page.blobs.map((b) => b.digest));
        after = page.next;
        pages++;
      } while (after);
      assert.deepEqual(paged, [...digests].sort());
      // Each page reads its own blobs plus one to learn there are more; a rescan would read 3+6+9+12.
      assert.ok(
        srv.shared.listed <= digests.length + pages,
        `listed ${srv.shared.listed} for ${pages} pages`,
      );
    } finally {
      await srv.close();
    }
  });

  it('a bad page size is 400 for blobs and refs, not a quiet default; absent gives the default', async () => {
    const srv = await startWithCountingShared();
    try {
      for (const list of ['/v1/blobs', '/v1/refs']) {
        for (const limit of ['0', '-1', 'abc', '1.5', '5e3', '10001', '99999999999', ' 3'])
          assert.equal(
            (await fetch(`${srv.url}${list}?limit=${encodeURIComponent(limit)}`)).status,
            400,
            `${list}?limit=${limit}`,
          );
        for (const q of ['', '?limit=', '?limit=1', '?limit=10000'])
          assert.equal((await fetch(`${srv.url}${list}${q}`)).status, 200, `${list}${q}`);
      }
    } finally {
      await srv.close();
    }
  });

  it('refuses a malformed cursor', async () => {
    const srv = await startWithCountingShared();
    try {
      const res = await fetch(`${srv.url}/v1/blobs?after=nope`);
      assert.equal(res.status, 400);
    } finally {
      await srv.close();
    }
  });
});
