// The log line of a stalled request body ("request body stalled") names the
// URL redacted like the request log does: a signed URL's `sig` and the
// token in `/actions-cache/t/<token>/` are credentials, and a client that
// stops sending (a runner killed mid-upload) must not write them to the log.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ServeChild, serveChild } from '../support/serve-child.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { waitUntil } from '../support/wait.ts';

const TOKEN = 'TOKENSECRET456';

describe('a stalled request body is logged without the credentials in its URL', () => {
  let dir: string;
  let served: ServeChild;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-idlelog-'));
    const tokens = await writeTokensFile(dir, [
      { name: 'runner', token: TOKEN, scopes: ['read', 'write'], refs: ['cache/'] },
    ]);
    served = await serveChild(join(dir, 'data'), [
      '--tokens',
      tokens,
      '--body-idle-timeout',
      '1s',
      '--log-level',
      'info',
    ]);
  });
  after(async () => {
    served?.child.kill();
    await served?.exited;
    await rm(dir, { recursive: true, force: true });
  });

  /** Sends the head and 10 of the 1,000 body bytes it declares, then nothing; resolves when the server closes. */
  function stall(method: string, path: string, headers: Record<string, string> = {}): Promise<void> {
    const u = new URL(served.url);
    return new Promise((resolve) => {
      const req = request({
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: { 'content-length': '1000', ...headers },
      });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.on('response', (res) => {
        res.resume();
        res.on('close', () => resolve());
      });
      req.write(Buffer.alloc(10));
    });
  }

  it('sig= and the /actions-cache/t/<token>/ token are redacted', async () => {
    // A chunk upload of the Actions cache v1 API through the path-token mount (forge runners).
    const base = `${served.url}/actions-cache/t/${TOKEN}/_apis/artifactcache`;
    const reserve = await fetch(`${base}/caches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'stalled-1', version: 'v'.repeat(64) }),
    });
    assert.equal(reserve.status, 201, await reserve.clone().text());
    const { cacheId } = (await reserve.json()) as { cacheId: number };
    await stall('PATCH', `/actions-cache/t/${TOKEN}/_apis/artifactcache/caches/${cacheId}`, {
      'content-type': 'application/octet-stream',
      'content-range': 'bytes 0-999/*',
    });
    // A blob PUT whose URL carries a signature-like parameter (the route ignores it; the log must not keep it).
    await stall('PUT', `/v1/blobs/sha256/${'a'.repeat(64)}?sig=SIGSECRET123&exp=1`, {
      authorization: `Bearer ${TOKEN}`,
    });
    await waitUntil(
      async () => (served.log().match(/request body stalled/g) ?? []).length >= 2,
      'two "request body stalled" lines',
    );
    const log = served.log();
    assert.ok(!log.includes('SIGSECRET123'), `a signature reached the log:\n${log}`);
    assert.ok(!log.includes(TOKEN), `a path token reached the log:\n${log}`);
    assert.match(log, /sig=\*\*\*/);
    assert.match(log, /actions-cache\/t\/\*\*\*/);
  });
});
