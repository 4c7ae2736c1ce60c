// Git benchmark: clone time of a generated repository (bench/make-repo.ts:
// 20,000 commits, 5,000 files) directly from `git http-backend` behind nginx +
// fcgiwrap, versus through hoard with a warm mirror, and hoard's cold first
// clone (mirror created on the way). Then the snapshot restore: the first
// `GET /git/<repo>/snapshot.tar.zst` (generates the archive, timed alone), and
// `hoard git restore` (a real CLI process, so Node's start-up is included)
// against the warm snapshot versus a checked-out `git clone` through hoard
// (warm mirror) and directly from nginx. Prints the figures and ratios as JSON
// and as Markdown tables for docs/benchmarks.md. Every comparison alternates
// its contenders (A B A B…) and reports medians; the restore's peak RSS is
// measured with /usr/bin/time. Each cold clone goes to a new mirror (a new
// repository name in hoard for the same upstream), alternating with direct clones.
//
//   node bench/git.ts [--runs 3] [--commits 20000] [--files 5000] [--shape real|simple] [--keep]
//   node bench/git.ts --repo /path/to/any/repo.git [--runs 3] [--json out.json]
//   node bench/git.ts … --cold-only     (only the cold clones and their direct pairs, then exit)
//
// `--shape real` (default): hundreds of branches, tags and refs/pull/* (see
// bench/make-repo.ts); `--repo` benchmarks an existing bare repository
// instead (e.g. `git clone --mirror https://github.com/eslint/eslint`),
// served by the same nginx + git http-backend upstream.
//
// Needs nginx (nginx-light) and fcgiwrap: apt-get install -y nginx-light fcgiwrap

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    commits: { type: 'string', default: '20000' },
    files: { type: 'string', default: '5000' },
    shape: { type: 'string', default: 'real' },
    repo: { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'cold-only': { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const ROOT = join(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const env = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
};
const loadStart = loadavg().map((x) => Math.round(x * 100) / 100);
const work = mkdtempSync(join(tmpdir(), 'hoard-bench-git-'));
const children: ChildProcess[] = [];
const log = (s: string) => process.stderr.write(`${s}\n`);

function cleanup() {
  // Each helper runs in its own process group (fcgiwrap's and nginx's workers included).
  for (const c of children)
    if (c.exitCode === null && c.pid)
      try {
        process.kill(-c.pid, 'SIGTERM');
      } catch {}
  if (!values.keep) rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

function which(bin: string): string {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin'])
    if (existsSync(join(d, bin))) return join(d, bin);
  throw new Error(`${bin} not found: apt-get install -y nginx-light fcgiwrap`);
}

async function waitFor(fn: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- the repository -------------------------------------------------------
const reposRoot = join(work, 'repos');
mkdirSync(reposRoot);
const repo = join(reposRoot, 'bench.git');
if (values.repo) symlinkSync(resolve(values.repo), repo);
else
  execFileSync(
    NODE,
    [
      join(ROOT, 'bench', 'make-repo.ts'),
      repo,
      '--commits',
      values.commits!,
      '--files',
      values.files!,
      '--shape',
      values.shape!,
    ],
    { stdio: 'inherit' },
  );
// One name per cold clone: each creates a new mirror of the same upstream.
for (let i = 0; i < RUNS; i++) symlinkSync(repo, join(reposRoot, `cold${i}.git`));
const refCounts: Record<string, number> = {};
for (const r of execFileSync('git', ['-C', repo, 'for-each-ref', '--format=%(refname)'], {
  encoding: 'utf8',
  maxBuffer: 1 << 28,
}).split('\n'))
  if (r)
    refCounts[r.split('/').slice(0, 2).join('/')] = (refCounts[r.split('/').slice(0, 2).join('/')] ?? 0) + 1;

// ---- nginx + fcgiwrap + git http-backend -----------------------------------
const sock = join(work, 'fcgiwrap.sock');
children.push(
  spawn(which('fcgiwrap'), ['-c', '4', '-s', `unix:${sock}`], { stdio: 'ignore', detached: true }),
);
await waitFor(() => existsSync(sock), 5000, 'fcgiwrap socket');
const ngx = join(work, 'nginx');
mkdirSync(join(ngx, 'logs'), { recursive: true });
const port = 20000 + Math.floor(Math.random() * 20000);
writeFileSync(
  join(ngx, 'nginx.conf'),
  `daemon off;
worker_processes 2;
pid ${ngx}/nginx.pid;
error_log ${ngx}/logs/error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${ngx}/body;
  fastcgi_temp_path ${ngx}/fastcgi;
  proxy_temp_path ${ngx}/proxy;
  uwsgi_temp_path ${ngx}/uwsgi;
  scgi_temp_path ${ngx}/scgi;
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location ~ ^/git(/.*)$ {
      fastcgi_pass unix:${sock};
      fastcgi_buffering off;
      fastcgi_request_buffering off;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT ${reposRoot};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $1;
      fastcgi_param GIT_PROTOCOL $http_git_protocol;
      fastcgi_param HTTP_CONTENT_ENCODING $http_content_encoding;
    }
  }
}
`,
);
children.push(
  spawn(which('nginx'), ['-p', ngx, '-c', join(ngx, 'nginx.conf')], { stdio: 'inherit', detached: true }),
);
const upstream = `http://127.0.0.1:${port}/git`;
await waitFor(
  async () =>
    (await fetch(`${upstream}/bench.git/info/refs?service=git-upload-pack`).catch(() => null))?.status ===
    200,
  10_000,
  'nginx',
);

// ---- hoard ------------------------------------------------------------------
/** Log lines of the hoard servers this bench started (info level). */
const hoardLog: Record<string, unknown>[] = [];
async function startHoard(
  dataDir: string,
  extraEnv: Record<string, string>,
): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(
    NODE,
    [
      join(ROOT, 'bin', 'hoard.js'),
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--data',
      dataDir,
      '--log-level',
      'info',
      '--git-upstream',
      `bench=${upstream}`,
      // A mirror clone of the benchmark is far inside the bound: no fetch during a measured clone.
      '--git-max-staleness',
      '10m',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], detached: true, env: { ...process.env, ...extraEnv } },
  );
  children.push(proc);
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const o = JSON.parse(line);
        hoardLog.push(o);
        if (o.msg === 'hoard serving') resolve(o.url);
      } catch {}
    });
    proc.once('exit', (c) => reject(new Error(`hoard exited ${c}`)));
  });
  return { proc, url };
}
async function stopHoard(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}
const data = join(work, 'hoard-data');
// The cold clones get a server of their own with anchor prebuilding off: each
// cold clone creates a new mirror (a new name for the same upstream), and each
// new mirror would otherwise start its own background anchor build (≈ 15 s of
// a core for eslint), loading the machine under the next measurements.
const coldServer = await startHoard(join(work, 'hoard-data-cold'), {
  HOARD_SNAPSHOTS_PREBUILD_ANCHORS: 'false',
});
const { proc: hoard, url: hoardUrl } = await startHoard(data, {});

