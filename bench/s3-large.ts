// Large-blob round trip through the S3 remote, measured as the CLI runs it:
// `hoard push` of a directory holding one 1 GiB file to
// s3://<bucket>/bench/large-<random>, then `hoard pull` of it into an empty
// directory, each a child process started with Node's default flags. The
// bench samples each child's /proc/<pid>/status every 50 ms (VmHWM, the
// kernel's peak RSS, and VmRSS) and reports wall time, throughput and peak
// RSS per command. hoard must keep memory bounded: peak RSS under 200 MB.
//
//   eval "$(bash scripts/rgw.sh env)"
//   node bench/s3-large.ts [--size 1GiB] [--breakdown] [--mode cli|store] [--node-arg=--flag]
//
// --breakdown  also samples process.memoryUsage() (rss, heapUsed, external,
//              arrayBuffers) inside each child every 50 ms (a preload module)
//              and reports each one's maximum.
// --mode store the blob store in this process instead (openRemote(), a
//              generated stream to blobs.write, blobs.read drained): no file
//              I/O, but this process's own generator garbage is counted too.
// --node-arg   extra Node flag for the children (repeatable), e.g.
//              --node-arg=--max-semi-space-size=1.
//
// Exits 1 when a peak is not under 200 MB. Results: docs/benchmarks.md,
// "S3 large blob".

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DeleteObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { parseSize } from '../src/core/defaults.ts';
import { Hasher } from '../src/core/digest.ts';
import { openRemote } from '../src/remote/remote.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'hoard.js');
const LIMIT = 200e6;

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1GiB' },
    mode: { type: 'string', default: 'cli' },
    breakdown: { type: 'boolean', default: false },
    'node-arg': { type: 'string', multiple: true, default: [] },
  },
});
if (values.mode !== 'cli' && values.mode !== 'store') throw new Error('--mode is cli or store');
const size = parseSize(values.size);
const bucket = process.env.HOARD_TEST_S3_BUCKET || 'hoard-test';
const prefix = `bench/large-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
const url = `s3://${bucket}/${prefix}`;
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

/** Deletes everything the run wrote under the prefix (blobs, tree, snapshot, ref). */
async function deletePrefix(): Promise<void> {
  const client = new S3Client({ forcePathStyle: true, region: process.env.AWS_REGION || 'us-east-1' });
  try {
    let token: string | undefined;
    do {
      const r = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/`, ContinuationToken: token }),
      );
      for (const o of r.Contents ?? [])
        if (o.Key) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  } finally {
    client.destroy();
  }
}

const mb = (n: number) => +(n / 1e6).toFixed(0);

/** Preload for --breakdown: the child's process.memoryUsage() maxima, written at exit. */
const SAMPLER = `
import { writeFileSync } from 'node:fs';
const max = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const sample = () => { const m = process.memoryUsage(); for (const k in max) max[k] = Math.max(max[k], m[k]); };
setInterval(sample, 50).unref();
process.on('exit', () => { sample(); writeFileSync(process.env.HOARD_BENCH_MEM_OUT, JSON.stringify(max)); });
`;

interface CliResult {
  seconds: number;
  MBps: number;
  peakRssMB: number;
  maxOfSamples?: Record<string, number>;
}

/** Runs `hoard <args>` and samples its peak RSS from /proc every 50 ms. */
async function runHoard(work: string, name: string, args: string[]): Promise<CliResult> {
  const nodeArgs = [...values['node-arg']];
  const memOut = join(work, `${name}.mem.json`);
  if (values.breakdown) {
    const sampler = join(work, 'sampler.mjs');
    await writeFile(sampler, SAMPLER);
    nodeArgs.push('--import', sampler);
  }
  const t = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, HOARD_BENCH_MEM_OUT: memOut },
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  let hwm = 0;
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
    } catch {} // exited
  };
  const sampler = setInterval(sample, 50);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(sampler);
  const seconds = (performance.now() - t) / 1000;
  if (code !== 0) throw new Error(`hoard ${args.join(' ')} exited with ${code}: ${stderr}`);
  const out: CliResult = {
    seconds: +seconds.toFixed(2),
    MBps: +(size / 1e6 / seconds).toFixed(1),
    peakRssMB: mb(hwm),
  };
  if (values.breakdown && existsSync(memOut))
    out.maxOfSamples = Object.fromEntries(
      Object.entries(JSON.parse(readFileSync(memOut, 'utf8')) as Record<string, number>).map(([k, v]) => [
        `${k}MB`,
        mb(v),
      ]),
    );
  return out;
}

async function benchCli(): Promise<Record<string, unknown>> {
  const work = await mkdtemp(join(tmpdir(), 'hoard-s3-large-'));
  try {
    const src = join(work, 'src');
    const dst = join(work, 'dst');
    await mkdir(src);
    await pipeline(Readable.from(chunks()), createWriteStream(join(src, 'big.bin')));
    const ref = ['--ref', 'bench/large'];
    const push = await runHoard(work, 'push', ['push', src, url, ...ref]);
    const pull = await runHoard(work, 'pull', ['pull', url, dst, ...ref]);
    if ((await stat(join(dst, 'big.bin'))).size !== size) throw new Error('pulled file has the wrong size');
    return { push, pull, peakRssMB: Math.max(push.peakRssMB, pull.peakRssMB) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function benchStore(): Promise<Record<string, unknown>> {
  let peak = 0;
  let phase = 'setup';
  const peaks: Record<string, Record<string, number>> = {};
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    if (mb(m.rss) > (peaks[phase]?.rssMB ?? 0))
      peaks[phase] = {
        rssMB: mb(m.rss),
        heapUsedMB: mb(m.heapUsed),
        externalMB: mb(m.external),
        arrayBuffersMB: mb(m.arrayBuffers),
      };
  }, 50);
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
  const remote = await openRemote(url);
  const rssBefore = process.memoryUsage.rss();
  phase = 'upload';
  let t = performance.now();
  await remote.blobs.write(digest, Readable.from(chunks()), { size });
  const upS = (performance.now() - t) / 1000;
  phase = 'download';
  t = performance.now();
  let got = 0;
  for await (const c of await remote.blobs.read(digest)) got += c.length;
  const downS = (performance.now() - t) / 1000;
  if (got !== size) throw new Error(`read ${got} bytes, expected ${size}`);
  await remote.close();
  clearInterval(sampler);
  peak = Math.max(peak, process.resourceUsage().maxRSS * 1024);
  return {
    upload: { seconds: +upS.toFixed(2), MBps: +(size / 1e6 / upS).toFixed(1) },
    download: { seconds: +downS.toFixed(2), MBps: +(size / 1e6 / downS).toFixed(1) },
    rssBeforeMB: mb(rssBefore),
    peaksByPhase: peaks,
    peakRssMB: mb(peak),
  };
}

let result: Record<string, unknown>;
try {
  result = values.mode === 'cli' ? await benchCli() : await benchStore();
} finally {
  await deletePrefix().catch((err) => console.error(`note: cleaning up ${url} failed: ${err}`));
  reclaimRgwSpace();
}
console.log(
  JSON.stringify(
    {
      mode: values.mode,
      url,
      sizeBytes: size,
      nodeArgs: values['node-arg'],
      ...result,
      machine: `${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}`,
    },
    null,
    2,
  ),
);
if ((result.peakRssMB as number) >= mb(LIMIT)) {
  console.error(`peak RSS ${result.peakRssMB} MB is not under 200 MB`);
  process.exitCode = 1;
}
