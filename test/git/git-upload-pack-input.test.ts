// Bad upload-pack request bodies: gzip that does not inflate, bodies cut off
// mid-stream, and bytes that are not git protocol at all. Each is a 4xx
// answered at once, logged at info (a client's mistake, not the server's),
// and leaves no `git upload-pack` child behind.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { waitUntil } from '../support/wait.ts';
import { head, makeUpstream, type ServerProcess, startServer, tempDir } from './helpers/harness.ts';

function pkt(s: string): string {
  return (s.length + 4).toString(16).padStart(4, '0') + s;
}

/** Live (non-zombie) `git upload-pack` children of process `ppid`. */
function uploadPackChildren(ppid: number): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== ppid || /^State:\s+Z/m.test(status)) continue;
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('upload-pack')) pids.push(Number(p));
    } catch {}
  }
  return pids;
}

async function noUploadPackLeft(ppid: number): Promise<void> {
  // The child is killed asynchronously: wait on the condition, then say what is left if it never holds.
  await waitUntil(() => uploadPackChildren(ppid).length === 0, 'no upload-pack child left').catch(() => {});
  assert.deepEqual(uploadPackChildren(ppid), [], 'no upload-pack child left');
}

describe('git upload-pack: bad request bodies', () => {
  const tmp = tempDir();
  let server: ServerProcess;
  let url: string;
  let commit: string;

  before(async () => {
    const bare = makeUpstream(join(tmp.path, 'up'), 'app', 2);
    commit = head(bare, 'main');
    server = await startServer(join(tmp.path, 'data'), [
      '--git-upstream',
      `local=file://${join(tmp.path, 'up')}`,
    ]);
    url = `${server.url}/git/local/app.git`;
    const res = await fetch(`${url}/info/refs?service=git-upload-pack`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  async function post(body: Buffer | string, headers: Record<string, string> = {}) {
    const res = await fetch(`${url}/git-upload-pack`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-git-upload-pack-request', ...headers },
      body: typeof body === 'string' ? body : new Uint8Array(body),
      // Only a guard so that a hang fails the test instead of stalling the run.
      signal: AbortSignal.timeout(20_000),
    });
    return { status: res.status, code: res.headers.get('x-hoard-error'), text: await res.text() };
  }

  test('Content-Encoding: gzip with data that is not gzip: 400 and no child left', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await post(Buffer.from('this is not gzip at all, just bytes'), {
        'content-encoding': 'gzip',
      });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.code, 'HOARD_EBAD_REQUEST');
      assert.match(r.text, /invalid gzip request body/);
    }
    await noUploadPackLeft(server.proc.pid!);
  });

  test('gzip cut off after the wants: 400, upload-pack killed', async () => {
    // v0: wants, flush, then many haves; the cut falls among the haves, after
    // upload-pack has started on the wants.
    const haves = Array.from({ length: 400 }, (_, i) =>
      pkt(`have ${(i + 1).toString(16).padStart(40, '0')}\n`),
    );
    const body = Buffer.from(
      `${pkt(`want ${commit} multi_ack_detailed side-band-64k\n`)}0000${haves.join('')}`,
    );
    const gz = gzipSync(body);
    const r = await post(gz.subarray(0, Math.floor(gz.length * 0.6)), { 'content-encoding': 'gzip' });
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /invalid gzip request body/);
    await noUploadPackLeft(server.proc.pid!);
  });

  test('garbage is a 400 logged at info, not a 5xx logged as an error', async () => {
    const from = server.logs.length;
    const notFramed = await post('hello, this is not git\n');
    assert.equal(notFramed.status, 400, notFramed.text);
    assert.match(notFramed.text, /not pkt-line framed/);
    // Framed, but nonsense to upload-pack: git itself rejects it.
    const nonsense = await post(`${pkt('abcdefghijkl')}0000`);
    assert.equal(nonsense.status, 400, nonsense.text);
    assert.match(nonsense.text, /git upload-pack rejected it/);
    await noUploadPackLeft(server.proc.pid!);
    // The server logs the rejection when git exits, which may come after the answer.
    const rejected = (l: Record<string, unknown>) =>
      l.level === 30 && l.msg === 'git: upload-pack rejected the request';
    await waitUntil(() => server.logs.slice(from).some(rejected), 'the rejection in the log');
    const logs = server.logs.slice(from);
    assert.ok(
      logs.some((l) => l.level === 30 && String(l.msg).includes('not pkt-line framed')),
      'logged at info',
    );
    assert.ok(logs.some(rejected));
    assert.deepEqual(
      logs.filter((l) => Number(l.level) >= 40).map((l) => l.msg),
      [],
      'nothing at warn or error',
    );
  });

  test('a valid gzip request still works', async () => {
    const body = `${pkt('command=ls-refs\n')}0001${pkt('peel\n')}0000`;
    const res = await fetch(`${url}/git-upload-pack`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-git-upload-pack-request',
        'content-encoding': 'gzip',
        'git-protocol': 'version=2',
      },
      body: gzipSync(Buffer.from(body)),
    });
    assert.equal(res.status, 200);
    assert.ok((await res.text()).includes(`${commit} refs/heads/main`));
  });
});
