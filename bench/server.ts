// Server benchmark (issue 6): GET throughput of 4 KiB and 8 MiB blobs and
// PUT throughput, for `hoard serve` (disk tier, and with its memory tier),
// nginx serving the same files from disk (Debian nginx-light, PUT via its
// dav module) and turborepo-remote-cache (npm, local storage) serving the
// same payloads, in one run, with ratios; then the peak RSS of a hoard server
// while a 1 GiB blob is uploaded and downloaded.
//
//   node bench/server.ts [--duration 5] [--rounds 3] [--json FILE] [--skip-turbo] [--skip-rss]
//                        [--log-level LEVEL] [--base DIR] [--cols 'GET 4KiB,PUT 4KiB']
//                        [--skip-nginx] [--skip-memory] [--read-workers N|auto]
//                        [--base-read-workers N|auto|omit]
//
// --base DIR adds an older hoard (an unpacked tree with bin/hoard.js, e.g.
// `git archive <commit> | tar -x -C DIR` and node_modules linked in) as one
// more contender, its disk tier: before and after in one alternated run, with
// the same --read-workers (--base-read-workers says otherwise; `omit` for a
// tree older than the flag).
// --cols runs only the columns named (while iterating).
//
// hoard runs at its default log level (info: one log line per request, as
// an operator runs it) unless --log-level says otherwise, and with
// `--read-workers auto` (read worker processes, cores − 1, as
// docs/configuration.md advises for a server whose small reads are
// CPU-bound) unless --read-workers says otherwise (0: one process).
//
// Every measure runs once per round on every server, the order reversed each
// round (A B C D, D C B A, …), so a noisy moment on this shared machine hits
// all of them; each cell is the median over rounds (per-round figures are in
// the JSON, written to --json FILE as well as printed).
//
// Needs `wrk` and `nginx` (Debian packages). turborepo-remote-cache is looked
// up in $HOARD_BENCH_DEPS (default /tmp/hoard-bench-deps, install it there
// with `npm install --prefix /tmp/hoard-bench-deps turborepo-remote-cache`);
// it is skipped when absent. Results go to stdout as a table and one JSON
// line; docs/benchmarks.md keeps a copy with the machine and date.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'hoard.js');
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const DURATION = Number(opt('--duration', '5'));
const ROUNDS = Number(opt('--rounds', '3'));
const JSON_OUT = opt('--json', '');
const LOG_LEVEL = opt('--log-level', '');
const BASE = opt('--base', '');
const COLS = opt('--cols', 'GET 4KiB,GET 8MiB,PUT 4KiB,PUT 1MiB')
  .split(',')
  .map((c) => c.trim());
// As docs/configuration.md tells operators of a busy server: read workers on (`auto`: cores − 1).
const READ_WORKERS = opt('--read-workers', 'auto');
// The --base hoard's: the same unless said (`omit` for a tree from before --read-workers existed).
const BASE_READ_WORKERS = opt('--base-read-workers', READ_WORKERS);
const DEPS = process.env.HOARD_BENCH_DEPS ?? '/tmp/hoard-bench-deps';
const MiB = 1024 * 1024;

const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function sha(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitHttp(url: string, opts: { ok?: boolean } = {}, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (opts.ok && !res.ok) throw new Error(`${res.status}`);
      return;
    } catch {
      if (Date.now() > end) throw new Error(`${url} did not come up`);
      await sleep(100);
    }
  }
}

function start(cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const c = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  c.stderr?.resume();
  children.push(c);
  return c;
}

// ---- load generation ---------------------------------------------------------

interface WrkResult {
  rps: number;
  mbps: number;
}

function wrk(url: string, connections: number, headers: Record<string, string> = {}): Promise<WrkResult> {
  const h = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  return new Promise((resolve, reject) => {
    execFile(
      'wrk',
      ['-t2', `-c${connections}`, `-d${DURATION}s`, ...h, url],
      { maxBuffer: 1 << 20 },
      (err, stdout) => {
        if (err) return reject(err);
        const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
        const t = /Transfer\/sec:\s+([\d.]+)(\w+)/.exec(stdout);
        const unit: Record<string, number> = { B: 1 / MiB, KB: 1 / 1024, MB: 1, GB: 1024 };
        const mbps = t ? Number(t[1]) * (unit[t[2]] ?? 1) : 0;
        const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout);
        if (non2xx) return reject(new Error(`${url}: ${non2xx[1]} non-2xx responses`));
        resolve({ rps, mbps });
      },
    );
  });
}

