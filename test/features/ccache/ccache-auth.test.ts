// Who may read and write ccache entries with a tokens file: no token (401),
// a read token (reads, 403 on PUT and DELETE), a write token (HTTP Basic with
// the token as password, as ccache sends URL credentials, or Bearer), a token
// covering cache/ccache/, and one covering another namespace only (403, reads too).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestServer } from '../../server/helpers.ts';
import { basic, bearer, put, startAuthServer, TOKENS } from '../bazel/cache-server.ts';

describe('ccache auth matrix', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startAuthServer();
  });
  after(() => srv?.close());

  const url = () => `${srv.url}/ccache/ab/cdefghijklmnopqrstuvwxyz0123456`;
  const statuses = async (headers: Record<string, string>) => ({
    put: (await put(url(), Buffer.from('entry'), headers)).status,
    get: (await fetch(url(), { headers })).status,
  });
  const del = async (headers: Record<string, string>) =>
    (await fetch(url(), { method: 'DELETE', headers })).status;

  it('no token: 401', async () => {
    assert.deepEqual(await statuses({}), { put: 401, get: 401 });
    assert.equal(await del({}), 401);
    assert.deepEqual(await statuses(basic('wrong')), { put: 401, get: 401 });
  });

  it('a token scoped to another namespace may neither write nor read entries', async () => {
    assert.deepEqual(await statuses(basic(TOKENS.other)), { put: 403, get: 403 });
  });

  it('read token: PUT 403, nothing stored', async () => {
    assert.deepEqual(await statuses(basic(TOKENS.read)), { put: 403, get: 404 });
  });

  it('write token (Basic, token as password) writes; read token reads; DELETE needs write', async () => {
    assert.deepEqual(await statuses(basic(TOKENS.write)), { put: 201, get: 200 });
    assert.equal((await fetch(url(), { headers: bearer(TOKENS.read) })).status, 200);
    assert.equal(await del(basic(TOKENS.read)), 403);
    assert.equal(await del(basic(TOKENS.other)), 403);
    assert.equal(await del(basic(TOKENS.write)), 204);
  });

  it('a token whose refs cover cache/ccache/ writes (Bearer)', async () => {
    assert.deepEqual(await statuses(bearer(TOKENS.ccache)), { put: 201, get: 200 });
  });
});
