// Eviction with a huge tree does not stop the world (issue 11): a real
// `hoard serve` child (authoritative disk, --max-disk just above what it
// holds) has one ref whose tree is large; a write that needs room runs the
// eviction pass, which marks the live set by streaming that tree. Measured
// inside the server during the pass (the scrape before it resets both):
// - `hoard_event_loop_hold_max_seconds`, the longest the server's own work
//   held the event loop (main-thread CPU between 10 ms ticks), < 100 ms;
// - `hoard_process_nodejs_eventloop_lag_max_seconds` (monitorEventLoopDelay,
//   wall clock), < 1 s: it also counts time the OS did not run the process,
//   which on this shared 2-core machine (load 6–9) alone reaches 60–330 ms
//   with the server idle between two of its 10 ms slices, so 100 ms on the
//   wall clock cannot be asserted here without flaking; it still catches a
//   blocking decode (the old pass blocked for the whole tree: 72 s at 509 MB);
// - peak RSS (VmHWM, reset through /proc/<pid>/clear_refs) rises < 96 MiB.
// /healthz is asked throughout and must answer 200.
//
// Size: HOARD_TEST_GC_TREE_MB (default 200 MB: ~1 M entries of ~200 bytes,
// realistic path length). The case is 509 MB: `HOARD_TEST_GC_TREE_MB=509`
// runs it unchanged (a ~65 s pass on this machine; RSS +24 MiB measured), too
// long for the default run. The bounds do not depend on the size: the pass
// holds one 256 KiB read chunk and one line, and the live set keeps only
// digests the disk holds (LIVE_ON_DISK of the tree's, here). The old pass
// read and decoded the whole tree at once (6.4 GB RSS for 509 MB).
//
// This is a bound test, not a speed test: nothing asserts how long the pass takes.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Digest, Hasher, hexOf, sha256 } from '../../src/core/digest.ts';
import { snapshotDigest } from '../../src/core/snapshot-record.ts';
import { TREE_HEADER } from '../../src/core/tree.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../src/store/fs-ref-store.ts';
import { servingUrl } from '../support/serving-url.ts';
import { BIN, tempDir } from '../sync/helpers.ts';

const TREE_MB = Number(process.env.HOARD_TEST_GC_TREE_MB ?? 200);
/** Peak RSS growth allowed during the pass, whatever the tree size. */
const RSS_BOUND = 96 * 1024 * 1024;
/** Longest the server's own work may hold the event loop during the pass. */
const MAX_HOLD_MS = 100;
/** Longest wall-clock event-loop delay (includes host scheduling stalls, see the header). */
const MAX_WALL_DELAY_MS = 1000;
/** Files of the big tree that are also on the server's disk (live, must survive). */
const LIVE_ON_DISK = 500;

function http(url: string, method = 'GET', body?: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: body ? { 'content-length': body.length } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  assert.ok(m, `metric ${name} missing`);
  return Number(m[1]);
}

async function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  assert.ok(m, `${field} missing`);
  return Number(m[1]) * 1024;
}

/**
 * Writes a canonical tree of about `bytes` bytes straight into the store's
 * layout (streamed: the test never holds it either). Entry i names blob
 * `liveDigests[k]` when i is the k-th multiple of `stride`, else a digest no
 * blob has.
 */
async function writeBigTree(
  root: string,
  bytes: number,
  liveDigests: Digest[],
): Promise<{ digest: Digest; size: number; entries: number }> {
  const tmp = join(root, 'tmp', 'big-tree');
  await mkdir(join(root, 'tmp'), { recursive: true });
  const out = createWriteStream(tmp, { highWaterMark: 1 << 20 });
  const hasher = new Hasher();
  const write = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    hasher.update(b);
    return out.write(b) ? undefined : new Promise<void>((r) => out.once('drain', () => r()));
  };
  await write(`${TREE_HEADER}\n`);
  // Realistic paths (~90 bytes) in byte order: zero-padded counters, fixed middle.
  const middle = 'packages/components/src/generated/widgets';
  const lineBytes = 196; // the length of the lines below
  const entries = Math.max(LIVE_ON_DISK * 2, Math.floor(bytes / lineBytes));
  const stride = Math.floor(entries / liveDigests.length);
  const fake = 'f'.repeat(48);
  let batch = '';
  for (let i = 0; i < entries; i++) {
    const k = i / stride;
    const digest =
      i % stride === 0 && k < liveDigests.length
        ? liveDigests[k]
        : `sha256:${fake}${i.toString(16).padStart(16, '0')}`;
    const path = `repo/${String(Math.floor(i / 1000)).padStart(6, '0')}/${middle}/file-${String(i).padStart(9, '0')}.ts`;
    batch += `{"path":"${path}","kind":"file","size":${i},"digest":"${digest}"}\n`;
    if (batch.length > 1 << 20) {
      await write(batch);
      batch = '';
    }
  }
  await write(batch);
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
  const digest = hasher.digest();
  const hex = hexOf(digest);
  await mkdir(join(root, 'blobs', 'sha256', hex.slice(0, 2)), { recursive: true });
  await rename(tmp, join(root, 'blobs', 'sha256', hex.slice(0, 2), hex));
  return { digest, size: hasher.size, entries };
}

async function serve(dataDir: string, ...extra: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...extra],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const url = await servingUrl(child);
  child.stderr?.resume();
  return { child, url };
}

