// A push that meets a file changing under it (a real process rewriting it
// non-stop): it retries, then fails with HOARD_EFILE_CHANGING naming the
// file and the way out, committing nothing; with --skip-changing the file
// is left out with a warning and the remote keeps its last version.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isHoardError } from '../../src/core/errors.ts';
import { openRemote, type Remote } from '../../src/remote/remote.ts';
import { push } from '../../src/sync/push.ts';
import { serveChild } from '../support/serve-child.ts';
import { hoard, tempDir, writeFiles } from './helpers.ts';

/**
 * The remote, with every blob upload first appending to `file`: it changes
 * between hash and upload, every time. Uploads go through write(): the
 * batch a file:// store offers is hidden, because a push to one stores a
 * small file from the very bytes the scan hashed (nothing can change in
 * between), and this is about the upload path every other remote takes.
 */
function changingOnUpload(remote: Remote, file: string): { remote: Remote; uploads: () => number } {
  let uploads = 0;
  const blobs = new Proxy(remote.blobs, {
    get(t, prop, recv) {
      if (prop === 'batch') return undefined;
      const v = Reflect.get(t, prop, recv);
      // A hoard server takes small files in upload batches: the file changes when one starts.
      if (prop !== 'write' && prop !== 'uploadBatch') return typeof v === 'function' ? v.bind(t) : v;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        uploads++;
        appendFileSync(file, 'x');
        return (v as (...a: unknown[]) => Promise<unknown>).apply(t, args);
      };
    },
  });
  return {
    remote: new Proxy(remote, { get: (t, p, r) => (p === 'blobs' ? blobs : Reflect.get(t, p, r)) }),
    uploads: () => uploads,
  };
}

const CHURNER = join(import.meta.dirname, '..', 'support', 'children', 'file-churner.ts');

async function churn(path: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CHURNER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.match(line.toString(), /ready/);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

describe('push with a file changing under it', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let dir: string;
  let remote: string;
  let churner: ChildProcess | undefined;
  const ref = 'changing/main';
  before(async () => {
    tmp = await tempDir('hoard-changing-');
    dir = join(tmp.dir, 'd');
    remote = join(tmp.dir, 'r');
    // Big enough that every read of it overlaps many rewrites.
    await writeFiles(dir, { 'steady.txt': 'steady\n', 'hot.bin': Buffer.alloc(24 * 1024 * 1024, 1) });
  });
  after(async () => {
    if (churner) await stop(churner);
    await tmp.cleanup();
  });

  it('fails with HOARD_EFILE_CHANGING (exit 1) and commits nothing', async () => {
    churner = await churn(join(dir, 'hot.bin'));
    // Plain progress on: its ticker must not keep the failed process alive. The push runs at a low
    // priority: on a loaded machine the churner could otherwise wait for a core through
    // a whole read of the file, every attempt, and the file would look steady (a flake seen at
    // load 8 on two cores).
    const p = await hoard(['push', dir, remote, '--ref', ref, '--json'], {
      env: { HOARD_PROGRESS: 'plain' },
      lowPriority: true,
    });
    assert.equal(p.code, 1, p.stderr);
    const err = (p.json as { error: { code: string; path: string; hint: string } }).error;
    assert.equal(err.code, 'HOARD_EFILE_CHANGING');
    assert.equal(err.path, 'hot.bin');
    assert.match(err.hint, /--skip-changing/);
    assert.match(p.stderr, /hot\.bin .*\[HOARD_EFILE_CHANGING\]/);
    assert.deepEqual((await hoard(['ls', remote, '--json'])).json?.refs, []);
  });

  it('--skip-changing leaves it out with a warning; the remote keeps its last version', async () => {
    await stop(churner!);
    // First a clean version with hot.bin in it.
    const first = await hoard(['push', dir, remote, '--ref', ref, '--json']);
    assert.equal(first.code, 0, first.stderr);
    await writeFile(join(dir, 'steady.txt'), 'steady 2\n');
    await writeFiles(dir, { 'new-hot.bin': Buffer.alloc(24 * 1024 * 1024, 2) });
    churner = await churn(join(dir, 'hot.bin'));
    const newHot = await churn(join(dir, 'new-hot.bin'));
    try {
      const p = await hoard(['push', dir, remote, '--ref', ref, '--json', '--skip-changing'], {
        lowPriority: true,
      });
      assert.equal(p.code, 0, p.stderr);
      assert.deepEqual(p.json?.skipped, ['hot.bin', 'new-hot.bin']);
      assert.match(p.stderr, /warning: hot\.bin kept changing while being pushed; left out/);
      assert.equal((await hoard(['cat', remote, `${ref}:steady.txt`])).stdout, 'steady 2\n');
      // hot.bin: still the version pushed before (not deleted); new-hot.bin: not there at all.
      const hot = await hoard(['diff', remote, '--ref', ref, '--json']);
      const d = hot.json as { changed: { path: string }[]; added: unknown[]; removed: unknown[] };
      assert.deepEqual(
        d.changed.map((e) => e.path),
        ['steady.txt'],
      );
      assert.deepEqual([d.added, d.removed], [[], []]);
    } finally {
      await stop(newHot);
      await stop(churner!);
    }
    // Once they hold still, the next push takes both.
    const last = await hoard(['push', dir, remote, '--ref', ref, '--json']);
    assert.equal(last.code, 0, last.stderr);
    assert.equal(last.json?.skipped, undefined);
    assert.equal(last.json?.filesUploaded, 2);
  });

  for (const kind of ['file://', 'a live hoard serve'] as const)
    it(`a file that changes between hash and upload (${kind}): retried, then HOARD_EFILE_CHANGING or left out`, async () => {
      const d = join(tmp.dir, `upload-race-${kind === 'file://' ? 'file' : 'serve'}`);
      await writeFiles(d, { 'racy.log': 'v1\n', 'calm.txt': 'calm\n' });
      const srv = kind === 'file://' ? undefined : await serveChild(join(tmp.dir, 'srv-data'));
      const url = srv ? srv.url : join(tmp.dir, 'r-upload');
      const r = await openRemote(url, { create: true });
      try {
        await push({ dir: d, remote: r, ref });
        await writeFile(join(d, 'racy.log'), 'v2\n');
        await writeFile(join(d, 'calm.txt'), 'calm 2\n');
        const w = changingOnUpload(r, join(d, 'racy.log'));
        await assert.rejects(push({ dir: d, remote: w.remote, ref }), (err) => {
          assert.ok(isHoardError(err, 'HOARD_EFILE_CHANGING'), String((err as Error).stack));
          assert.equal(err.details?.path, 'racy.log');
          return true;
        });
        // Each attempt scans again and re-uploads the new bytes: 1 + pushChangingRetries (3) attempts.
        assert.ok(w.uploads() >= 4, `uploads: ${w.uploads()}`);
        const warnings: string[] = [];
        const w2 = changingOnUpload(r, join(d, 'racy.log'));
        const res = await push({
          dir: d,
          remote: w2.remote,
          ref,
          skipChanging: true,
          warn: (m) => warnings.push(m),
        });
        assert.deepEqual(res.skipped, ['racy.log']);
        assert.match(warnings.join('\n'), /racy\.log kept changing/);
        const cat = await hoard(['cat', url, `${ref}:racy.log`]);
        assert.equal(cat.stdout, 'v1\n', 'the remote keeps the last synced version');
        assert.equal((await hoard(['cat', url, `${ref}:calm.txt`])).stdout, 'calm 2\n');
      } finally {
        await r.close();
        if (srv) {
          srv.child.kill('SIGTERM');
          await srv.exited;
        }
      }
    });
});
