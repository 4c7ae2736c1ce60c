// Benchmark of `hoard push`/`hoard pull` against `rclone sync` (run by hand,
// not a test):
//
//   node bench/sync.ts [--files 10000] [--mb 200] [--rounds 3] [--json out.json]
//                      [--work /tmp/dir] [--keep]
//
// Generates a directory of N files (random bytes, sizes spread around the
// mean, in nested folders), then measures with real CLI processes:
// first push, no-op push, no-op pull, one-file-changed push, fresh pull,
// push right after the fresh pull, and a same-size edit with its mtime
// restored; and the same steps with `rclone sync` to a local path. The
// contenders alternate (round 1: hoard then rclone, round 2: rclone then
// hoard, …), each round on fresh targets (and a fresh .hoard/ state), so one
// noisy moment cannot decide a ratio; every hoard command runs once on a
// few files before anything is measured (warmUp: the compile cache); each
// round starts with the source in the page cache (rclone drops what it
// read from it) and nothing dirty on the
// file system (hoard's syncfs would write back what others left unsynced);
// the table shows per-step medians and
// the ratio of the medians, and --json writes every run's figures (seconds,
// bytes, files, peak RSS and CPU seconds of the process) next to the table.
// CPU seconds (user + system) get their own ratio: on a shared machine a
// short step's wall clock is mostly the load of others, its CPU far less.
//
// Targets are pluggable: add a hoard remote to HOARD_TARGETS and an rclone
// destination to RCLONE_TARGETS; hoard target i is compared with rclone
// target i. With an S3 endpoint in the environment, s3:// (RGW) is added to
// both (see below).

import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'hoard.js');

interface Fixture {
  url: string;
  cleanup: () => Promise<void>;
}

