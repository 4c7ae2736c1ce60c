// Generates the git benchmark's repository with `git fast-import`: a bare
// repository with COMMITS commits (default 20,000) touching FILES files
// (default 5,000, in 100 directories), deterministic (fixed seed, fixed
// dates), then repacked with bitmaps like a hosting service would.
//
// `--shape real` (bench/git.ts's default) makes it look like a hosted project
// instead of one branch: BRANCHES branches (default 300) forking off main with
// 1-3 commits each, TAGS annotated release tags (default 400) spread along
// main, and PULLS `refs/pull/<n>/head` refs (default 3,000) with a commit each
// that no branch reaches, as GitHub advertises them (a `--mirror` clone copies
// them all; a normal clone does not).
//
//   node bench/make-repo.ts <dir.git> [--commits N] [--files N] [--shape simple|real]
//                           [--branches N] [--tags N] [--pulls N]

import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    commits: { type: 'string', default: '20000' },
    files: { type: 'string', default: '5000' },
    shape: { type: 'string', default: 'simple' },
    branches: { type: 'string', default: '300' },
    tags: { type: 'string', default: '400' },
    pulls: { type: 'string', default: '3000' },
  },
});
const dir = positionals[0];
if (!dir) {
  process.stderr.write('usage: node bench/make-repo.ts <dir.git> [--commits N] [--files N]\n');
  process.exit(2);
}
const COMMITS = Number(values.commits);
const FILES = Number(values.files);
if (values.shape !== 'simple' && values.shape !== 'real') {
  process.stderr.write('--shape is simple or real\n');
  process.exit(2);
}
const REAL = values.shape === 'real';
const BRANCHES = REAL ? Number(values.branches) : 0;
const TAGS = REAL ? Math.min(Number(values.tags), COMMITS) : 0;
const PULLS = REAL ? Number(values.pulls) : 0;
const env = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };

// xorshift32: a fixed pseudo-random sequence, so every run builds the same repository.
let seed = 0x9e3779b9;
function rand(n: number): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed % n;
}

const WORDS =
  'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau'.split(
    ' ',
  );
function content(file: number, version: number): string {
  const lines = [`// file ${file} version ${version}`];
  const n = 10 + rand(40);
  for (let i = 0; i < n; i++)
    lines.push(`${WORDS[rand(WORDS.length)]} ${WORDS[rand(WORDS.length)]} ${rand(1_000_000)}`);
  return `${lines.join('\n')}\n`;
}
const path = (f: number) => `src/d${String(f % 100).padStart(2, '0')}/file${String(f).padStart(5, '0')}.txt`;

if (existsSync(dir)) {
  process.stderr.write(`${dir} exists\n`);
  process.exit(1);
}
execFileSync('git', ['init', '--bare', '--quiet', '-b', 'main', dir], { env });
const t0 = Date.now();
const fi = spawn('git', ['fast-import', '--quiet', '--done'], {
  cwd: dir,
  env,
  stdio: ['pipe', 'inherit', 'inherit'],
});
const exited = new Promise<number>((r) => fi.on('close', (c) => r(c ?? 1)));

let pending = '';
async function out(s: string): Promise<void> {
  pending += s;
  if (pending.length < 1 << 20) return;
  const chunk = pending;
  pending = '';
  if (!fi.stdin.write(chunk)) await new Promise((r) => fi.stdin.once('drain', r));
}
function data(s: string): string {
  return `data ${Buffer.byteLength(s)}\n${s}\n`;
}

const base = 1_600_000_000;
const versions = new Array<number>(FILES).fill(0);
for (let c = 0; c < COMMITS; c++) {
  const when = base + c * 600;
  let body = `commit refs/heads/main\nmark :${c + 1}\nauthor Bench <bench@example.com> ${when} +0000\ncommitter Bench <bench@example.com> ${when} +0000\n`;
  body += data(`commit ${c}: ${WORDS[rand(WORDS.length)]} ${WORDS[rand(WORDS.length)]}`);
  if (c > 0) body += `from :${c}\n`;
  await out(body);
  if (c === 0) {
    for (let f = 0; f < FILES; f++) await out(`M 100644 inline ${path(f)}\n${data(content(f, 0))}`);
  } else {
    const k = 1 + rand(3);
    for (let i = 0; i < k; i++) {
      const f = rand(FILES);
      versions[f]++;
      await out(`M 100644 inline ${path(f)}\n${data(content(f, versions[f]))}`);
    }
  }
  await out('\n');
}
// The real shape: side commits off main (branches and pull refs), annotated tags on main.
let mark = COMMITS;
async function side(ref: string, from: number, n: number, i: number): Promise<void> {
  for (let k = 0; k < n; k++) {
    const when = base + from * 600 + 60 * (k + 1);
    mark++;
    let body = `commit ${ref}\nmark :${mark}\nauthor Dev <dev${i}@example.com> ${when} +0000\ncommitter Dev <dev${i}@example.com> ${when} +0000\n`;
    body += data(`${ref} ${k}: ${WORDS[rand(WORDS.length)]}`);
    body += `from :${k === 0 ? from : mark - 1}\n`;
    for (let j = 1 + rand(2); j > 0; j--) {
      const f = rand(FILES);
      await out(`${body}M 100644 inline ${path(f)}\n${data(content(f, 100_000 + mark))}`);
      body = '';
    }
    await out('\n');
  }
}
for (let b = 0; b < BRANCHES; b++) await side(`refs/heads/feature/b${b}`, 1 + rand(COMMITS), 1 + rand(3), b);
for (let p = 1; p <= PULLS; p++) await side(`refs/pull/${p}/head`, 1 + rand(COMMITS), 1, p);
for (let t = 0; t < TAGS; t++) {
  const at = Math.max(1, Math.round(((t + 1) * COMMITS) / TAGS));
  const when = base + at * 600 + 30;
  await out(
    `tag v${Math.floor(t / 20)}.${t % 20}.0\nfrom :${at}\ntagger Bench <bench@example.com> ${when} +0000\n${data(`release ${t}`)}`,
  );
}
await out('done\n');
fi.stdin.end(pending);
if ((await exited) !== 0) throw new Error('git fast-import failed');
const t1 = Date.now();
// Like a hosting service: one pack with bitmaps.
execFileSync('git', ['repack', '-a', '-d', '-f', '-b', '-q', '--window=10', '--depth=50'], { cwd: dir, env });
execFileSync('git', ['commit-graph', 'write', '--reachable', '--no-progress'], { cwd: dir, env });
const size = execFileSync('du', ['-sh', dir], { encoding: 'utf8' }).split('\t')[0];
process.stderr.write(
  `made ${dir}: ${COMMITS} commits, ${FILES} files, ${BRANCHES} more branches, ${TAGS} tags, ${PULLS} pull refs, ${size}, fast-import ${t1 - t0} ms, repack ${Date.now() - t1} ms\n`,
);
