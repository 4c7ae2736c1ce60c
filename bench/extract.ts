// Extraction benchmark: hoard's safe extractor (src/archive/safe-extract.ts,
// every safety check on) against `zstd -dc | tar -x` on the same .tar.zst,
// alternating (tar, hoard, tar, hoard…), medians and the ratio. hoard runs in
// a fresh Node process per round (like a restore), timed inside that process
// around extractTarZst alone (its peak RSS is printed too, but includes
// Node's type stripper, loaded for this TypeScript file: see
// bench/rss-at-exit.js for a restore's RSS). Get an
// archive from any hoard server: curl -o a.tar.zst <server>/git/<repo>/snapshot.tar.zst
//
//   node bench/extract.ts ARCHIVE.tar.zst [--runs 5] [--json out.json]

import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { runs: { type: 'string', default: '5' }, json: { type: 'string' }, child: { type: 'string' } },
});
const archive = positionals[0] ? resolve(positionals[0]) : '';
if (!archive) throw new Error('usage: node bench/extract.ts ARCHIVE.tar.zst [--runs 5] [--json out.json]');

if (values.child) {
  // One hoard round, in its own process: prints {ms, rssMiB}. With the CLI's
  // compile cache, so the type stripper is not loaded (as in `hoard`).
  (await import('node:module')).default.enableCompileCache?.();
  const { extractTarZst } = await import('../src/archive/safe-extract.ts');
  const t = performance.now();
  await extractTarZst(createReadStream(archive, { highWaterMark: 2 * 1024 * 1024 }), values.child, {
    mtimes: false,
  });
  const ms = performance.now() - t;
  process.stdout.write(JSON.stringify({ ms, rssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
  process.exit(0);
}

const RUNS = Number(values.runs);
const NODE = join(import.meta.dirname, '..', 'node_modules', '.bin', 'node');
const work = mkdtempSync(join(tmpdir(), 'hoard-bench-extract-'));
const loadStart = loadavg().map((x) => Math.round(x * 100) / 100);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function fresh(): string {
  const d = join(work, 'out');
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d);
  return d;
}
function tar(): number {
  const d = fresh();
  const t = performance.now();
  const r = spawnSync('sh', ['-c', 'zstd -dc "$1" | tar -x -C "$2"', 'sh', archive, d], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('tar failed');
  return performance.now() - t;
}
function hoard(): { ms: number; rssMiB: number } {
  const d = fresh();
  const out = execFileSync(NODE, [import.meta.filename, archive, '--child', d], { encoding: 'utf8' });
  return JSON.parse(out);
}

try {
  tar(); // page cache
  hoard(); // compile cache
  const tars: number[] = [];
  const hoards: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    tars.push(tar());
    const h = hoard();
    hoards.push(h.ms);
    rss.push(h.rssMiB);
  }
  const result = {
    date: new Date().toISOString(),
    archive,
    runs: RUNS,
    cpus: cpus().length,
    loadStart,
    loadEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    ms: { tar: tars.map(Math.round), hoard: hoards.map(Math.round) },
    median: { tar: Math.round(median(tars)), hoard: Math.round(median(hoards)) },
    hoardOverTar: Math.round((median(hoards) / median(tars)) * 100) / 100,
    hoardPeakRssMiB: Math.max(...rss),
  };
  if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(
    `${JSON.stringify(result, null, 2)}\n\n| extraction of ${archive.split('/').pop()} | median ms (runs) | ÷ tar |\n|---|---:|---:|\n` +
      `| \`zstd -dc \\| tar -x\` | ${result.median.tar} (${result.ms.tar.join(', ')}) | 1.00 |\n` +
      `| hoard extractTarZst (in-process, peak RSS ${result.hoardPeakRssMiB} MiB) | ${result.median.hoard} (${result.ms.hoard.join(', ')}) | ${result.hoardOverTar} |\n`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
