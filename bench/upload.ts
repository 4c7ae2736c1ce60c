// Benchmark of uploading many small files to a hoard server (issue 14's save,
// issue 16's server write path), run by hand, not a test:
//
//   npx node bench/upload.ts [rounds=3] [--base <dir>] [--no-toolkit] [--dir <folder>]
//
// Saves tmp/bench-cache/a/node_modules (bench/cache.ts's set-up: a real
// node_modules, ~45k files) with `hoard cache save` to a fresh `hoard serve`
// (a new data directory every save, so every blob is uploaded), against the
// toolkit's saveCache (@actions/cache: one tar.zst archive) to the same kind
// of fresh server. With --base <dir> (an unpacked older hoard, e.g.
// `git archive <commit> | tar -x -C <dir>` with node_modules linked in), its
// client and server run as a third contender: before/after in one run.
// Contenders alternate, the order reversed each round; medians and ratios.
// Data directories are deleted only at the end: deleting 45k files makes the
// next few minutes of file creation pay ext4's recently-deleted inode scan.

import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { servingUrl } from '../test/support/serving-url.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    base: { type: 'string' },
    dir: { type: 'string', default: join(ROOT, 'tmp', 'bench-cache', 'a') },
    'no-toolkit': { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(positionals[0] ?? 3);
const DIR = values.dir;

type Name = 'hoard' | 'hoard-base' | 'toolkit';

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

async function serve(bin: string, dataDir: string) {
  const child = spawn(
    process.execPath,
    [bin, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const url = await servingUrl(child);
  return {
    url,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function main(): Promise<void> {
  if (!existsSync(join(DIR, 'node_modules')))
    throw new Error(`${DIR}/node_modules missing: run bench/cache.ts once`);
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model;
  console.log(
    `machine: ${cpus().length} vCPU (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}; load ${load()}`,
  );
  let toolkit: typeof import('../test/features/actions-cache/toolkit.ts') | undefined;
  if (!values['no-toolkit']) toolkit = await import('../test/features/actions-cache/toolkit.ts');
  const names: Name[] = ['hoard'];
  if (values.base) names.push('hoard-base');
  if (toolkit) names.push('toolkit');
  const work = await mkdtemp(join(tmpdir(), 'hoard-bench-upload-'));
  const times: Record<string, number[]> = {};
  let n = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? names : [...names].reverse();
      for (const name of order) {
        const bin = join(name === 'hoard-base' ? values.base! : ROOT, 'bin', 'hoard.js');
        const srv = await serve(bin, join(work, `data-${n++}`));
        const key = `upload-${round}-${name}`;
        const before = load();
        let ms: number;
        let note = '';
        try {
          const t0 = performance.now();
          if (name === 'toolkit') {
            const r = await toolkit!.runToolkit({
              service: 'v2',
              url: srv.url,
              token: 'bench-runner-token',
              op: 'save',
              cwd: DIR,
              paths: ['node_modules'],
              key,
              azureAlias: true,
              tempDir: join(work, 'runner-tmp'),
            });
            ms = performance.now() - t0;
            note = `id ${r.result}`;
          } else {
            const { stdout } = await run(
              process.execPath,
              [bin, 'cache', 'save', key, 'node_modules', '--remote', srv.url, '--json'],
              { cwd: DIR, maxBuffer: 64 * 2 ** 20 },
            );
            ms = performance.now() - t0;
            const s = JSON.parse(stdout) as {
              filesTotal: number;
              filesUploaded: number;
              bytesUploaded: number;
            };
            note = `${s.filesUploaded}/${s.filesTotal} files, ${(s.bytesUploaded / 2 ** 20).toFixed(1)} MiB`;
          }
        } finally {
          await srv.stop();
        }
        (times[name] ??= []).push(ms);
        console.log(
          `round ${round + 1} ${name}: ${(ms / 1000).toFixed(2)} s (${note}); load ${before} → ${load()}`,
        );
      }
    }
    console.log('\n| contender | median s | rounds |');
    console.log('|---|---:|---|');
    for (const name of names)
      console.log(
        `| ${name} | ${(median(times[name]) / 1000).toFixed(2)} | ${times[name].map((t) => (t / 1000).toFixed(2)).join(', ')} |`,
      );
    const h = median(times.hoard);
    for (const other of names.filter((x) => x !== 'hoard'))
      console.log(`hoard ÷ ${other} (time): ${(h / median(times[other])).toFixed(2)}`);
    console.log(`load at end: ${load()}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