/** Remotes hoard is measured against. */
const HOARD_TARGETS: { name: string; make: (work: string) => Promise<Fixture> }[] = [
  {
    name: 'file://',
    make: async (work) => {
      const dir = join(work, 'hoard-remote');
      return { url: pathToFileURL(dir).href, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
];

const RCLONE_TARGETS_S3: { name: string; make: (work: string) => Promise<Fixture> }[] = [];

// S3: with AWS_ENDPOINT_URL_S3 (or HOARD_TEST_S3_ENDPOINT) set — e.g. after
// `eval "$(bash scripts/rgw.sh env)"` — hoard and rclone also sync to the same
// bucket (HOARD_TEST_S3_BUCKET, default hoard-test), each under its own prefix.
// rclone is configured through RCLONE_CONFIG_HOARDS3_* variables, and runs
// with AWS_CA_BUNDLE unset (rclone fails on an empty/foreign CA bundle).
const S3_ENDPOINT = process.env.HOARD_TEST_S3_ENDPOINT || process.env.AWS_ENDPOINT_URL_S3;
const S3_BUCKET = process.env.HOARD_TEST_S3_BUCKET || 'hoard-test';
const s3Prefix = (tag: string) => `bench/${tag}-${Date.now().toString(36)}-${process.pid}`;
if (S3_ENDPOINT) {
  process.env.AWS_ENDPOINT_URL_S3 = S3_ENDPOINT;
  Object.assign(process.env, {
    RCLONE_CONFIG_HOARDS3_TYPE: 's3',
    RCLONE_CONFIG_HOARDS3_PROVIDER: 'Ceph',
    RCLONE_CONFIG_HOARDS3_ENDPOINT: S3_ENDPOINT,
    RCLONE_CONFIG_HOARDS3_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? '',
    RCLONE_CONFIG_HOARDS3_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? '',
    RCLONE_CONFIG_HOARDS3_REGION: process.env.AWS_REGION || 'us-east-1',
    RCLONE_CONFIG_HOARDS3_NO_CHECK_BUCKET: 'true',
  });
  delete process.env.AWS_CA_BUNDLE;
  const purge = (path: string) => () =>
    run('rclone', ['purge', `hoards3:${S3_BUCKET}/${path}`]).then(() => {});
  HOARD_TARGETS.push({
    name: 's3:// (RGW)',
    make: async () => {
      const prefix = s3Prefix('hoard');
      return { url: `s3://${S3_BUCKET}/${prefix}`, cleanup: purge(prefix) };
    },
  });
  RCLONE_TARGETS_S3.push({
    name: 's3 (RGW)',
    make: async () => {
      const prefix = s3Prefix('rclone');
      return { url: `hoards3:${S3_BUCKET}/${prefix}`, cleanup: purge(prefix) };
    },
  });
}

/** Destinations rclone is measured against (an rclone path: local dir or `remote:bucket/prefix`). */
const RCLONE_TARGETS: { name: string; make: (work: string) => Promise<Fixture> }[] = [
  {
    name: 'local path',
    make: async (work) => {
      const dir = join(work, 'rclone-dst');
      return { url: dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
];
RCLONE_TARGETS.push(...RCLONE_TARGETS_S3);

interface Step {
  seconds: number;
  bytes: number;
  files: number;
  /** Peak RSS of the process (MiB), when GNU time is there to measure it. */
  rssMiB?: number;
  /**
   * CPU seconds of the process (user + system, GNU time): on a shared machine
   * the wall clock of a short step is mostly other people's load, CPU much less.
   */
  cpuS?: number;
}

/** GNU time reports the child's peak RSS (%M, KiB) and CPU seconds (%U, %S) on the last line of stderr. */
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

function run(
  cmd: string,
  args: string[],
): Promise<{ stdout: string; stderr: string; seconds: number; rssMiB?: number; cpuS?: number }> {
  const t0 = performance.now();
  const [c, a] = TIME ? [TIME, ['-f', 'rss-kib %M cpu %U %S', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    execFile(c, a, { maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const seconds = (performance.now() - t0) / 1000;
      const m = TIME ? /rss-kib (\d+) cpu ([\d.]+) ([\d.]+)\s*$/.exec(stderr) : null;
      const rssMiB = m ? Math.round(Number(m[1]) / 1024) : undefined;
      const cpuS = m ? Number(m[2]) + Number(m[3]) : undefined;
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve({ stdout, stderr: m ? stderr.slice(0, m.index) : stderr, seconds, rssMiB, cpuS });
    });
  });
}

async function hoard(args: string[]): Promise<Step> {
  const r = await run(process.execPath, [BIN, ...args, '--json']);
  const j = JSON.parse(r.stdout);
  return {
    seconds: r.seconds,
    bytes: j.bytesUploaded ?? j.bytesDownloaded,
    files: j.filesUploaded ?? j.filesDownloaded,
    rssMiB: r.rssMiB,
    cpuS: r.cpuS,
  };
}

async function rclone(src: string, dst: string): Promise<Step> {
  const r = await run('rclone', [
    'sync',
    src,
    dst,
    '--exclude',
    '/.hoard/**',
    '--use-json-log',
    '-v',
    '--stats',
    '1h',
  ]);
  let stats = { bytes: 0, transfers: 0 };
  for (const line of r.stderr.split('\n')) {
    try {
      const j = JSON.parse(line);
      if (j.stats) stats = j.stats;
    } catch {
      // not a JSON line
    }
  }
  return { seconds: r.seconds, bytes: stats.bytes, files: stats.transfers, rssMiB: r.rssMiB, cpuS: r.cpuS };
}

/** Deterministic pseudo-random sizes with the requested total. */
function sizes(n: number, total: number): number[] {
  let x = 42;
  const raw = Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return 0.1 + (x / 0x7fffffff) * 1.8;
  });
  const sum = raw.reduce((a, b) => a + b, 0);
  const out = raw.map((r) => Math.floor((r / sum) * total));
  out[0] += total - out.reduce((a, b) => a + b, 0);
  return out;
}

async function generate(dir: string, n: number, totalBytes: number): Promise<string[]> {
  const paths: string[] = [];
  const sz = sizes(n, totalBytes);
  for (let i = 0; i < n; i++) {
    const rel = `d${Math.floor(i / 1000)}/s${Math.floor(i / 100) % 10}/file-${i}.bin`;
    const abs = join(dir, rel);
    if (i % 100 === 0) await mkdir(dirname(abs), { recursive: true });
    await writeFile(abs, randomFillSync(Buffer.allocUnsafe(sz[i])));
    paths.push(rel);
  }
  return paths;
}

/**
 * Runs every hoard command the rounds run once, on a few files, before any
 * is measured. In a checkout hoard runs its TypeScript sources, and a
 * module the compile cache does not hold yet (the first run after an edit
 * or a merge) is type-stripped: that loads Node's TypeScript stripper, ~15-20
 * MiB of peak RSS and tens of ms that no later run (and no installed
 * package, which ships JavaScript) pays. Without this, the first step of
 * round 1 measured it: 149 MiB against 135 MiB for round 2's first push
 * (2026-12-07, session 8).
 */
async function warmUp(work: string): Promise<void> {
  const dir = join(work, 'warm-up');
  const remote = pathToFileURL(join(dir, 'remote')).href;
  await generate(join(dir, 'src'), 20, 20 * 1024);
  await hoard(['push', join(dir, 'src'), remote, '--ref', 'warm']);
  await hoard(['push', join(dir, 'src'), remote, '--ref', 'warm']);
  await hoard(['pull', remote, join(dir, 'fresh'), '--ref', 'warm']);
  await rm(dir, { recursive: true, force: true });
}

function machine(): string {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model;
  return `${cpus().length} vCPU (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}`;
}

const fmtBytes = (b: number) =>
  b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const STEPS = [
  'first push',
  'no-op push',
  'no-op pull',
  'one-file-changed push',
  'fresh pull',
  'push after fresh pull',
  'same-size edit, mtime restored',
];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      files: { type: 'string', default: '10000' },
      mb: { type: 'string', default: '200' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'string' },
      work: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
  });
  const n = Number(values.files);
  const total = Number(values.mb) * 1024 * 1024;
  const rounds = Number(values.rounds);
  const work = values.work ?? (await mkdtemp(join(tmpdir(), 'hoard-bench-sync-')));
  await mkdir(work, { recursive: true });
  const src = join(work, 'src');
  process.stderr.write(`generating ${n} files / ${values.mb} MiB in ${src}\n`);
  const paths = await generate(src, n, total);
  await warmUp(work);
  const loadBefore = loadavg();

  const changed = paths[Math.floor(paths.length / 2)];
  const changeOneFile = async () => {
    await writeFile(join(src, changed), randomFillSync(Buffer.allocUnsafe(20_000)));
  };

  // Correctness probe: content changes, size and mtime do not (the mtime is
  // first set to a whole second and synced, then restored after the edit).
  const sameSizeEdit = async (rel: string, sync: () => Promise<void>) => {
    const abs = join(src, rel);
    const when = new Date('2021-01-01T00:00:00Z');
    await utimes(abs, when, when);
    await sync();
    const old = await readFile(abs);
    await writeFile(abs, randomFillSync(Buffer.allocUnsafe(old.length)));
    await utimes(abs, when, when);
  };

  // Targets and fresh-pull folders are deleted only after the last round, never
  // between rounds: on an ext4 without a journal (this machine's root) the inode
  // allocator skips every inode freed in the last few minutes, re-reading
  // inode-table blocks for each new file, so deleting 50,000 files before the
  // next contender's round made that round's file creation pay seconds of
  // kernel time (see docs/benchmarks.md, "The deletion artifact").
  const later: (() => Promise<void>)[] = [];

  // Every round starts with the source in the page cache. rclone's local
  // backend drops the page cache of what it has read (fadvise DONTNEED), so
  // without this the contender after an rclone round read a cold source
  // (50,000 small reads from the disk) while rclone, running after hoard,
  // always read a warm one: round 2's hoard first push took 18.8 s against
  // round 1's 6.5 s (2026-12-07, h-sync). Reading every file once is the
  // state a folder that was just built is in.
  //
  // And nothing dirty on the file system: hoard's push makes its blobs
  // durable with syncfs, which writes back *every* dirty page of the file
  // system, and rclone writes without any sync. So hoard's first push paid
  // for the 200 MB just generated (round 1) and for rclone's unsynced
  // fresh pull (round 2), and rclone never for hoard's (already durable).
  // One `sync` before each round settles what the previous steps wrote.
  const settle = async () => {
    for (const rel of paths) readFileSync(join(src, rel));
    await new Promise<void>((resolve, reject) => execFile('sync', (err) => (err ? reject(err) : resolve())));
  };
  const cleanupLater = (cleanup: () => Promise<void>, fresh: string) => {
    later.push(cleanup, () => rm(fresh, { recursive: true, force: true }));
  };

  /** One full sequence of hoard against target t; returns a Step per STEPS entry. */
  const hoardRound = async (t: (typeof HOARD_TARGETS)[number], tag: string): Promise<Step[]> => {
    const fx = await t.make(join(work, tag));
    const ref = 'bench/sync';
    const fresh = join(work, `${tag}-hoard-fresh`);
    // A first push is a first push: no stat cache, no sync state.
    await rm(join(src, '.hoard'), { recursive: true, force: true });
    await settle();
    const out: Step[] = [];
    process.stderr.write(`${tag} hoard ${t.name}\n`);
    out.push(await hoard(['push', src, fx.url, '--ref', ref]));
    out.push(await hoard(['push', src, fx.url, '--ref', ref]));
    out.push(await hoard(['pull', fx.url, src, '--ref', ref]));
    await changeOneFile();
    out.push(await hoard(['push', src, fx.url, '--ref', ref]));
    out.push(await hoard(['pull', fx.url, fresh, '--ref', ref]));
    out.push(await hoard(['push', fresh, fx.url, '--ref', ref]));
    await sameSizeEdit(paths[1], async () => {
      await hoard(['push', src, fx.url, '--ref', ref]);
    });
    out.push(await hoard(['push', src, fx.url, '--ref', ref]));
    cleanupLater(fx.cleanup, fresh);
    return out;
  };

  const rcloneRound = async (t: (typeof RCLONE_TARGETS)[number], tag: string): Promise<Step[]> => {
    const fx = await t.make(join(work, tag));
    const fresh = join(work, `${tag}-rclone-fresh`);
    await settle();
    const out: Step[] = [];
    process.stderr.write(`${tag} rclone ${t.name}\n`);
    out.push(await rclone(src, fx.url));
    out.push(await rclone(src, fx.url));
    out.push(await rclone(fx.url, src));
    await changeOneFile();
    out.push(await rclone(src, fx.url));
    out.push(await rclone(fx.url, fresh));
    out.push(await rclone(fresh, fx.url));
    await sameSizeEdit(paths[2], async () => {
      await rclone(src, fx.url);
    });
    out.push(await rclone(src, fx.url));
    cleanupLater(fx.cleanup, fresh);
    return out;
  };

  // runs[pair][contender][round][step]
  const pairs = HOARD_TARGETS.map((h, i) => ({
    h,
    r: RCLONE_TARGETS[Math.min(i, RCLONE_TARGETS.length - 1)],
  }));
  const runs = pairs.map(() => ({ hoard: [] as Step[][], rclone: [] as Step[][] }));
  for (let round = 0; round < rounds; round++) {
    for (const [i, { h, r }] of pairs.entries()) {
      const tag = `round${round + 1}-pair${i + 1}`;
      if (round % 2 === 0) {
        runs[i].hoard.push(await hoardRound(h, tag));
        runs[i].rclone.push(await rcloneRound(r, tag));
      } else {
        runs[i].rclone.push(await rcloneRound(r, tag));
        runs[i].hoard.push(await hoardRound(h, tag));
      }
    }
  }

  const when = new Date().toISOString();
  const loadAfter = loadavg();
  for (const cleanup of later) await cleanup();
  const lines = [
    `Sync benchmark: ${n} files, ${fmtBytes(total)}; ${when}; ${machine()}; ${rounds} rounds alternating (A B, B A, …), medians; load average ${loadBefore.map((x) => x.toFixed(1)).join(' ')} before, ${loadAfter.map((x) => x.toFixed(1)).join(' ')} after`,
  ];
  const json = {
    when,
    machine: machine(),
    files: n,
    bytes: total,
    rounds,
    loadAverage: { before: loadBefore, after: loadAfter },
    pairs: [] as unknown[],
  };
  for (const [i, { h, r }] of pairs.entries()) {
    const hn = `hoard → ${h.name}`;
    const rn = `rclone sync → ${r.name}`;
    lines.push(
      '',
      `| step | ${hn} (s, median) | bytes moved | peak RSS | ${rn} (s, median) | bytes moved | peak RSS | hoard ÷ rclone | per round | CPU s, hoard / rclone (median) | CPU ratio |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
    );
    const steps = STEPS.map((step, k) => {
      const hs = runs[i].hoard.map((x) => x[k]);
      const rs = runs[i].rclone.map((x) => x[k]);
      const hm = median(hs.map((x) => x.seconds));
      const rm_ = median(rs.map((x) => x.seconds));
      const rss = (xs: Step[]) =>
        xs[0].rssMiB === undefined ? '' : `${Math.max(...xs.map((x) => x.rssMiB!))} MiB`;
      const perRound = hs.map((x, j) => `${(x.seconds / rs[j].seconds).toFixed(2)}`).join(' ');
      const cpu = hs[0].cpuS !== undefined && rs[0].cpuS !== undefined;
      const hc = cpu ? median(hs.map((x) => x.cpuS!)) : Number.NaN;
      const rc = cpu ? median(rs.map((x) => x.cpuS!)) : Number.NaN;
      const cpuCols = cpu ? `${hc.toFixed(2)} / ${rc.toFixed(2)} | ${(hc / rc).toFixed(2)}×` : ' | ';
      lines.push(
        `| ${step} | ${hm.toFixed(2)} | ${fmtBytes(hs[0].bytes)} (${hs[0].files} files) | ${rss(hs)} | ${rm_.toFixed(2)} | ${fmtBytes(rs[0].bytes)} (${rs[0].files} files) | ${rss(rs)} | ${(hm / rm_).toFixed(2)}× | ${perRound} | ${cpuCols} |`,
      );
      return {
        step,
        hoard: hs,
        rclone: rs,
        hoardMedianS: hm,
        rcloneMedianS: rm_,
        ratio: hm / rm_,
        ...(cpu ? { hoardMedianCpuS: hc, rcloneMedianCpuS: rc, cpuRatio: hc / rc } : {}),
      };
    });
    json.pairs.push({ hoard: hn, rclone: rn, steps });
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (values.json) writeFileSync(values.json, `${JSON.stringify(json, null, 2)}\n`);
  if (!values.keep && !values.work) await rm(work, { recursive: true, force: true });
}

await main();
