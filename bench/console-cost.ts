// The web console's cost on the blob hot path (issue 17): GET throughput of a
// 4 KiB blob (a memory-tier hit: the path the most-read tally rides on) and of
// a 1 MiB blob (a disk-tier hit), for `hoard serve` built from this tree (the
// console on, sampling every second) and from an earlier commit without it,
// alternating A B A B so drift and neighbours' load hit both alike. Prints the
// medians and the ratio, and one JSON line.
//
//   node bench/console-cost.ts [--base <commit>] [--rounds 5] [--duration 5]
//
// The base commit is exported with `git archive` into a temp directory (this
// checkout's node_modules linked in); needs `wrk`.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Digest } from '../src/core/digest.ts';
import { ServerMetrics } from '../src/server/metrics.ts';

const ROOT = join(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const { values } = parseArgs({
  options: {
    base: { type: 'string', default: 'b5160c7' },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '5' },
  },
});
const ROUNDS = Number(values.rounds);

const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

async function serve(tree: string, data: string, port: number, extra: string[]): Promise<string> {
  const c = spawn(
    NODE,
    [
      join(tree, 'bin', 'hoard.js'),
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data',
      data,
      '--log-level',
      'warn',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, HOARD_CONFIG: '' } },
  );
  children.push(c);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return url;
    } catch {}
    await sleep(50);
  }
  throw new Error(`${tree} did not start`);
}

function wrk(url: string): Promise<number> {
  return new Promise((resolve, reject) =>
    execFile('wrk', ['-t2', '-c16', `-d${values.duration}s`, url], (err, stdout) => {
      if (err) return reject(err);
      if (/Non-2xx/.test(stdout)) return reject(new Error(`${url}: non-2xx responses`));
      resolve(Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0));
    }),
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The tier hit hook, timed alone (ns per call): as it was before the console
 * (the counter's label-object path) and as it is now (a cached labelled child
 * plus the most-read tally's record()), for a hot digest and for a stream of
 * distinct digests (the tally full and decaying). On a shared, loaded machine
 * this says more than two noisy throughputs can.
 */
function hookNs(): Record<string, number> {
  const digests = Array.from(
    { length: 1 << 16 },
    (_, i) => `sha256:${i.toString(16).padStart(64, '0')}` as Digest,
  );
  const time = (fn: (i: number) => void, n = 2_000_000) => {
    for (let i = 0; i < n; i++) fn(i); // warm-up
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    return Number(process.hrtime.bigint() - t) / n;
  };
  const before = new ServerMetrics();
  const now = new ServerMetrics().tierHooks();
  return {
    before: median([0, 1, 2].map(() => time(() => before.tierHits.inc({ tier: 'memory' })))),
    nowHot: median([0, 1, 2].map(() => time((i) => now.hit?.('memory', digests[i & 15])))),
    nowChurn: median([0, 1, 2].map(() => time((i) => now.hit?.('memory', digests[i & 0xffff])))),
  };
}

const work = await mkdtemp(join(tmpdir(), 'hoard-console-cost-'));
try {
  const baseTree = join(work, 'base');
  execFileSync('bash', [
    '-c',
    `mkdir -p ${baseTree} && git -C ${ROOT} archive ${values.base} | tar -x -C ${baseTree}`,
  ]);
  await symlink(join(ROOT, 'node_modules'), join(baseTree, 'node_modules'));
  const servers = {
    base: await serve(baseTree, join(work, 'data-base'), 18801, []),
    console: await serve(ROOT, join(work, 'data-console'), 18802, ['--console-sample-interval', '1s']),
  };
  const blobs = { '4KiB': randomBytes(4096), '1MiB': randomBytes(1 << 20) };
  for (const url of Object.values(servers))
    for (const b of Object.values(blobs)) {
      const hex = createHash('sha256').update(b).digest('hex');
      const res = await fetch(`${url}/v1/blobs/sha256/${hex}`, { method: 'PUT', body: b });
      if (!res.ok) throw new Error(`PUT ${res.status}`);
    }
  const results: Record<string, Record<string, number[]>> = {};
  for (let r = 0; r < ROUNDS; r++)
    for (const [size, b] of Object.entries(blobs)) {
      const hex = createHash('sha256').update(b).digest('hex');
      for (const [name, url] of r % 2 ? Object.entries(servers).reverse() : Object.entries(servers)) {
        const rps = await wrk(`${url}/v1/blobs/sha256/${hex}`);
        ((results[size] ??= {})[name] ??= []).push(rps);
      }
    }
  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model}; ${ROUNDS} rounds of ${values.duration}s, alternating`,
  );
  const summary: Record<string, unknown> = {};
  for (const [size, byName] of Object.entries(results)) {
    const base = median(byName.base);
    const withConsole = median(byName.console);
    summary[size] = { base, console: withConsole, ratio: withConsole / base, runs: byName };
    console.log(
      `GET ${size}: base ${base.toFixed(0)} req/s, with console ${withConsole.toFixed(0)} req/s, ratio ${(withConsole / base).toFixed(3)}  (runs: base ${byName.base.map(Math.round).join(' ')}; console ${byName.console.map(Math.round).join(' ')})`,
    );
  }
  const ns = hookNs();
  console.log(
    `tier hit hook: ${ns.before.toFixed(0)} ns before the console; now ${ns.nowHot.toFixed(0)} ns (hot blob), ${ns.nowChurn.toFixed(0)} ns (distinct blobs, tally full)`,
  );
  console.log(JSON.stringify({ bench: 'console-cost', base: values.base, ...summary, hookNs: ns }));
} finally {
  for (const c of children) c.kill('SIGTERM');
  await sleep(300);
  await rm(work, { recursive: true, force: true });
}
