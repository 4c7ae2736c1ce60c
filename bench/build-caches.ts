// Build-cache benchmark (issue 13): the Turborepo remote cache API of
// `hoard serve` (/turbo) against turborepo-remote-cache (npm, local
// filesystem storage) on the same machine in the same run. For 4 KiB and
// 8 MiB artifacts: hit latency (sequential GETs of a stored artifact), miss
// latency (GETs of absent hashes, 404), upload latency (the PUT after a
// miss), and hit/miss throughput (wrk) — each measured on hoard (and on its
// Bazel CAS, /bazel/cas/<sha256>, which has no peer here), then on
// turborepo-remote-cache, alternating A B A B for --rounds rounds; medians
// over rounds and ratios are printed, then one JSON line.
//
//   node bench/build-caches.ts [--rounds 3] [--duration 5]
//
// Needs `wrk` (Debian package) and turborepo-remote-cache under
// $HOARD_BENCH_DEPS (default /tmp/hoard-bench-deps; install it with
// `npm install --prefix /tmp/hoard-bench-deps turborepo-remote-cache@2.12.0`).
// Run by hand; results go to docs/benchmarks.md with the machine and date.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

const ROOT = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const ROUNDS = opt('--rounds', 3);
const DURATION = opt('--duration', 5);
const DEPS = process.env.HOARD_BENCH_DEPS ?? '/tmp/hoard-bench-deps';
const KiB = 1024;
const MiB = 1024 * KiB;
const TOKEN = 'bench-token';
const TEAM = 'bench';

interface Size {
  label: string;
  bytes: number;
  /** wrk connections for throughput; sequential samples for latency. */
  connections: number;
  samples: number;
}
const SIZES: Size[] = [
  { label: '4 KiB', bytes: 4 * KiB, connections: 64, samples: 400 },
  { label: '8 MiB', bytes: 8 * MiB, connections: 8, samples: 40 },
];

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

