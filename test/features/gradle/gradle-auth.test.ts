// Who may read and write Gradle's build cache: the tokens file decides,
// with the token as the HTTP Basic password (what HttpBuildCache's
// `credentials { }` sends) or as a Bearer token. No credentials: 401 with a
// Basic challenge. Read token: GET yes, PUT 403. A token whose ref prefixes
// are another tool's namespace: 403 on PUT. With --public-read anyone reads,
// writes still need a token. Without a tokens file, loopback clients need
// nothing.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestServer } from '../../server/helpers.ts';
import { basic, getEntry, newKey, putEntry, startGradleServer, writeTokens } from './helpers.ts';

describe('gradle build cache: auth matrix', () => {
  let dir: string;
  let srv: TestServer;
  const key = newKey();
  const body = Buffer.from('compiled classes, zipped');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-gradle-auth-'));
    srv = await startGradleServer({ tokens: await writeTokens(dir) });
    const seeded = await putEntry(srv.url, key, body, basic('ci', 'ci-secret'));
    assert.equal(seeded.status, 201);
    await seeded.arrayBuffer();
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const status = async (res: Promise<Response>) => {
    const r = await res;
    await r.arrayBuffer();
    return r.status;
  };

  test('no credentials: 401 with a Basic challenge, for GET and PUT', async () => {
    for (const res of [await getEntry(srv.url, key), await putEntry(srv.url, newKey(), body)]) {
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="hoard"/);
      await res.arrayBuffer();
    }
  });

  test('a wrong password: 401 with the challenge', async () => {
    const res = await getEntry(srv.url, key, basic('ci', 'guess'));
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic\b/);
    await res.arrayBuffer();
  });

  test('read token (Basic, any user name): GET 200, PUT 403 and nothing stored', async () => {
    const get = await getEntry(srv.url, key, basic('dev', 'dev-secret'));
    assert.equal(get.status, 200);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), body);
    const k = newKey();
    assert.equal(await status(putEntry(srv.url, k, body, basic('dev', 'dev-secret'))), 403);
    assert.equal(await status(getEntry(srv.url, k, basic('dev', 'dev-secret'))), 404);
  });

  test('write token: PUT 201 as Basic, and as Bearer', async () => {
    assert.equal(await status(putEntry(srv.url, newKey(), body, basic('ci', 'ci-secret'))), 201);
    assert.equal(await status(putEntry(srv.url, newKey(), body, 'Bearer ci-secret')), 201);
  });

  test("write token scoped to Gradle's namespace (cache/gradle/): PUT 201", async () => {
    assert.equal(await status(putEntry(srv.url, newKey(), body, basic('ci', 'gradle-secret'))), 201);
  });

  test("write token scoped to another tool's namespace (cache/turbo/): PUT 403, GET 403 (reads are bound too)", async () => {
    const k = newKey();
    assert.equal(await status(putEntry(srv.url, k, body, basic('ci', 'turbo-secret'))), 403);
    assert.equal(await status(getEntry(srv.url, k, basic('ci', 'gradle-secret'))), 404);
    assert.equal(await status(getEntry(srv.url, key, basic('ci', 'gradle-secret'))), 200);
    assert.equal(await status(getEntry(srv.url, key, basic('ci', 'turbo-secret'))), 403);
  });

  test('auth comes before the key check: a bad key without credentials is 401', async () => {
    assert.equal(await status(getEntry(srv.url, 'nope')), 401);
    assert.equal(await status(getEntry(srv.url, 'nope', basic('dev', 'dev-secret'))), 400);
  });
});

describe('gradle build cache without a tokens file', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startGradleServer();
  });
  after(() => srv?.close());

  test('loopback clients read and write without credentials', async () => {
    const k = newKey();
    const put = await putEntry(srv.url, k, Buffer.from('local'));
    assert.equal(put.status, 201);
    await put.arrayBuffer();
    assert.equal(await (await getEntry(srv.url, k)).text(), 'local');
  });
});

describe('gradle build cache with --public-read', () => {
  let dir: string;
  let srv: TestServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-gradle-pub-'));
    srv = await startGradleServer({ tokens: await writeTokens(dir), publicRead: true });
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('anonymous GET is a 404/200 like anyone else; an anonymous PUT is still 401', async () => {
    const k = newKey();
    const miss = await getEntry(srv.url, k);
    assert.equal(miss.status, 404);
    await miss.arrayBuffer();
    const anon = await putEntry(srv.url, k, Buffer.from('anonymous'));
    assert.equal(anon.status, 401);
    await anon.arrayBuffer();
    const put = await putEntry(srv.url, k, Buffer.from('from ci'), basic('ci', 'ci-secret'));
    assert.equal(put.status, 201);
    await put.arrayBuffer();
    assert.equal(await (await getEntry(srv.url, k)).text(), 'from ci');
  });
});
