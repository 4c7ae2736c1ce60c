// Large-blob round trip through the S3 remote: writes a 1 GiB blob (streamed,
// multipart) and reads it back in full (streamed, SHA-256 verified), and
// reports throughput and the process's peak RSS. The bucket layer must keep
// memory bounded: peak RSS stays under 200 MB.
//
//   eval "$(bash scripts/rgw.sh env)"
//   node [--max-semi-space-size=1] bench/s3-large.ts [--size 1GiB] [--url s3://hoard-test/bench]
//
// Exits 1 when the peak is not under 200 MB. hoard's own buffers are ~40 MiB;
// with Node's default GC settings transient stream chunks wait longer for a
// GC and the peak lands at 220–250 MB, with --max-semi-space-size=1 at
// 177–186 MB. Results: docs/benchmarks.md, "S3 large blob".

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { parseSize } from '../src/core/defaults.ts';
import { Hasher } from '../src/core/digest.ts';
import { openRemote } from '../src/remote/remote.ts';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1GiB' },
    url: {
      type: 'string',
      default: `s3://${process.env.HOARD_TEST_S3_BUCKET || 'hoard-test'}/bench/large-${Date.now()}`,
    },
  },
});
const size = parseSize(values.size);
const CHUNK = 256 * 1024; // like a file read stream (DEFAULTS.streamChunkBytes)
const base = randomBytes(CHUNK);

/** Deterministic pseudo-random bytes: a random block stamped with the chunk index. */
function* chunks(): Generator<Buffer> {
  for (let off = 0, i = 0; off < size; off += CHUNK, i++) {
    const c = Buffer.from(base.subarray(0, Math.min(CHUNK, size - off)));
    c.writeUInt32LE(i, 0);
    c.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, 8);
    yield c;
  }
}

/**
 * The test RGW keeps objects in RAM (memstore, 2 GiB) and frees deleted ones
 * only when its garbage collector runs (every 30 s, for objects deleted 30 s
 * ago): two runs in a row would fill it. Run the collector now when this is
 * the local test RGW of scripts/rgw.sh.
 */
function reclaimRgwSpace(): void {
  const conf = `${process.env.HOARD_RGW_DIR || '/tmp/hoard-rgw'}/ceph.conf`;
  if (!existsSync(conf)) return;
  const r = spawnSync('radosgw-admin', ['-c', conf, 'gc', 'process', '--include-all'], { timeout: 60_000 });
  if (r.status !== 0)
    console.error('note: radosgw-admin gc process failed; wait a minute before the next run');
}

const mb = (n: number) => (n / 1e6).toFixed(0);
let peak = 0;
let phase = 'setup';
const peaks: Record<string, { rssMB: number; externalMB: number; heapMB: number }> = {};
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  peak = Math.max(peak, m.rss);
  if (m.rss / 1e6 > (peaks[phase]?.rssMB ?? 0))
    peaks[phase] = { rssMB: +mb(m.rss), externalMB: +mb(m.external), heapMB: +mb(m.heapUsed) };
}, 20);

// The digest, without making garbage: one reused buffer.
const h = new Hasher();
const scratch = Buffer.allocUnsafe(CHUNK);
for (let off = 0, i = 0; off < size; off += CHUNK, i++) {
  const n = Math.min(CHUNK, size - off);
  base.copy(scratch, 0, 0, n);
  scratch.writeUInt32LE(i, 0);
  scratch.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, 8);
  h.update(scratch.subarray(0, n));
}
const digest = h.digest();

const remote = await openRemote(values.url);
const rssBefore = process.memoryUsage.rss();
phase = 'upload';
let t = performance.now();
const res = await remote.blobs.write(digest, Readable.from(chunks()), { size });
const upS = (performance.now() - t) / 1000;
phase = 'download';
t = performance.now();
let got = 0;
for await (const c of await remote.blobs.read(digest)) got += c.length;
const downS = (performance.now() - t) / 1000;
if (got !== size) throw new Error(`read ${got} bytes, expected ${size}`);
await remote.blobs.delete(digest);
await remote.close();
reclaimRgwSpace();
clearInterval(sampler);
const maxRss = process.resourceUsage().maxRSS * 1024;
peak = Math.max(peak, maxRss);

const out = {
  url: remote.url,
  sizeBytes: size,
  created: res.created,
  uploadSeconds: +upS.toFixed(2),
  uploadMBps: +(size / 1e6 / upS).toFixed(1),
  downloadSeconds: +downS.toFixed(2),
  downloadMBps: +(size / 1e6 / downS).toFixed(1),
  rssBeforeMB: +mb(rssBefore),
  peakRssMB: +mb(peak),
  peaksByPhase: peaks,
  machine: `${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}`,
};
console.log(JSON.stringify(out, null, 2));
if (peak >= 200e6) {
  console.error(`peak RSS ${mb(peak)} MB is not under 200 MB`);
  process.exitCode = 1;
}