interface Server {
  name: string;
  /** `<base>/v8/artifacts` of its Turborepo API. */
  artifacts: string;
  /** `<base>/bazel/cas` of its Bazel HTTP cache (hoard only). */
  cas?: string;
  /** The server process (its CPU time is read from /proc). */
  pid: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Spawns a server and waits until `ready` answers (polled: the process gives no other signal). */
async function spawnServer(
  name: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  ready: string,
  artifacts: string,
  cas?: string,
) {
  const child = spawn(process.execPath, argv, {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...env },
  });
  children.add(child);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(ready, { headers: { authorization: `Bearer ${TOKEN}` } }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${name} did not come up`);
    await delay(100);
  }
  return {
    name,
    artifacts,
    cas,
    pid: child.pid as number,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      children.delete(child);
    },
  } satisfies Server;
}

async function startHoard(dir: string): Promise<Server> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // With a tokens file, so every request pays for its token check, as on the other side.
  const tokens = join(dir, '..', 'hoard-tokens.json');
  await writeFile(
    tokens,
    JSON.stringify({ tokens: [{ name: 'bench', token: TOKEN, scopes: ['read', 'write'] }] }),
  );
  return spawnServer(
    'hoard',
    [
      join(ROOT, 'bin', 'hoard.js'),
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data',
      dir,
      '--tokens',
      tokens,
    ],
    {},
    `${base}/readyz`,
    `${base}/turbo/v8/artifacts`,
    `${base}/bazel/cas`,
  );
}

function trcVersion(): string | undefined {
  const pkg = join(DEPS, 'node_modules', 'turborepo-remote-cache', 'package.json');
  return existsSync(pkg) ? (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version : undefined;
}

async function startTrc(dir: string): Promise<Server> {
  const pkg = join(DEPS, 'node_modules', 'turborepo-remote-cache', 'package.json');
  const meta = JSON.parse(readFileSync(pkg, 'utf8')) as { bin: string | Record<string, string> };
  const bin = typeof meta.bin === 'string' ? meta.bin : Object.values(meta.bin)[0];
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  return spawnServer(
    'turborepo-remote-cache',
    [join(dirname(pkg), bin)],
    {
      NODE_ENV: 'production',
      PORT: String(port),
      TURBO_TOKEN: TOKEN,
      STORAGE_PROVIDER: 'local',
      STORAGE_PATH: dir,
      LOG_LEVEL: 'error',
      BODY_LIMIT: String(1024 * MiB),
    },
    `${base}/v8/artifacts/status`,
    `${base}/v8/artifacts`,
  );
}

// ---- clients -------------------------------------------------------------------

const hashOf = () => randomBytes(8).toString('hex');

/** Where one protocol keeps an entry: Turborepo names it by a task hash, Bazel's CAS by its content. */
interface Protocol {
  urlFor(body: Buffer): string;
  missUrl(): string;
}
const turbo = (s: Server): Protocol => {
  const url = (hash: string) => `${s.artifacts}/${hash}?slug=${TEAM}`;
  return { urlFor: () => url(hashOf()), missUrl: () => url(hashOf()) };
};
const bazelCas = (s: Server): Protocol => ({
  urlFor: (body) => `${s.cas}/${createHash('sha256').update(body).digest('hex')}`,
  missUrl: () => `${s.cas}/${randomBytes(32).toString('hex')}`,
});

/** One request on a keep-alive agent; resolves with its status once the body is read. */
function call(agent: Agent, method: string, target: string, body?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(target, {
      method,
      agent,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body
          ? { 'content-type': 'application/octet-stream', 'content-length': String(body.length) }
          : {}),
      },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Median latency (ms) of `n` sequential requests made by `next(i)`, after a short warm-up. */
async function latency(
  n: number,
  next: (i: number) => Promise<number>,
  ok: (status: number) => boolean,
): Promise<number> {
  for (let i = 0; i < Math.min(10, n); i++) await next(i);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const status = await next(i);
    times.push(performance.now() - t0);
    if (!ok(status)) throw new Error(`unexpected status ${status}`);
  }
  return median(times);
}

interface Rate {
  rps: number;
  mibps: number;
  /**
   * The server's own CPU time per request (user + system, from /proc). On a
   * shared 2-core machine where wrk competes for the same cores, this says
   * more about the server than req/s does: wrk's own cost per request is in
   * both sides' req/s and pulls their ratio towards 1.
   */
  cpuUsPerReq: number;
}

/** CPU time (µs) a process has used, from /proc/<pid>/stat (utime + stime, in clock ticks of 10 ms). */
function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function wrk(target: string, connections: number, allowNon2xx: boolean, pid: number): Promise<Rate> {
  const cpu0 = cpuUs(pid);
  const rate = await wrkRun(target, connections, allowNon2xx);
  return { ...rate, cpuUsPerReq: (cpuUs(pid) - cpu0) / Math.max(1, rate.requests) };
}

function wrkRun(
  target: string,
  connections: number,
  allowNon2xx: boolean,
): Promise<Omit<Rate, 'cpuUsPerReq'> & { requests: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      'wrk',
      ['-t2', `-c${connections}`, `-d${DURATION}s`, '-H', `Authorization: Bearer ${TOKEN}`, target],
      { maxBuffer: 1 << 20 },
      (err, stdout) => {
        if (err) return reject(err);
        const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout);
        if (non2xx && !allowNon2xx) return reject(new Error(`${target}: ${non2xx[1]} non-2xx responses`));
        const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
        const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
        const t = /Transfer\/sec:\s+([\d.]+)(\w+)/.exec(stdout);
        const unit: Record<string, number> = { B: 1 / MiB, KB: 1 / KiB, MB: 1, GB: KiB };
        resolve({ rps, requests, mibps: t ? Number(t[1]) * (unit[t[2]] ?? 1) : 0 });
      },
    );
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---- one round on one server ---------------------------------------------------

interface Sample {
  hitMs: number;
  missMs: number;
  putMs: number;
  hit: Rate;
  miss: Rate;
}

async function measure(s: Server, p: Protocol, size: Size): Promise<Sample> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const body = randomBytes(size.bytes);
    const hit = p.urlFor(body);
    if ((await call(agent, 'PUT', hit, body)) >= 300) throw new Error(`${s.name}: PUT failed`);
    const hitMs = await latency(
      size.samples,
      () => call(agent, 'GET', hit),
      (st) => st === 200,
    );
    const missMs = await latency(
      size.samples,
      () => call(agent, 'GET', p.missUrl()),
      (st) => st === 404,
    );
    // The upload after a miss: distinct bodies (hoard would otherwise store the content once).
    const putMs = await latency(
      size.samples,
      (i) => {
        body.writeUInt32BE(i, 0);
        body.writeUInt32BE((Date.now() * 1000) % 2 ** 32, 4);
        return call(agent, 'PUT', p.urlFor(body), body);
      },
      (st) => st >= 200 && st < 300,
    );
    const hitRate = await wrk(hit, size.connections, false, s.pid);
    const missRate = await wrk(p.missUrl(), size.connections, true, s.pid);
    return { hitMs, missMs, putMs, hit: hitRate, miss: missRate };
  } finally {
    agent.destroy();
  }
}

// ---- main ------------------------------------------------------------------------

async function main(): Promise<void> {
  const trc = trcVersion();
  if (!trc) throw new Error(`turborepo-remote-cache not found under ${DEPS} (see the header of this file)`);
  const tmp = await mkdtemp(join(tmpdir(), 'hoard-bench-build-caches-'));
  const results: Record<string, Record<string, Sample[]>> = {
    hoard: {},
    'turborepo-remote-cache': {},
    'hoard bazel CAS': {},
  };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // A B A B: one server at a time, fresh data directories each round.
      for (const [name, startFn] of [
        ['hoard', startHoard],
        ['turborepo-remote-cache', startTrc],
      ] as const) {
        const server = await startFn(join(tmp, `${name}-${round}`));
        try {
          for (const size of SIZES) {
            const sample = await measure(server, turbo(server), size);
            (results[name][size.label] ??= []).push(sample);
            process.stderr.write(`round ${round + 1} ${name} ${size.label}: ${JSON.stringify(sample)}\n`);
            if (!server.cas) continue;
            // The same server's Bazel CAS (no peer: bazel-remote is neither on npm nor in Debian).
            const cas = await measure(server, bazelCas(server), size);
            (results['hoard bazel CAS'][size.label] ??= []).push(cas);
            process.stderr.write(
              `round ${round + 1} hoard bazel CAS ${size.label}: ${JSON.stringify(cas)}\n`,
            );
          }
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }

  const med = (name: string, label: string, pick: (s: Sample) => number) =>
    median(results[name][label].map(pick));
  const metrics: [string, (s: Sample) => number, 'lower' | 'higher'][] = [
    ['hit latency ms', (s) => s.hitMs, 'lower'],
    ['miss latency ms', (s) => s.missMs, 'lower'],
    ['upload latency ms', (s) => s.putMs, 'lower'],
    ['hit req/s', (s) => s.hit.rps, 'higher'],
    ['hit MiB/s', (s) => s.hit.mibps, 'higher'],
    ['miss req/s', (s) => s.miss.rps, 'higher'],
    ['hit server CPU µs/req', (s) => s.hit.cpuUsPerReq, 'lower'],
    ['miss server CPU µs/req', (s) => s.miss.cpuUsPerReq, 'lower'],
  ];
  const out: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.version}`,
    turborepoRemoteCache: trc,
    rounds: ROUNDS,
    durationS: DURATION,
    // The machine is shared: the load says how much the figures can be trusted.
    loadAverage: loadavg().map((x) => Number(x.toFixed(1))),
  };
  console.log(
    `\n${out.machine}; load ${(out.loadAverage as number[]).join(' ')}; turborepo-remote-cache ${trc}; ${ROUNDS} rounds, medians`,
  );
  console.log('| size | metric | hoard | turborepo-remote-cache | hoard advantage |');
  console.log('|---|---|---:|---:|---:|');
  for (const size of SIZES)
    for (const [label, pick, better] of metrics) {
      const h = med('hoard', size.label, pick);
      const t = med('turborepo-remote-cache', size.label, pick);
      const ratio = better === 'higher' ? h / t : t / h;
      out[`${size.label} ${label}`] = { hoard: h, trc: t, ratio };
      console.log(`| ${size.label} | ${label} | ${fmt(h)} | ${fmt(t)} | ${ratio.toFixed(2)}× |`);
    }
  console.log('\nhoard, Bazel HTTP cache CAS (/bazel/cas/<sha256>, verified PUTs), same rounds');
  console.log('| size | metric | hoard bazel CAS | hoard turbo (same server) |');
  console.log('|---|---|---:|---:|');
  for (const size of SIZES)
    for (const [label, pick] of metrics) {
      const c = med('hoard bazel CAS', size.label, pick);
      out[`bazel CAS ${size.label} ${label}`] = c;
      console.log(`| ${size.label} | ${label} | ${fmt(c)} | ${fmt(med('hoard', size.label, pick))} |`);
    }
  console.log(JSON.stringify(out));
}

const fmt = (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en') : x.toFixed(2));

await main();