/** PUT throughput: `count` distinct bodies of `size` bytes, `concurrency` at a time. */
async function putLoad(
  urlOf: (hex: string) => string,
  size: number,
  count: number,
  concurrency: number,
  headers: Record<string, string> = {},
): Promise<WrkResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const base = randomBytes(size);
  const bodies = Array.from({ length: count }, (_, i) => {
    const b = Buffer.from(base);
    b.writeUInt32BE(i, 0);
    b.writeUInt32BE(Date.now() % 2 ** 32, 4);
    return b;
  });
  const hexes = bodies.map(sha);
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await new Promise<void>((resolve, reject) => {
        const req = request(urlOf(hexes[i]), {
          method: 'PUT',
          agent,
          headers: { 'content-length': String(size), 'content-type': 'application/octet-stream', ...headers },
        });
        req.on('response', (res) => {
          res.resume();
          res.on('end', () =>
            (res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`PUT ${res.statusCode}`)),
          );
        });
        req.on('error', reject);
        req.end(bodies[i]);
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const s = (performance.now() - t0) / 1000;
  agent.destroy();
  return { rps: count / s, mbps: (count * size) / MiB / s };
}

// ---- servers -------------------------------------------------------------------

interface Target {
  name: string;
  get(hex: string): string;
  put(hex: string): string;
  headers: Record<string, string>;
  stop(): Promise<void>;
}

async function startHoard(
  dir: string,
  name: string,
  extra: string[],
  bin = BIN,
): Promise<Target & { pid: number }> {
  const port = await freePort();
  const c = start(process.execPath, [
    bin,
    'serve',
    '--listen',
    `127.0.0.1:${port}`,
    '--data',
    dir,
    ...(LOG_LEVEL ? ['--log-level', LOG_LEVEL] : []),
    ...extra,
  ]);
  const base = `http://127.0.0.1:${port}`;
  // Ready, not only up: the read workers start after the primary listens, and connections wrk
  // opens before them would all stay with the primary.
  await waitHttp(`${base}/readyz`, { ok: bin === BIN });
  return {
    name,
    pid: c.pid as number,
    get: (hex) => `${base}/v1/blobs/sha256/${hex}`,
    put: (hex) => `${base}/v1/blobs/sha256/${hex}`,
    headers: {},
    stop: async () => {
      c.kill('SIGINT');
      await new Promise((r) => c.once('exit', r));
    },
  };
}

