// Snapshots through the real `hoard serve`: two servers with separate data
// directories, on different ports, produce the same bytes for one commit
// (the archive must not depend on the address a request used), and
// `hoard git restore` works against the real server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  commitUpstream,
  GIT_ENV,
  gitSync,
  makeUpstream,
  type ServerProcess,
  startServer,
  tempDir,
} from './helpers/harness.ts';

const run = promisify(execFile);
const HOARD = join(import.meta.dirname, '..', '..', 'bin', 'hoard.js');

describe('snapshots through hoard serve', () => {
  const dir = tempDir('hoard-snapserve-');
  let servers: ServerProcess[] = [];
  let upstreams: string;

  before(async () => {
    upstreams = join(dir.path, 'up');
    makeUpstream(upstreams, 'app', 3);
    // Servers that are to serve the same archive agree on the URL written into it (docs/snapshots.md).
    const args = [
      '--git-upstream',
      `up=file://${upstreams}`,
      '--git-max-staleness',
      '0',
      '--public-url',
      'http://hoard.test',
    ];
    servers = await Promise.all([
      startServer(join(dir.path, 'data-a'), args),
      startServer(join(dir.path, 'data-b'), args),
    ]);
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    dir.cleanup();
  });

  it('two servers with separate data dirs serve identical bytes for one commit', async () => {
    const heads = await Promise.all(
      servers.map(async (s) => {
        const res = await fetch(`${s.url}/git/up/app.git/snapshot.tar.zst`, { method: 'HEAD' });
        assert.equal(res.status, 200, await res.text());
        return {
          etag: res.headers.get('etag'),
          location: res.headers.get('content-location'),
          commit: res.headers.get('x-hoard-commit'),
        };
      }),
    );
    assert.ok(heads[0].etag);
    assert.equal(heads[0].commit, gitSync(['rev-parse', 'main'], join(upstreams, 'app.git')));
    assert.deepEqual(heads[0], heads[1]);
    // The immutable blob URL serves ranges of those bytes.
    const ranged = await fetch(`${servers[1].url}${heads[0].location}`, { headers: { range: 'bytes=0-3' } });
    assert.equal(ranged.status, 206);
    // zstd frame magic
    assert.deepEqual([...new Uint8Array(await ranged.arrayBuffer())], [0x28, 0xb5, 0x2f, 0xfd]);
  });

  it('hoard git restore gives a clean work tree at the current commit', async () => {
    const newest = commitUpstream(join(upstreams, 'app.git'), 'after the snapshot');
    const dest = join(dir.path, 'ws');
    const { stdout } = await run(
      process.execPath,
      [HOARD, 'git', 'restore', `${servers[0].url}/git/up/app.git`, dest, '--json'],
      {
        env: GIT_ENV,
      },
    );
    const summary = JSON.parse(stdout);
    assert.equal(summary.commit, newest);
    assert.equal(gitSync(['rev-parse', 'HEAD'], dest), newest);
    assert.equal(gitSync(['status', '--porcelain'], dest), '');
    assert.ok(gitSync(['log', '--oneline'], dest).split('\n').length >= 4);
  });
});
