// Benchmark of `hoard cache restore` against `@actions/cache`'s restoreCache
// (issue 14), both against the same `hoard serve` (run by hand, not a test):
//
//   npx node bench/cache.ts [rounds=3] [--service v2|v1] [--no-toolkit] [--json FILE]
//
// Set-up (once, kept in tmp/bench-cache/): a real node_modules installed
// from the npm registry (a handful of big dependency trees, a few thousand
// packages; --ignore-scripts), state A; state B is A plus one dependency
// (lockfile changed by one package). Both are saved once by each tool under
// keys A and B.
//
// Measured, each in a new process, alternating hoard / toolkit every round:
// - cold: restore B into an empty folder;
// - warm: restore B into a folder holding A as that tool restored it (the
//   untimed step before; for hoard that leaves its stat cache, as a CI
//   runner with a persistent workspace would have it).
// Bytes moved: hoard's bytesDownloaded (file contents; trees and records
// are a few MB more, counted in "hoard requests" from the server side), the
// toolkit's archive size (it always downloads the whole archive).
// Prints medians and ratios. The machine is shared: expect noise.
//
// The toolkit side needs the Actions cache service (src/features/actions-cache/);
// without it (or with --no-toolkit) only hoard runs.

import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { serveChild } from '../test/support/serve-child.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'hoard.js');
const CACHE = join(ROOT, 'tmp', 'bench-cache');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    service: { type: 'string', default: 'v2' },
    'no-toolkit': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const ROUNDS = Number(positionals[0] ?? 3);
const SERVICE = values.service === 'v1' ? 'v1' : 'v2';

/** State A: a few big dependency trees (pinned). */
const DEPS_A: Record<string, string> = {
  'react-scripts': '5.0.1',
  jest: '29.7.0',
  '@angular/cli': '17.3.8',
  eslint: '8.57.0',
  typescript: '5.4.5',
  '@babel/core': '7.24.7',
  webpack: '5.91.0',
};
/** State B: A plus one dependency. */
const EXTRA = 'moment@2.30.1';
const NPM_FLAGS = ['--no-audit', '--no-fund', '--ignore-scripts', '--legacy-peer-deps'];

async function npm(cwd: string, args: string[]): Promise<void> {
  await run('npm', [...args, ...NPM_FLAGS], { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 30 * 60_000 });
}

/** Installs A and B once (kept under tmp/bench-cache/; a finished install has its lockfile). */
async function setUp(): Promise<{ a: string; b: string }> {
  const a = join(CACHE, 'a');
  const b = join(CACHE, 'b');
  if (!existsSync(join(a, 'node_modules', '.package-lock.json'))) {
    await mkdir(a, { recursive: true });
    await writeFile(
      join(a, 'package.json'),
      JSON.stringify(
        { name: 'hoard-bench-cache', version: '1.0.0', private: true, dependencies: DEPS_A },
        null,
        2,
      ),
    );
    console.log('installing state A from the npm registry (once)…');
    await npm(a, ['install']);
  }
  if (!existsSync(join(b, 'node_modules', EXTRA.slice(0, EXTRA.lastIndexOf('@')), 'package.json'))) {
    await rm(b, { recursive: true, force: true });
    await cp(a, b, { recursive: true, verbatimSymlinks: true });
    console.log(`installing state B = A + ${EXTRA} (once)…`);
    await npm(b, ['install', EXTRA]);
  }
  return { a, b };
}

async function countTree(dir: string): Promise<{ files: number; bytes: number; packages: number }> {
  let files = 0;
  let bytes = 0;
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.name === '.hoard') continue; // hoard's stat cache, left by a save
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        files++;
        bytes += (await stat(p)).size;
      }
    }
  };
  await walk(dir);
  const lock = JSON.parse(readFileSync(join(dir, '.package-lock.json'), 'utf8')) as { packages: object };
  return { files, bytes, packages: Object.keys(lock.packages).length };
}