describe('gc: eviction with a large tree ref', () => {
  it(`marks a ${TREE_MB} MB tree without holding the event loop ≥ ${MAX_HOLD_MS} ms or growing RSS by ${RSS_BOUND >> 20} MiB`, {
    timeout: 600_000,
  }, async () => {
    const { dir: dataDir, cleanup } = await tempDir('hoard-gc-big-');
    let child: ChildProcess | undefined;
    try {
      const disk = await FsBlobStore.open(dataDir);
      const refs = await FsRefStore.open(dataDir);
      const live: Digest[] = [];
      for (let i = 0; i < LIVE_ON_DISK; i++) {
        const body = Buffer.from(`live blob ${i}`);
        live.push(sha256(body));
        await disk.write(sha256(body), [body]);
      }
      const garbage: Digest[] = [];
      for (let i = 0; i < 4; i++) {
        const body = Buffer.alloc(256 * 1024, i + 1);
        garbage.push(sha256(body));
        await disk.write(sha256(body), [body]);
      }
      const tree = await writeBigTree(dataDir, TREE_MB * 1e6, live);
      const snap = snapshotDigest({
        tree: tree.digest,
        parents: [],
        createdAt: '2026-12-01T00:00:00.000Z',
        meta: {},
      });
      await disk.write(snap.digest, [snap.bytes]);
      await refs.set('big/main', snap.digest, null);
      let onDisk = 0;
      for await (const b of disk.list()) onDisk += b.size;

      const margin = 16 * 1024;
      const srv = await serve(
        dataDir,
        '--max-disk',
        String(onDisk + margin),
        '--gc-grace',
        '0',
        '--log-level',
        'warn',
      );
      child = srv.child;
      const pid = child.pid!;
      // The start-up reconcile has counted every blob (the pass below needs the bound to bite).
      for (;;) {
        const m = await http(`${srv.url}/metrics`);
        if (metric(m.text, 'hoard_disk_bytes') >= onDisk) break;
        await new Promise((r) => setImmediate(r));
      }
      const rssBefore = await procStatus(pid, 'VmRSS');
      await writeFile(`/proc/${pid}/clear_refs`, '5'); // VmHWM := VmRSS
      await http(`${srv.url}/metrics`); // resets the event-loop delay histogram

      // A write that does not fit runs the eviction pass; /healthz is asked meanwhile.
      const body = Buffer.alloc(64 * 1024, 0x7a);
      let done = false;
      let healthMax = 0;
      let healthChecks = 0;
      const prober = (async () => {
        while (!done) {
          const t = performance.now();
          const h = await http(`${srv.url}/healthz`);
          assert.equal(h.status, 200);
          healthMax = Math.max(healthMax, performance.now() - t);
          healthChecks++;
        }
      })();
      const started = performance.now();
      const put = await http(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(body))}`, 'PUT', body);
      const passMs = performance.now() - started;
      done = true;
      await prober;
      assert.equal(put.status, 201, put.text);

      const metrics = (await http(`${srv.url}/metrics`)).text;
      const maxDelayMs = metric(metrics, 'hoard_process_nodejs_eventloop_lag_max_seconds') * 1000;
      const maxHoldMs = metric(metrics, 'hoard_event_loop_hold_max_seconds') * 1000;
      const peak = await procStatus(pid, 'VmHWM');
      const growth = peak - rssBefore;
      const summary =
        `tree ${(tree.size / 1e6).toFixed(0)} MB, ${tree.entries} entries; pass ${(passMs / 1000).toFixed(1)} s; ` +
        `event-loop hold max ${maxHoldMs.toFixed(1)} ms, delay max ${maxDelayMs.toFixed(1)} ms; /healthz max ${healthMax.toFixed(1)} ms over ${healthChecks}; ` +
        `RSS ${(rssBefore / 2 ** 20).toFixed(0)} MiB → peak ${(peak / 2 ** 20).toFixed(0)} MiB`;
      console.log(summary);
      // The pass did run and mark through the big tree: garbage went, live files stayed.
      const exists = (d: Digest) =>
        stat(disk.pathOf(d)).then(
          () => true,
          () => false,
        );
      const left = await Promise.all(garbage.map(exists));
      assert.ok(left.includes(false), `no garbage was collected (${summary})`);
      for (const d of [tree.digest, snap.digest, live[0], live[LIVE_ON_DISK - 1]])
        assert.ok(await exists(d), `live blob ${d} was collected`);
      assert.ok(maxHoldMs < MAX_HOLD_MS, `event loop held ${maxHoldMs} ms (${summary})`);
      assert.ok(maxDelayMs < MAX_WALL_DELAY_MS, `event loop delayed ${maxDelayMs} ms (${summary})`);
      assert.ok(growth < RSS_BOUND, `RSS grew ${growth} bytes (${summary})`);
    } finally {
      child?.kill('SIGKILL');
      await cleanup();
    }
  });
});

describe('event-loop hold monitor', () => {
  it('reads a task that keeps the loop busy, not time spent waiting', async () => {
    const { loopHoldReader } = await import('../../src/server/loop-monitor.ts');
    const reader = loopHoldReader();
    const cpu = () => {
      const u = process.threadCpuUsage();
      return (u.user + u.system) / 1000;
    };
    // Idle: timers only, the loop is free the whole time.
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(reader.takeMaxMs() < 50);
    // Busy: 150 ms of this thread's CPU in one task (load on the host only stretches the wall time).
    const start = cpu();
    while (cpu() - start < 150) {}
    // The next tick records it.
    let held = 0;
    while ((held = reader.takeMaxMs()) === 0) await new Promise((r) => setImmediate(r));
    assert.ok(held >= 140, `read ${held} ms`);
  });
});