// ---- measurements -----------------------------------------------------------
let n = 0;
function clone(url: string): number {
  const dest = join(work, `clone-${n++}`);
  const t = process.hrtime.bigint();
  execFileSync('git', ['clone', '--quiet', '--no-checkout', url, dest], { env, stdio: 'inherit' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  // Kept until the run ends: deleting thousands of files between timed steps
  // makes the next step's file creation pay ext4's recently-deleted inode scan.
  return ms;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// A clone with its checkout: what a restore produces, so what it is compared with.
function cloneCheckout(url: string): number {
  const dest = join(work, `clone-${n++}`);
  const t = process.hrtime.bigint();
  execFileSync('git', ['clone', '--quiet', url, dest], { env, stdio: 'inherit' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  // Kept until the run ends: deleting thousands of files between timed steps
  // makes the next step's file creation pay ext4's recently-deleted inode scan.
  return ms;
}
interface RestoreJson {
  commit: string;
  bytes: number;
  durationMs: number;
  fetchedAfterRestore: boolean;
  /** When each step of the restore ended (ms since it started, src/git/restore.ts). */
  steps?: Record<string, number>;
}
let lastRestore: RestoreJson | undefined;
let lastRssKiB = 0;
let lastNodeRssKiB = 0;
/** `hoard git restore` as a user runs it: a new process (Node start-up included), its peak RSS measured. */
function restore(url: string): number {
  const dest = join(work, `restore-${n++}`);
  const rss = join(work, 'rss.txt');
  const nodeRss = join(work, 'node-rss.txt');
  const t = process.hrtime.bigint();
  const out = execFileSync(
    '/usr/bin/time',
    [
      '-f',
      '%M',
      '-o',
      rss,
      NODE,
      '--import',
      join(ROOT, 'bench', 'rss-at-exit.js'),
      join(ROOT, 'bin', 'hoard.js'),
      'git',
      'restore',
      url,
      dest,
      '--json',
    ],
    {
      env: { ...env, HOARD_BENCH_RSS_FILE: nodeRss },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  lastRssKiB = Number(readFileSync(rss, 'utf8').trim().split('\n').pop());
  lastNodeRssKiB = Number(readFileSync(nodeRss, 'utf8').trim());
  lastRestore = JSON.parse(out) as RestoreJson;
  if (!lastRestore.fetchedAfterRestore) throw new Error(`restore did not fetch: ${out}`);
  // Same result as a clone: a clean work tree at the upstream head.
  const status = execFileSync('git', ['-C', dest, 'status', '--porcelain'], { env, encoding: 'utf8' });
  if (status !== '') throw new Error(`restored tree is not clean:\n${status}`);
  // Kept until the run ends: deleting thousands of files between timed steps
  // makes the next step's file creation pay ext4's recently-deleted inode scan.
  return ms;
}

log('cold clones through hoard (each creates a new mirror) alternating with direct clones…');
clone(`${upstream}/bench.git`); // page cache warm for both sides
const coldDirect: number[] = [];
const colds: number[] = [];
/** From the start of each cold clone until its mirror was published (polled every 50 ms after the clone ended). */
const coldPublished: number[] = [];
const maintained = async () => {
  const text = await (await fetch(`${coldServer.url}/metrics`)).text();
  return [...text.matchAll(/^hoard_git_maintenance_total\{[^}]*\} (\d+)/gm)].reduce(
    (a, m) => a + Number(m[1]),
    0,
  );
};
for (let i = 0; i < RUNS; i++) {
  coldDirect.push(clone(`${upstream}/bench.git`));
  const t = process.hrtime.bigint();
  colds.push(clone(`${coldServer.url}/git/bench/cold${i}.git`));
  // The client's clone may end before the mirror is indexed and published (and maintained):
  // wait for that work, outside the timed clones, so that it never lands in the next timing.
  await waitFor(
    () => existsSync(join(work, 'hoard-data-cold', 'git', 'mirrors', 'bench', `cold${i}.git`, 'HEAD')),
    600_000,
    'the cold mirror published',
  );
  coldPublished.push(Number(process.hrtime.bigint() - t) / 1e6);
  await waitFor(async () => (await maintained()) >= i + 1, 600_000, 'the cold mirror maintained');
}
if (values['cold-only']) {
  const coldOnly = {
    date: new Date().toISOString(),
    runs: RUNS,
    loadavg: { start: loadStart, end: loadavg().map((x) => Math.round(x * 100) / 100) },
    refs: refCounts,
    ms: {
      coldMedian: Math.round(median(colds)),
      coldDirectMedian: Math.round(median(coldDirect)),
      colds: colds.map(Math.round),
      coldDirect: coldDirect.map(Math.round),
      coldPublished: coldPublished.map(Math.round),
    },
    ratios: { coldOverDirect: Math.round((median(colds) / median(coldDirect)) * 100) / 100 },
  };
  process.stdout.write(`${JSON.stringify(coldOnly, null, 2)}\n`);
  if (values.json) writeFileSync(values.json, `${JSON.stringify(coldOnly, null, 2)}\n`);
  await stopHoard(hoard);
  await stopHoard(coldServer.proc);
  process.exit(0);
}
await stopHoard(coldServer.proc);
log('first warm-mirror clone (creates the mirror used below)…');
const cold = clone(`${hoardUrl}/git/bench/bench.git`);
const mirror = join(data, 'git', 'mirrors', 'bench', 'bench.git');
// Wait for the post-clone maintenance (multi-pack bitmap, commit-graph) that makes the mirror warm.
await waitFor(
  () =>
    existsSync(join(mirror, 'objects', 'info', 'commit-graphs')) &&
    readdirSync(join(mirror, 'objects', 'pack')).some((f) => f.endsWith('.bitmap')),
  120_000,
  'mirror maintenance',
);
// Then the new mirror's anchor pack is built in the background once its maintenance is
// done (src/git/snapshot-service.ts): its time is what a repository's first
// snapshot request cost before, and what it costs if it comes before that is done.
const firstParents = Number(
  execFileSync('git', ['-C', repo, 'rev-list', '--count', '--first-parent', 'HEAD'], {
    env,
    encoding: 'utf8',
  }),
);
log('waiting for the background anchor pack of the new mirror…');
// Only histories longer than the anchor step have one (DEFAULTS.snapshotAnchorStep).
if (firstParents > 512)
  await waitFor(
    () => hoardLog.some((o) => o.msg === 'git: snapshot anchor pack ready' && o.repo === 'bench/bench'),
    600_000,
    'the anchor pack prebuild',
  );
const anchorPrebuildMs =
  Number(hoardLog.find((o) => o.msg === 'git: snapshot anchor pack ready' && o.repo === 'bench/bench')?.ms) ||
  null;
await new Promise((r) => setTimeout(r, 500));
log('direct and warm clones…');
const direct: number[] = [];
const warm: number[] = [];
clone(`${upstream}/bench.git`); // page cache warm for both sides
for (let i = 0; i < RUNS; i++) {
  direct.push(clone(`${upstream}/bench.git`));
  warm.push(clone(`${hoardUrl}/git/bench/bench.git`));
}

const upstreamHead = execFileSync('git', ['-C', repo, 'rev-parse', 'HEAD'], { env, encoding: 'utf8' }).trim();
const hoardRepoUrl = `${hoardUrl}/git/bench/bench.git`;
log('first snapshot request (generates the archive; anchor pack prebuilt)…');
let t0 = process.hrtime.bigint();
const first = await fetch(`${hoardRepoUrl}/snapshot.tar.zst`);
if (first.status !== 200) throw new Error(`snapshot: HTTP ${first.status} ${await first.text()}`);
const snapshotBytes = (await first.arrayBuffer()).byteLength;
const generateMs = Number(process.hrtime.bigint() - t0) / 1e6;
if (first.headers.get('x-hoard-commit') !== upstreamHead)
  throw new Error(`snapshot commit ${first.headers.get('x-hoard-commit')} is not ${upstreamHead}`);
// The same request again: the snapshot exists now (find, not generate).
t0 = process.hrtime.bigint();
const again = await fetch(`${hoardRepoUrl}/snapshot.tar.zst`);
await again.arrayBuffer();
const warmGetMs = Number(process.hrtime.bigint() - t0) / 1e6;
if (again.headers.get('etag') !== first.headers.get('etag'))
  throw new Error('snapshot changed between requests');
// The first request for another commit (the parent): what every new commit of the
// branch costs once the repository's anchor pack exists (src/git/snapshot-anchor.ts).
const parent = execFileSync('git', ['-C', repo, 'rev-parse', 'HEAD~1'], { env, encoding: 'utf8' }).trim();
t0 = process.hrtime.bigint();
const next = await fetch(`${hoardRepoUrl}/snapshot/${parent}.tar.zst`);
if (next.status !== 200) throw new Error(`snapshot of ${parent}: HTTP ${next.status} ${await next.text()}`);
await next.arrayBuffer();
const nextCommitMs = Number(process.hrtime.bigint() - t0) / 1e6;

// One unmeasured restore first: like the unmeasured clone for the page cache, it
// fills Node's compile cache, which the first CLI run after a source change
// writes (type stripping: ≈ 15 MiB and some 100 ms more in that run only; the
// npm package runs compiled JavaScript and never strips).
restore(hoardRepoUrl);
log('checked-out clones (direct, through hoard) and restores…');
const directCo: number[] = [];
const warmCo: number[] = [];
const restores: number[] = [];
const restoreInner: number[] = [];
const restoreRss: number[] = [];
const restoreNodeRss: number[] = [];
const restoreSteps: Record<string, number>[] = [];
cloneCheckout(`${upstream}/bench.git`); // page cache: the checkout's files
for (let i = 0; i < RUNS; i++) {
  directCo.push(cloneCheckout(`${upstream}/bench.git`));
  warmCo.push(cloneCheckout(hoardRepoUrl));
  restores.push(restore(hoardRepoUrl));
  restoreInner.push(lastRestore!.durationMs);
  restoreSteps.push(lastRestore!.steps ?? {});
  restoreRss.push(Math.round(lastRssKiB / 1024));
  restoreNodeRss.push(Math.round(lastNodeRssKiB / 1024));
  if (lastRestore!.commit !== upstreamHead)
    throw new Error(`restored ${lastRestore!.commit}, not ${upstreamHead}`);
}

const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model;
const result = {
  date: new Date().toISOString(),
  machine: {
    nproc: cpus().length,
    cpu,
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    git: execFileSync('git', ['--version'], { encoding: 'utf8' }).trim(),
    node: process.version,
  },
  repo: {
    source: values.repo ?? `bench/make-repo.ts --shape ${values.shape}`,
    refs: refCounts,
    commits: values.repo ? undefined : Number(values.commits),
    files: values.repo ? undefined : Number(values.files),
    packMiB:
      Math.round(
        (readdirSync(join(repo, 'objects', 'pack'))
          .filter((f) => f.endsWith('.pack'))
          .reduce(
            (s, f) =>
              s +
              Number(
                execFileSync('stat', ['-c', '%s', join(repo, 'objects', 'pack', f)], { encoding: 'utf8' }),
              ),
            0,
          ) /
          2 ** 20) *
          10,
      ) / 10,
  },
  runs: RUNS,
  loadavg: { start: loadStart, end: loadavg().map((x) => Math.round(x * 100) / 100) },
  ms: {
    directMedian: Math.round(median(direct)),
    warmMedian: Math.round(median(warm)),
    cold: Math.round(cold),
    coldMedian: Math.round(median(colds)),
    coldDirectMedian: Math.round(median(coldDirect)),
    colds: colds.map(Math.round),
    coldPublished: coldPublished.map(Math.round),
    coldDirect: coldDirect.map(Math.round),
    direct: direct.map(Math.round),
    warm: warm.map(Math.round),
  },
  ratios: {
    warmOverDirect: Math.round((median(warm) / median(direct)) * 100) / 100,
    coldOverDirect: Math.round((median(colds) / median(coldDirect)) * 100) / 100,
  },
  restore: {
    snapshotMiB: Math.round((snapshotBytes / 2 ** 20) * 10) / 10,
    ms: {
      generateFirstRequest: Math.round(generateMs),
      anchorPrebuildInBackground: anchorPrebuildMs,
      generateNextCommit: Math.round(nextCommitMs),
      warmSnapshotGet: Math.round(warmGetMs),
      restoreMedian: Math.round(median(restores)),
      restoreInProcessMedian: Math.round(median(restoreInner)),
      restorePeakRssMiB: Math.max(...restoreNodeRss),
      restorePeakRssWithGitChildrenMiB: Math.max(...restoreRss),
      cloneThroughHoardMedian: Math.round(median(warmCo)),
      cloneDirectMedian: Math.round(median(directCo)),
      restore: restores.map(Math.round),
      restoreInProcess: restoreInner,
      // Where each restore's time went (its --json steps, ms since the restore started).
      restoreSteps,
      cloneThroughHoard: warmCo.map(Math.round),
      cloneDirect: directCo.map(Math.round),
    },
    // > 1: the restore is faster by that factor.
    ratios: {
      cloneThroughHoardOverRestore: Math.round((median(warmCo) / median(restores)) * 100) / 100,
      cloneDirectOverRestore: Math.round((median(directCo) / median(restores)) * 100) / 100,
    },
  },
};
const R = result.restore;
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
// The raw figures next to the table (docs/benchmarks/…json).
if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(
  `\n| clone (git clone --no-checkout) | median ms | vs direct |\n|---|---|---|\n` +
    `| direct: nginx + fcgiwrap + git http-backend | ${result.ms.directMedian} | 1.00 |\n` +
    `| through hoard, warm mirror | ${result.ms.warmMedian} | ${result.ratios.warmOverDirect} |\n` +
    `| through hoard, cold (each clone creates a mirror; vs the direct clones alternating with them, ${result.ms.coldDirectMedian} ms) | ${result.ms.coldMedian} (${result.ms.colds.join(', ')}) | ${result.ratios.coldOverDirect} |\n` +
    `\n| work tree at the head (checked out) | median ms | ÷ restore |\n|---|---|---|\n` +
    `| \`hoard git restore\` (warm snapshot, CLI process) | ${R.ms.restoreMedian} (${R.ms.restore.join(', ')}) | 1.00 |\n` +
    `| \`git clone\` through hoard, warm mirror | ${R.ms.cloneThroughHoardMedian} (${R.ms.cloneThroughHoard.join(', ')}) | ${R.ratios.cloneThroughHoardOverRestore} |\n` +
    `| \`git clone\` direct: nginx + fcgiwrap + git http-backend | ${R.ms.cloneDirectMedian} (${R.ms.cloneDirect.join(', ')}) | ${R.ratios.cloneDirectOverRestore} |\n` +
    `\nsnapshot ${R.snapshotMiB} MiB vs pack ${result.repo.packMiB} MiB; first request (generation; anchor pack prebuilt in the background in ${R.ms.anchorPrebuildInBackground} ms) ${R.ms.generateFirstRequest} ms, first request for the parent commit ${R.ms.generateNextCommit} ms, ` +
    `warm GET ${R.ms.warmSnapshotGet} ms; restore in-process (durationMs) median ${R.ms.restoreInProcessMedian} ms, peak RSS ${R.ms.restorePeakRssMiB} MiB (largest git child included: ${R.ms.restorePeakRssWithGitChildrenMiB} MiB); refs ${JSON.stringify(refCounts)}\n`,
);
await stopHoard(hoard);
process.exit(0);