async function hoard(cwd: string, args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [BIN, ...args], { cwd, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout);
}

interface Sample {
  ms: number;
  bytes: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function machine(): string {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model;
  return `${cpus().length} vCPU (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}`;
}

async function main(): Promise<void> {
  const { a, b } = await setUp();
  const ta = await countTree(join(a, 'node_modules'));
  const tb = await countTree(join(b, 'node_modules'));
  const loadStart = loadavg();
  console.log(
    `machine: ${machine()}; load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log(
    `state A: ${ta.packages} packages, ${ta.files} files, ${mib(ta.bytes)}; B: +${EXTRA} (${tb.files - ta.files} files, +${mib(tb.bytes - ta.bytes)})`,
  );

  const work = await mkdtemp(join(tmpdir(), 'hoard-bench-cache-'));
  const srv = await serveChild(join(work, 'data'), ['--log-level', 'warn']);
  const remote = srv.url;
  let toolkit: typeof import('../test/features/actions-cache/toolkit.ts') | undefined;
  if (!values['no-toolkit'] && existsSync(join(ROOT, 'src/features/actions-cache/actions-cache-feature.ts')))
    toolkit = await import('../test/features/actions-cache/toolkit.ts');
  if (!toolkit) console.log('toolkit side skipped (no Actions cache service here, or --no-toolkit)');

  /** One toolkit call against the server (v2 with the Azure alias: parallel segmented downloads). */
  const tk = (op: 'save' | 'restore', cwd: string, key: string) => {
    if (!toolkit) throw new Error('no toolkit');
    return toolkit.runToolkit({
      service: SERVICE,
      url: remote,
      token: 'bench-runner-token', // any token: a server without --tokens trusts loopback clients
      op,
      cwd,
      paths: ['node_modules'],
      key,
      azureAlias: SERVICE === 'v2',
      tempDir: join(work, 'runner-tmp'),
    });
  };

  try {
    // Save A and B with each tool (untimed).
    for (const [key, dir] of [
      ['bench-A', a],
      ['bench-B', b],
    ] as const) {
      const s = await hoard(dir, ['cache', 'save', key, 'node_modules', '--remote', remote, '--json']);
      console.log(
        `hoard save ${key}: ${s.filesTotal} files, uploaded ${mib(Number(s.bytesUploaded))} in ${s.durationMs} ms`,
      );
      if (toolkit) {
        const t0 = performance.now();
        const r = await tk('save', dir, key);
        console.log(`toolkit save ${key}: id ${r.result} in ${Math.round(performance.now() - t0)} ms`);
      }
    }

    execFileSync('sync'); // the saves' writes are out before the first timed restore

    const hoardRestore = async (cwd: string, key: string): Promise<Sample> => {
      const t0 = performance.now();
      const r = await hoard(cwd, ['cache', 'restore', key, 'node_modules', '--remote', remote, '--json']);
      const ms = performance.now() - t0;
      if (r.hit !== 'exact') throw new Error(`hoard restore ${key}: ${JSON.stringify(r)}`);
      return { ms, bytes: Number(r.bytesDownloaded) };
    };
    const toolkitRestore = async (cwd: string, key: string): Promise<Sample> => {
      const t0 = performance.now();
      const r = await tk('restore', cwd, key);
      const ms = performance.now() - t0;
      if (r.result !== key) throw new Error(`toolkit restore ${key}: ${r.stdout}\n${r.stderr}`);
      const size = /Cache Size: ~?[\d.]+ MB \((\d+) B\)/.exec(r.stdout);
      return { ms, bytes: size ? Number(size[1]) : Number.NaN };
    };

    /**
     * Restored folders are kept until the end of the run, not deleted between
     * rounds: on an ext4 without a journal (this machine's: the kernel calls
     * `recently_deleted()` only then), the inode allocator will not reuse an
     * inode freed within the last few minutes and re-reads inode table blocks
     * to skip each one, for every new file; a restore right after a 45k-file
     * delete spent up to 25 s of kernel time in
     * `ext4_create` (`perf record -g`) — for whichever tool came next. The
     * work folder (all of them) goes at the end.
     */
    const results: Record<string, Sample[]> = {
      'hoard cold': [],
      'toolkit cold': [],
      'hoard warm': [],
      'toolkit warm': [],
    };
    const sides: [string, (cwd: string, key: string) => Promise<Sample>][] = [['hoard', hoardRestore]];
    if (toolkit) sides.push(['toolkit', toolkitRestore]);
    let n = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which tool goes first (A B, then B A) so drift hits both alike.
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const [name, restore] of order) {
        const cold = join(work, `cold-${++n}`);
        await mkdir(cold);
        const c = await restore(cold, 'bench-B');
        results[`${name} cold`].push(c);

        const warm = join(work, `warm-${++n}`);
        await mkdir(warm);
        await restore(warm, 'bench-A'); // untimed: the folder as the previous run left it
        const w = await restore(warm, 'bench-B');
        results[`${name} warm`].push(w);
        console.log(
          `round ${round + 1} ${name}: cold ${Math.round(c.ms)} ms (${mib(c.bytes)}), warm ${Math.round(w.ms)} ms (${mib(w.bytes)})`,
        );
      }
    }

    console.log(
      `\nmedians of ${ROUNDS} (${SERVICE === 'v2' ? 'Actions cache v2, segmented download' : 'Actions cache v1'}):`,
    );
    console.log('| restore of B | hoard cache | @actions/cache | hoard / toolkit time |');
    console.log('|---|---|---|---|');
    for (const kind of ['cold', 'warm']) {
      const h = results[`hoard ${kind}`];
      const t = results[`toolkit ${kind}`];
      const hm = median(h.map((s) => s.ms));
      const hb = median(h.map((s) => s.bytes));
      if (t.length === 0) {
        console.log(`| ${kind} | ${Math.round(hm)} ms, ${mib(hb)} moved | (not run) | |`);
        continue;
      }
      const tm = median(t.map((s) => s.ms));
      const tbytes = median(t.map((s) => s.bytes));
      console.log(
        `| ${kind} | ${Math.round(hm)} ms, ${mib(hb)} moved | ${Math.round(tm)} ms, ${mib(tbytes)} moved | ${(hm / tm).toFixed(2)}× (toolkit ${(tm / hm).toFixed(2)}× hoard) |`,
      );
    }
    if (values.json)
      await writeFile(
        values.json,
        `${JSON.stringify(
          {
            machine: machine(),
            service: SERVICE,
            rounds: ROUNDS,
            loadStart,
            loadEnd: loadavg(),
            samples: results,
            medians: Object.fromEntries(
              Object.entries(results).map(([k, v]) => [k, v.length ? median(v.map((x) => x.ms)) : null]),
            ),
          },
          null,
          2,
        )}\n`,
      );
    console.log(
      `load at the end: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
  } finally {
    srv.child.kill('SIGTERM');
    await srv.exited;
    await rm(work, { recursive: true, force: true });
    // The delete above frees a few hundred thousand inodes: for the next
    // ~30 s after they are written out, every file created on this ext4
    // (no journal) pays the recently-deleted scan — whoever's benchmark runs
    // next. Write them out and let the window pass while this run (and its
    // caller's benchmark lock) still holds the machine.
    execFileSync('sync');
    console.log(`waiting ${RECENTLY_DELETED_MS / 1000} s for ext4's recently-deleted window to pass…`);
    await new Promise((resolve) => setTimeout(resolve, RECENTLY_DELETED_MS));
  }
}

/** ext4's recently_deleted() window (30 s once the inode table is written) plus a margin. */
const RECENTLY_DELETED_MS = 35_000;

await main();
