// Who may read and write the Bazel cache with a tokens file: no token (401),
// a read token (reads, 403 on writes), a write token (Bearer or HTTP Basic
// with the token as password), a token whose ref prefixes cover the Bazel
// namespace, and one that covers another namespace only (403 on writes).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../../src/core/digest.ts';
import { encodeActionResult } from '../../../src/features/bazel/action-result.ts';
import type { TestServer } from '../../server/helpers.ts';
import { basic, bearer, put, startAuthServer, TOKENS } from './cache-server.ts';

describe('bazel cache auth matrix', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startAuthServer();
  });
  after(() => srv?.close());

  const blob = randomBytes(100);
  const cas = () => `${srv.url}/bazel/cas/${hexOf(sha256(blob))}`;
  const result = encodeActionResult({
    outputFiles: [{ path: 'o', digest: { hash: hexOf(sha256(blob)), sizeBytes: 100 } }],
  });
  const ac = () => `${srv.url}/bazel/ci/ac/${hexOf(sha256('auth action'))}`;
  const statuses = async (headers: Record<string, string>) => ({
    putCas: (await put(cas(), blob, headers)).status,
    putAc: (await put(ac(), result, headers)).status,
    getCas: (await fetch(cas(), { headers })).status,
    getAc: (await fetch(ac(), { headers })).status,
  });

  it('no token: 401 for reads and writes, with a challenge', async () => {
    assert.deepEqual(await statuses({}), { putCas: 401, putAc: 401, getCas: 401, getAc: 401 });
    assert.match((await fetch(cas())).headers.get('www-authenticate') ?? '', /Basic/);
    assert.deepEqual(await statuses(bearer('not-a-token')), {
      putCas: 401,
      putAc: 401,
      getCas: 401,
      getAc: 401,
    });
  });

  it('a token scoped to another namespace may not write, nor read action results (CAS blobs are by digest)', async () => {
    assert.deepEqual(await statuses(bearer(TOKENS.other)), {
      putCas: 403,
      putAc: 403,
      getCas: 404,
      getAc: 403,
    });
  });

  it('read token: writes 403, nothing stored', async () => {
    assert.deepEqual(await statuses(bearer(TOKENS.read)), {
      putCas: 403,
      putAc: 403,
      getCas: 404,
      getAc: 404,
    });
  });

  it('write token (HTTP Basic, token as password) writes; read token then reads', async () => {
    assert.deepEqual(await statuses(basic(TOKENS.write)), {
      putCas: 200,
      putAc: 200,
      getCas: 200,
      getAc: 200,
    });
    assert.deepEqual(
      {
        getCas: (await fetch(cas(), { headers: bearer(TOKENS.read) })).status,
        getAc: (await fetch(ac(), { headers: basic(TOKENS.read) })).status,
      },
      { getCas: 200, getAc: 200 },
    );
  });

  it('a token whose refs cover cache/bazel/ writes (Bearer)', async () => {
    assert.deepEqual(await statuses(bearer(TOKENS.bazel)), {
      putCas: 200,
      putAc: 200,
      getCas: 200,
      getAc: 200,
    });
  });
});