async function startNginx(dir: string, files: Buffer[]): Promise<Target> {
  const port = await freePort();
  const root = join(dir, 'root');
  for (const f of files) {
    const hex = sha(f);
    await mkdir(join(root, 'v1', 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(root, 'v1', 'blobs', 'sha256', hex), f);
  }
  await mkdir(join(dir, 'body'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes ${cpus().length};
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path ${join(dir, 'body')};
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / {
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 0;
    }
  }
}
`,
  );
  const c = start('nginx', ['-c', conf, '-p', dir]);
  const base = `http://127.0.0.1:${port}`;
  await waitHttp(`${base}/v1/blobs/sha256/${sha(files[0])}`);
  return {
    name: 'nginx',
    get: (hex) => `${base}/v1/blobs/sha256/${hex}`,
    put: (hex) => `${base}/v1/blobs/sha256/${hex}`,
    headers: {},
    stop: async () => {
      c.kill('SIGQUIT');
      await new Promise((r) => c.once('exit', r));
    },
  };
}

function turboCli(): string | undefined {
  const pkg = join(DEPS, 'node_modules', 'turborepo-remote-cache', 'package.json');
  if (!existsSync(pkg)) return undefined;
  const meta = JSON.parse(readFileSync(pkg, 'utf8')) as {
    bin?: string | Record<string, string>;
    main?: string;
  };
  const rel = typeof meta.bin === 'string' ? meta.bin : Object.values(meta.bin ?? {})[0];
  return rel ? join(dirname(pkg), rel) : undefined;
}

async function startTurbo(dir: string, files: Buffer[]): Promise<Target | undefined> {
  const cli = turboCli();
  if (!cli) return undefined;
  const port = await freePort();
  const token = 'bench-token';
  const c = start(process.execPath, [cli], {
    NODE_ENV: 'production',
    PORT: String(port),
    TURBO_TOKEN: token,
    STORAGE_PROVIDER: 'local',
    STORAGE_PATH: dir,
    LOG_LEVEL: 'error',
    BODY_LIMIT: String(2 * 1024 * MiB),
  });
  const base = `http://127.0.0.1:${port}`;
  const headers = { authorization: `Bearer ${token}` };
  const url = (hex: string) => `${base}/v8/artifacts/${hex}?slug=bench`;
  await waitHttp(`${base}/v8/artifacts/status`);
  for (const f of files) {
    const res = await fetch(url(sha(f)), {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(f),
    });
    if (!res.ok) throw new Error(`turborepo-remote-cache PUT: ${res.status} ${await res.text()}`);
  }
  return {
    name: 'turborepo-remote-cache',
    get: url,
    put: url,
    headers,
    stop: async () => {
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    },
  };
}

// ---- peak RSS with a 1 GiB blob ------------------------------------------------

function vm(pid: number, key: string): number {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function rssRun(
  dir: string,
): Promise<{ uploadS: number; downloadS: number; peakRss: number; baseRss: number }> {
  const size = 1024 * MiB;
  const chunk = randomBytes(MiB);
  const piece = (i: number) => {
    const b = Buffer.from(chunk);
    b.writeUInt32BE(i, 0);
    return b;
  };
  const h = createHash('sha256');
  for (let i = 0; i < size / MiB; i++) h.update(piece(i));
  const hex = h.digest('hex');
  const srv = await startHoard(dir, 'hoard', []);
  const baseRss = vm(srv.pid, 'VmRSS');
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const req = request(srv.put(hex), {
      method: 'PUT',
      headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () =>
        (res.statusCode ?? 0) === 201 ? resolve() : reject(new Error(`PUT ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
    let i = 0;
    const write = () => {
      while (i < size / MiB) {
        if (!req.write(piece(i++))) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
  const uploadS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const got = await new Promise<number>((resolve, reject) => {
    request(srv.get(hex), (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
      });
      res.on('end', () => resolve(n));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
  if (got !== size) throw new Error(`downloaded ${got} bytes`);
  const downloadS = (performance.now() - t1) / 1000;
  const peakRss = vm(srv.pid, 'VmHWM');
  await srv.stop();
  return { uploadS, downloadS, peakRss, baseRss };
}

// ---- main ------------------------------------------------------------------------

async function main(): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'hoard-bench-'));
  // The machine is shared: the load around the run says how much to trust it.
  const loadBefore = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const small = randomBytes(4 * 1024);
  const large = randomBytes(8 * MiB);
  const results: Record<string, Record<string, WrkResult>> = {};
  try {
    const targets: Target[] = [];
    const workers = ['--read-workers', READ_WORKERS];
    const hoardDisk = await startHoard(join(tmp, 'hoard-disk'), 'hoard (disk tier)', [
      '--max-memory',
      '0',
      ...workers,
    ]);
    targets.push(hoardDisk);
    for (const f of [small, large]) await putLoadOne(hoardDisk, f);
    if (BASE) {
      const base = await startHoard(
        join(tmp, 'hoard-base'),
        'hoard base (disk tier)',
        ['--max-memory', '0', ...(BASE_READ_WORKERS === 'omit' ? [] : ['--read-workers', BASE_READ_WORKERS])],
        join(BASE, 'bin', 'hoard.js'),
      );
      targets.push(base);
      for (const f of [small, large]) await putLoadOne(base, f);
    }
    if (!flag('--skip-memory')) {
      const hoardMem = await startHoard(join(tmp, 'hoard-mem'), 'hoard (memory tier)', workers);
      targets.push(hoardMem);
      for (const f of [small, large]) await putLoadOne(hoardMem, f);
    }
    if (!flag('--skip-nginx')) targets.push(await startNginx(join(tmp, 'nginx'), [small, large]));
    if (!flag('--skip-turbo')) {
      const turbo = await startTurbo(join(tmp, 'turbo'), [small, large]);
      if (turbo) targets.push(turbo);
      else process.stderr.write(`turborepo-remote-cache not found under ${DEPS}: skipped\n`);
    }
    const rounds: Record<string, Record<string, WrkResult[]>> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of round % 2 ? [...targets].reverse() : targets) {
        process.stderr.write(`round ${round + 1}/${ROUNDS}: ${t.name}…\n`);
        const r = (rounds[t.name] ??= {});
        const add = (col: string, x: WrkResult) => (r[col] ??= []).push(x);
        if (COLS.includes('GET 4KiB')) add('GET 4KiB', await wrk(t.get(sha(small)), 64, t.headers));
        if (COLS.includes('GET 8MiB')) add('GET 8MiB', await wrk(t.get(sha(large)), 8, t.headers));
        if (COLS.includes('PUT 4KiB')) add('PUT 4KiB', await putLoad(t.put, 4096, 4000, 32, t.headers));
        if (COLS.includes('PUT 1MiB')) add('PUT 1MiB', await putLoad(t.put, MiB, 300, 8, t.headers));
      }
    }
    for (const t of targets) await t.stop();
    // Each cell: the round whose req/s is the median (its MiB/s with it).
    for (const [name, byCol] of Object.entries(rounds)) {
      results[name] = {};
      for (const [col, xs] of Object.entries(byCol))
        results[name][col] = [...xs].sort((a, b) => a.rps - b.rps)[(xs.length - 1) >> 1];
    }

    const cols = ['GET 4KiB', 'GET 8MiB', 'PUT 4KiB', 'PUT 1MiB'].filter((c) => COLS.includes(c));
    const lines = [
      `| server | ${cols.map((c) => `${c} req/s (MiB/s)`).join(' | ')} |`,
      `|---|${cols.map(() => '---').join('|')}|`,
    ];
    for (const [name, r] of Object.entries(results))
      lines.push(
        `| ${name} | ${cols.map((c) => `${r[c].rps.toFixed(0)} (${r[c].mbps.toFixed(0)})`).join(' | ')} |`,
      );
    const ref = results['hoard (disk tier)'];
    lines.push(
      '',
      `| ratio hoard (disk tier) / other, req/s | ${cols.join(' | ')} |`,
      `|---|${cols.map(() => '---').join('|')}|`,
    );
    for (const [name, r] of Object.entries(results)) {
      if (name === 'hoard (disk tier)') continue;
      lines.push(`| vs ${name} | ${cols.map((c) => (ref[c].rps / r[c].rps).toFixed(2)).join(' | ')} |`);
    }
    let rss: Awaited<ReturnType<typeof rssRun>> | undefined;
    if (!flag('--skip-rss')) {
      process.stderr.write('1 GiB upload/download…\n');
      rss = await rssRun(join(tmp, 'hoard-rss'));
      lines.push(
        '',
        `1 GiB blob through hoard: upload ${rss.uploadS.toFixed(1)} s (${(1024 / rss.uploadS).toFixed(0)} MiB/s), ` +
          `download ${rss.downloadS.toFixed(1)} s (${(1024 / rss.downloadS).toFixed(0)} MiB/s); ` +
          `RSS at start ${(rss.baseRss / MiB).toFixed(0)} MiB, peak ${(rss.peakRss / MiB).toFixed(0)} MiB`,
      );
    }
    const loadAfter = loadavg()
      .map((x) => x.toFixed(2))
      .join(' ');
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, Node ${process.version}`;
    process.stdout.write(
      `\n${new Date().toISOString()} — ${machine}; hoard log level ${LOG_LEVEL || 'default (info)'}, --read-workers ${READ_WORKERS}; ${ROUNDS} rounds alternating, medians; wrk ${DURATION}s per GET run (2 threads, 64/8 connections); load average ${loadBefore} before, ${loadAfter} after\n\n${lines.join('\n')}\n\n`,
    );
    const json = JSON.stringify({
      date: new Date().toISOString(),
      machine,
      rounds: ROUNDS,
      logLevel: LOG_LEVEL || 'default',
      load: { before: loadBefore, after: loadAfter },
      results,
      perRound: rounds,
      rss,
    });
    process.stdout.write(`${json}\n`);
    if (JSON_OUT) await writeFile(JSON_OUT, `${json}\n`);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await rm(tmp, { recursive: true, force: true });
  }
}

async function putLoadOne(t: Target, f: Buffer): Promise<void> {
  const res = await fetch(t.put(sha(f)), { method: 'PUT', body: new Uint8Array(f), headers: t.headers });
  if (!res.ok) throw new Error(`${t.name} PUT: ${res.status}`);
  await res.arrayBuffer();
}

await main();
