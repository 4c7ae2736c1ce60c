// End-to-end: `hoard git restore` (the real CLI, real git) of crafted
// snapshot archives. The archives are built from a real snapshot of a real
// commit, with hostile git metadata added: hooks, a `.git/config` with
// `core.fsmonitor` or `core.worktree`, a `.git` that is a `gitdir:` file
// pointing at another real repository. A hostile server serves each as the
// commit's snapshot (and passes the git protocol through to a real hoard
// server, so the restore's fetch is real). Whatever the archive says, no
// command it brings runs (no marker file appears), nothing outside the target
// changes (the other repository's HEAD, config and refs are byte-identical),
// and the restore either gives a clean checkout of the commit or fails with a
// clear error leaving nothing behind. Also: a zstd bomb is refused at the
// unpacked-size cap without high memory, and the bearer token never appears
// in any git argv (a shim git on PATH records them).

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { type Entry, GIT_ENV, git, makeTar, makeUpstream, zst } from '../archive/helpers.ts';
import { type SnapshotTestServer, startSnapshotServer } from '../archive/snapshot-server.ts';
import {
  type HostileSnapshotServer,
  readTar,
  startHostileSnapshotServer,
} from './helpers/hostile-snapshot-server.ts';

const execFileP = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const HOARD = join(ROOT, 'bin', 'hoard.js');
const REAL_GIT = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function hoard(args: string[], env: NodeJS.ProcessEnv = GIT_ENV): Promise<Run> {
  try {
    const r = await execFileP(process.execPath, [HOARD, ...args], { env, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** Files and folders under `dir`, recursively (relative paths). */
async function listTree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(join(dir, rel), { withFileTypes: true }).catch(() => [])) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    out.push(r);
    if (d.isDirectory()) out.push(...(await listTree(dir, r)));
  }
  return out;
}

describe('hoard git restore of crafted archives', () => {
  let root: string;
  let markers: string;
  let srv: SnapshotTestServer;
  let evil: HostileSnapshotServer;
  let evilBase: string;
  let realHead: Headers;
  let commit: string;
  let real: Entry[];
  /** What the hostile server serves as the snapshot right now. */
  let archive: Buffer = Buffer.alloc(0);
  /** A real, separate repository an archive may try to point at. */
  let other: string;
  let otherBefore: Record<string, string>;
  let n = 0;

  const script = async (name: string): Promise<string> => {
    const path = join(root, `evil-${name}.sh`);
    await writeFile(path, `#!/bin/sh\necho ran > '${markers}/${name}'\n`, { mode: 0o755 });
    return path;
  };
  const snapshotOfOther = async () => {
    const files: Record<string, string> = {};
    for (const f of await listTree(join(other, '.git')))
      try {
        files[f] = await readFile(join(other, '.git', f), 'latin1');
      } catch {
        files[f] = 'dir';
      }
    files.HEAD_COMMIT = await git(other, 'rev-parse', 'HEAD');
    files.ORIGIN = await git(other, 'config', '--get', 'remote.origin.url');
    return files;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-restore-hostile-'));
    markers = join(root, 'markers');
    await mkdir(markers);
    const work = await makeUpstream(root);
    const bare = join(root, 'upstreams', 'app.git');
    await git(root, 'clone', '-q', '--bare', work, bare);
    srv = await startSnapshotServer({ upstreams: { up: `file://${join(root, 'upstreams')}` } });
    const stable = `${srv.url}/git/up/app.git/snapshot.tar.zst`;
    const res = await fetch(stable);
    assert.equal(res.status, 200);
    realHead = res.headers;
    commit = realHead.get('x-hoard-commit')!;
    real = await readTar(zlib.zstdDecompressSync(Buffer.from(await res.arrayBuffer())));
    assert.ok(real.some((e) => e.name.startsWith('.git/objects/pack/')));

    other = join(root, 'other');
    await git(root, 'clone', '-q', work, other);
    await git(other, 'remote', 'set-url', 'origin', 'https://example.com/other.git');
    otherBefore = await snapshotOfOther();

    // The hostile server: its own archive for the snapshot URLs, the real
    // server's answers for the git protocol (so the restore's fetch is real).
    evil = await startHostileSnapshotServer({
      realUrl: srv.url,
      archive: () => archive,
      commit: () => commit,
      ref: () => realHead.get('x-hoard-ref') ?? 'refs/heads/main',
    });
    evilBase = `${evil.url}/git/up/app.git`;
  });
  after(async () => {
    await evil?.close();
    await srv?.close();
    await rm(root, { recursive: true, force: true });
  });

  /** The real snapshot's entries with `drop` removed and `add` appended. */
  const crafted = async (add: Entry[], drop: (e: Entry) => boolean = () => false) =>
    zst(await makeTar([...real.filter((e) => !drop(e)), ...add]));

  /** Restores the served archive into a fresh folder; checks nothing ran and nothing outside changed. */
  async function restore(): Promise<{ r: Run; dest: string; parent: string }> {
    const parent = join(root, `case-${++n}`);
    await mkdir(parent);
    const dest = join(parent, 'ws');
    const r = await hoard(['git', 'restore', evilBase, dest, '--json']);
    assert.deepEqual(await readdir(markers), [], `a command from the archive ran: ${r.stderr}`);
    assert.deepEqual(await snapshotOfOther(), otherBefore, 'the other repository changed');
    return { r, dest, parent };
  }

  async function assertCleanCheckout(dest: string): Promise<void> {
    assert.equal(await git(dest, 'rev-parse', 'HEAD'), commit);
    assert.equal(await git(dest, 'status', '--porcelain', '--untracked-files=all'), '');
    const config = await readFile(join(dest, '.git', 'config'), 'utf8');
    assert.doesNotMatch(config, /fsmonitor|worktree|hooksPath|evil/i);
    assert.equal(await git(dest, 'remote', 'get-url', 'origin'), evilBase);
    assert.deepEqual(await listTree(join(dest, '.git', 'hooks')), []);
  }

  async function assertRefusedCleanly(res: { r: Run; dest: string; parent: string }, pattern: RegExp) {
    assert.equal(res.r.code, 1, res.r.stderr);
    assert.match(res.r.stderr, /HOARD_EARCHIVE_UNSAFE/);
    assert.match(res.r.stderr, pattern);
    assert.deepEqual(await readdir(res.parent), [], 'no target, no staging dir left');
  }

  it('the unmodified snapshot restores (the harness itself works)', async () => {
    archive = await crafted([]);
    const res = await restore();
    assert.equal(res.r.code, 0, res.r.stderr);
    await assertCleanCheckout(res.dest);
  });

  it('(a) executable hooks are refused; none runs', async () => {
    const hooks = [
      'post-checkout',
      'post-index-change',
      'reference-transaction',
      'post-merge',
      'pre-auto-gc',
    ];
    const add: Entry[] = [{ name: '.git/hooks', type: 'directory', mode: 0o755 }];
    for (const h of hooks)
      add.push({ name: `.git/hooks/${h}`, mode: 0o755, body: `#!/bin/sh\necho ran > '${markers}/${h}'\n` });
    archive = await crafted(add);
    await assertRefusedCleanly(await restore(), /\.git\/hooks/);
  });

  it('(b) a .git/config with core.fsmonitor and core.hooksPath is ignored; restore writes its own', async () => {
    const fsmonitor = await script('fsmonitor');
    const hookDir = join(root, 'evil-hooks');
    await mkdir(hookDir, { recursive: true });
    for (const h of ['post-checkout', 'reference-transaction', 'post-index-change'])
      await writeFile(join(hookDir, h), `#!/bin/sh\necho ran > '${markers}/hooksPath-${h}'\n`, {
        mode: 0o755,
      });
    const config = `[core]\n\trepositoryformatversion = 0\n\tfsmonitor = ${fsmonitor}\n\thooksPath = ${hookDir}\n[alias]\n\tstatus = !${fsmonitor}\n`;
    archive = await crafted([{ name: '.git/config', body: config }], (e) => e.name === '.git/config');
    const res = await restore();
    assert.equal(res.r.code, 0, res.r.stderr);
    await assertCleanCheckout(res.dest);
    // Using the restored clone afterwards runs nothing either.
    await git(res.dest, 'status');
    assert.deepEqual(await readdir(markers), []);
  });

  it('(c) a .git that is a "gitdir:" file pointing at another repository is refused', async () => {
    const notGit = (e: Entry) => e.name === '.git' || e.name.startsWith('.git/');
    archive = await crafted([{ name: '.git', body: `gitdir: ${join(other, '.git')}\n` }], notGit);
    await assertRefusedCleanly(await restore(), /\.git must be a directory/);
    // The same as a symlink, and a real .git whose commondir points at the other repository.
    archive = await crafted([{ name: '.git', type: 'symlink', linkname: join(other, '.git') }], notGit);
    await assertRefusedCleanly(await restore(), /\.git must be a directory/);
    archive = await crafted([{ name: '.git/commondir', body: `${join(other, '.git')}\n` }]);
    await assertRefusedCleanly(await restore(), /\.git\/commondir/);
  });

  it('(d) core.worktree pointing elsewhere is ignored: files land in the target only', async () => {
    const elsewhere = join(root, 'elsewhere');
    await mkdir(elsewhere, { recursive: true });
    archive = await crafted(
      [{ name: '.git/config', body: `[core]\n\tworktree = ${elsewhere}\n\tbare = false\n` }],
      (e) => e.name === '.git/config',
    );
    const res = await restore();
    assert.equal(res.r.code, 0, res.r.stderr);
    await assertCleanCheckout(res.dest);
    assert.deepEqual(await readdir(elsewhere), []);
    assert.ok((await readdir(res.dest)).includes('README.md'));
    // core.worktree via config.worktree (extensions.worktreeConfig) is refused outright.
    archive = await crafted([{ name: '.git/config.worktree', body: `[core]\n\tworktree = ${elsewhere}\n` }]);
    await assertRefusedCleanly(await restore(), /config\.worktree/);
    assert.deepEqual(await readdir(elsewhere), []);
  });

  it('(e) a zstd bomb is refused at the unpacked-size cap, without high memory', async () => {
    // 2 GiB of zeros in one tar entry, compressed as it is produced (never in memory).
    const size = 2 * 1024 ** 3;
    const pack = tar.pack();
    const zchunks: Buffer[] = [];
    const compressed = (async () => {
      for await (const c of pack.pipe(zlib.createZstdCompress())) zchunks.push(c as Buffer);
    })();
    const zeros = Buffer.alloc(1 << 20);
    const body = pack.entry({ name: 'zeros.bin', size, mtime: new Date(0) });
    for (let left = size; left > 0; left -= zeros.length) {
      if (!body.write(zeros)) await new Promise<void>((r) => body.once('drain', () => r()));
    }
    body.end(() => {});
    pack.finalize();
    await compressed;
    archive = Buffer.concat(zchunks);
    assert.ok(archive.byteLength < 256 * 1024, `bomb is ${archive.byteLength} bytes`);

    // The real CLI: a clear error, nothing left.
    const parent = join(root, 'bomb');
    await mkdir(parent);
    const r = await hoard(['git', 'restore', evilBase, join(parent, 'ws')]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /archive expands to more than \d+ bytes; refused \[HOARD_ETOO_LARGE\]/);
    assert.deepEqual(await readdir(parent), []);

    // The same restore in a process of its own, for its peak RSS.
    const code = `
      import { gitRestore } from ${JSON.stringify(join(ROOT, 'src', 'git', 'restore.ts'))};
      let error;
      try { await gitRestore({ url: ${JSON.stringify(evilBase)}, dir: ${JSON.stringify(join(parent, 'ws2'))}, noFetch: true }); }
      catch (e) { error = { code: e.code, message: e.message }; }
      process.stdout.write(JSON.stringify({ error, maxRss: process.resourceUsage().maxRSS * 1024 }));`;
    const { stdout } = await execFileP(process.execPath, ['--input-type=module', '-e', code], {
      env: GIT_ENV,
    });
    const out = JSON.parse(stdout) as { error?: { code: string; message: string }; maxRss: number };
    assert.equal(out.error?.code, 'HOARD_ETOO_LARGE', JSON.stringify(out));
    assert.match(out.error!.message, new RegExp(`more than ${DEFAULTS.restoreMinUnpackedBytes} bytes`));
    // Bound: well under the cap itself (the stream is never held), whatever the 2 GiB claims.
    assert.ok(out.maxRss < 256 * 1024 ** 2, `peak RSS ${(out.maxRss / 1024 ** 2).toFixed(0)} MiB`);
    assert.deepEqual(await readdir(parent), []);
  });

  it('(f) the bearer token reaches git through the environment, never argv', async () => {
    const token = `hoard-secret-${Date.now()}-xyzzy`;
    const shim = join(root, 'shim');
    await mkdir(shim, { recursive: true });
    const argvLog = join(root, 'git-argv.log');
    const envLog = join(root, 'git-env.log');
    await writeFile(
      join(shim, 'git'),
      `#!/bin/sh\nprintf '%s\\n' "git $*" >> '${argvLog}'\nenv | grep '^GIT_CONFIG_VALUE_' >> '${envLog}'\nexec '${REAL_GIT}' "$@"\n`,
    );
    await chmod(join(shim, 'git'), 0o755);
    archive = await crafted([]);
    const dest = join(root, 'with-token');
    const r = await hoard(['git', 'restore', evilBase, dest, '--json'], {
      ...GIT_ENV,
      PATH: `${shim}:${process.env.PATH}`,
      HOARD_TOKEN: token,
    });
    assert.equal(r.code, 0, r.stderr);
    const argv = await readFile(argvLog, 'utf8');
    assert.match(argv, /^git .*fetch/m, 'the shim saw the git steps');
    assert.ok(!argv.includes(token), 'the token appeared in a git argv');
    assert.ok(!argv.includes('Bearer'), 'an Authorization header appeared in a git argv');
    assert.match(await readFile(envLog, 'utf8'), new RegExp(`Authorization: Bearer ${token}`));
    assert.ok(!r.stdout.includes(token) && !r.stderr.includes(token));
  });
});
