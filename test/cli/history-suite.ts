// History through the real CLI, parameterised by remote (file:// and a live
// `hoard serve`): two writers make three versions, the last a merge; log
// shows them; pull --at names versions each way (digest, R~N, ISO time),
// into a fresh folder and over a synced one (conflict rules, --exact);
// diff in both forms; status; cat of a large file with the child's peak
// RSS measured; rm with a stale version.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, describeDir, hoard, tempDir, writeFiles } from '../sync/helpers.ts';

export interface RemoteFixture {
  url: string;
  cleanup: () => Promise<void>;
}

interface LogJson {
  head: string;
  entries: {
    snapshot: string;
    parents: string[];
    createdAt: string;
    message?: string;
    user?: string;
    merge: boolean;
  }[];
}

const REPORT_RSS = join(import.meta.dirname, '..', 'support', 'children', 'report-rss.ts');

/** Runs `hoard` with its stdout hashed as it streams (never held) and its peak RSS reported. */
function hoardHashed(
  args: string[],
): Promise<{ code: number; sha: string; bytes: number; maxRssKiB: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', REPORT_RSS, BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const h = createHash('sha256');
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.byteLength;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /hoard-test-max-rss-kib=(\d+)/.exec(stderr);
      resolve({
        code: code ?? 1,
        sha: h.digest('hex'),
        bytes,
        maxRssKiB: m ? Number(m[1]) : Number.NaN,
        stderr,
      });
    });
  });
}

/** A file of `size` pseudo-random bytes written in 1 MiB pieces; returns its sha256. */
async function bigFile(path: string, size: number): Promise<string> {
  const h = createHash('sha256');
  const out = createWriteStream(path);
  let seed = 12345;
  for (let off = 0; off < size; off += 1 << 20) {
    const chunk = Buffer.allocUnsafe(Math.min(1 << 20, size - off));
    for (let i = 0; i < chunk.length; i += 4) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      chunk.writeUInt32LE(seed, i);
    }
    h.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => out.end((err?: Error) => (err ? j(err) : r())));
  return h.digest('hex');
}

export function historySuite(name: string, makeRemote: () => Promise<RemoteFixture>): void {
  describe(`history against ${name}`, () => {
    let fx: RemoteFixture;
    let tmp: { dir: string; cleanup: () => Promise<void> };
    let a: string;
    let b: string;
    const ref = `hist/${process.pid}/main`;
    let log: LogJson;
    const as = (user: string) => ({ env: { HOARD_USER: user } });

    before(async () => {
      fx = await makeRemote();
      tmp = await tempDir('hoard-hist-');
      a = join(tmp.dir, 'alice');
      b = join(tmp.dir, 'bob');
      await writeFiles(a, { 'a.txt': 'one\n', 'shared.txt': 'x\n' });
      const p1 = await hoard(['push', a, fx.url, '--ref', ref, '--message', 'first'], as('alice'));
      assert.equal(p1.code, 0, p1.stderr);
      assert.equal((await hoard(['pull', fx.url, b, '--ref', ref])).code, 0);
      await writeFiles(a, { 'a.txt': 'two\n' });
      const p2 = await hoard(['push', a, fx.url, '--ref', ref, '--message', 'second'], as('alice'));
      assert.equal(p2.code, 0, p2.stderr);
      // Bob started from the first version: his push merges Alice's second in.
      await writeFiles(b, { 'b.txt': 'bee\n' });
      const p3 = await hoard(['push', b, fx.url, '--ref', ref, '--message', 'third', '--json'], as('bob'));
      assert.equal(p3.code, 0, p3.stderr);
      const l = await hoard(['log', fx.url, '--ref', ref, '--json']);
      assert.equal(l.code, 0, l.stderr);
      log = l.json as unknown as LogJson;
    });
    after(async () => {
      await tmp?.cleanup();
      await fx?.cleanup();
    });

    it('log: three versions newest first, the last a merge of both writers', () => {
      const [v3, v2, v1] = log.entries;
      assert.deepEqual(
        log.entries.map((e) => e.message),
        ['third', 'second', 'first'],
      );
      assert.equal(v3.merge, true);
      assert.deepEqual(v3.parents, [v2.snapshot, v1.snapshot]);
      assert.equal(v3.user, 'bob');
      assert.equal(v2.merge, false);
      assert.deepEqual(v2.parents, [v1.snapshot]);
      assert.equal(v2.user, 'alice');
      assert.deepEqual(v1.parents, []);
    });

    it('pull --at a digest, R~N and an ISO time into fresh folders', async () => {
      const [v3, v2, v1] = log.entries;
      const byDigest = join(tmp.dir, 'at-digest');
      const r1 = await hoard(['pull', fx.url, byDigest, '--ref', ref, '--at', v1.snapshot, '--json']);
      assert.equal(r1.code, 0, r1.stderr);
      assert.equal(r1.json?.snapshot, v1.snapshot);
      assert.equal(r1.json?.at, v1.snapshot);
      assert.equal(await readFile(join(byDigest, 'a.txt'), 'utf8'), 'one\n');
      assert.deepEqual(Object.keys(await describeDir(byDigest)), ['a.txt', 'shared.txt']);

      const byTilde = join(tmp.dir, 'at-tilde');
      const r2 = await hoard(['pull', fx.url, byTilde, '--ref', ref, '--at', `${ref}~1`, '--json']);
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(r2.json?.snapshot, v2.snapshot);
      assert.deepEqual(Object.keys(await describeDir(byTilde)), ['a.txt', 'shared.txt']);
      assert.equal(await readFile(join(byTilde, 'a.txt'), 'utf8'), 'two\n');

      // The newest version at or before a time: v2's own time names v2.
      const byTime = join(tmp.dir, 'at-time');
      const r3 = await hoard(['pull', fx.url, byTime, '--ref', ref, '--at', v2.createdAt, '--json']);
      assert.equal(r3.code, 0, r3.stderr);
      assert.equal(r3.json?.snapshot, v2.snapshot);
      assert.notEqual(v3.createdAt < v2.createdAt, true);

      const before = new Date(Date.parse(v1.createdAt) - 60_000).toISOString();
      const none = await hoard(['pull', fx.url, join(tmp.dir, 'at-none'), '--ref', ref, '--at', before]);
      assert.equal(none.code, 2, none.stderr);
      assert.match(none.stderr, /HOARD_EREF_NOT_FOUND/);

      // A later plain pull moves the old folder forward to the head.
      const fwd = await hoard(['pull', fx.url, byDigest, '--ref', ref, '--json']);
      assert.equal(fwd.code, 0, fwd.stderr);
      assert.equal(fwd.json?.snapshot, v3.snapshot);
      assert.deepEqual(Object.keys(await describeDir(byDigest)), ['a.txt', 'b.txt', 'shared.txt']);
    });

    it('pull --at over a synced folder: local edits conflict (exit 3); --exact makes it equal the version', async () => {
      const [, , v1] = log.entries;
      const dir = join(tmp.dir, 'over');
      assert.equal((await hoard(['pull', fx.url, dir, '--ref', ref])).code, 0);
      await writeFiles(dir, { 'a.txt': 'local edit\n', 'extra.txt': 'untracked\n' });
      await writeFiles(dir, { '.hoardignore': 'build/\n', 'build/out.o': 'ignored\n' });
      const before = await describeDir(dir);
      const c = await hoard(['pull', fx.url, dir, '--ref', ref, '--at', v1.snapshot]);
      assert.equal(c.code, 3, c.stderr);
      assert.match(c.stderr, /HOARD_ESYNC_CONFLICT/);
      assert.match(c.stderr, /a\.txt/);
      assert.deepEqual(await describeDir(dir), before, 'a conflict writes nothing');

      const x = await hoard(['pull', fx.url, dir, '--ref', ref, '--at', v1.snapshot, '--exact', '--json']);
      assert.equal(x.code, 0, x.stderr);
      assert.equal(await readFile(join(dir, 'a.txt'), 'utf8'), 'one\n');
      await assert.rejects(stat(join(dir, 'extra.txt')), { code: 'ENOENT' });
      await assert.rejects(stat(join(dir, 'b.txt')), { code: 'ENOENT' });
      // Ignored files stay (and so does the ignore file, which is itself not in the version).
      assert.equal(await readFile(join(dir, 'build', 'out.o'), 'utf8'), 'ignored\n');
    });

    it('diff: two versions (and --stat), and a folder against its last sync', async () => {
      const [v3, , v1] = log.entries;
      const d = await hoard(['diff', fx.url, '--ref', ref, v1.snapshot, v3.snapshot, '--json']);
      assert.equal(d.code, 0, d.stderr);
      const j = d.json as { added: { path: string }[]; changed: { path: string }[]; removed: unknown[] };
      assert.deepEqual(
        j.added.map((e) => e.path),
        ['b.txt'],
      );
      assert.deepEqual(
        j.changed.map((e) => e.path),
        ['a.txt'],
      );
      assert.deepEqual(j.removed, []);
      const s = await hoard(['diff', fx.url, '--ref', ref, `${ref}~2`, '--stat']);
      assert.equal(s.code, 0, s.stderr);
      assert.equal(s.stdout, '1 added, 0 removed, 1 changed (+8 B -4 B)\n');

      const dir = join(tmp.dir, 'diff-local');
      assert.equal((await hoard(['pull', fx.url, dir, '--ref', ref])).code, 0);
      await writeFile(join(dir, 'shared.txt'), 'edited\n');
      await writeFile(join(dir, 'new.txt'), 'n\n');
      const l = await hoard(['diff', dir, '--json']);
      assert.equal(l.code, 0, l.stderr);
      const lj = l.json as { from: string; added: { path: string }[]; changed: { path: string }[] };
      assert.equal(lj.from, v3.snapshot);
      assert.deepEqual(
        lj.added.map((e) => e.path),
        ['new.txt'],
      );
      assert.deepEqual(
        lj.changed.map((e) => e.path),
        ['shared.txt'],
      );
    });

    it('status: up to date, ahead, diverged, behind — one ref read, nothing transferred', async () => {
      const dir = join(tmp.dir, 'status');
      assert.equal((await hoard(['pull', fx.url, dir, '--ref', ref])).code, 0);
      const st = async () => {
        const r = await hoard(['status', dir, fx.url, '--ref', ref, '--json']);
        assert.equal(r.code, 0, r.stderr);
        return r.json as {
          summary: string;
          wouldPush: boolean;
          wouldPull: boolean;
          local: { added: { path: string }[] };
        };
      };
      assert.equal((await st()).summary, 'up-to-date');
      await writeFiles(dir, { 'mine.txt': 'm\n' });
      const ahead = await st();
      assert.equal(ahead.summary, 'ahead');
      assert.deepEqual(
        ahead.local.added.map((e) => e.path),
        ['mine.txt'],
      );
      const other = join(tmp.dir, 'status-other');
      assert.equal((await hoard(['pull', fx.url, other, '--ref', ref])).code, 0);
      await writeFiles(other, { 'theirs.txt': 't\n' });
      assert.equal((await hoard(['push', other, fx.url, '--ref', ref])).code, 0);
      const diverged = await st();
      assert.equal(diverged.summary, 'diverged');
      assert.equal(diverged.wouldPull, true);
      assert.equal(diverged.wouldPush, true);
      assert.equal((await hoard(['push', dir, fx.url, '--ref', ref])).code, 0);
      // The push merged theirs.txt into the ref; this folder still has to pull it.
      assert.equal((await st()).summary, 'behind');
      const text = await hoard(['status', dir, fx.url, '--ref', ref]);
      assert.match(text.stdout, /would pull: yes/);
    });

    it('cat streams a large file with bounded memory', async (t) => {
      // Two sizes: streaming costs the same for both (what V8 keeps before it
      // collects is a constant); holding the file would cost the difference.
      const dir = join(tmp.dir, 'big');
      await mkdir(dir, { recursive: true });
      const small = 64 * 1024 * 1024;
      const large = 256 * 1024 * 1024;
      const shaSmall = await bigFile(join(dir, 'small.bin'), small);
      const shaLarge = await bigFile(join(dir, 'large.bin'), large);
      const bigRef = `${ref}-big`;
      const p = await hoard(['push', dir, fx.url, '--ref', bigRef]);
      assert.equal(p.code, 0, p.stderr);
      const s = await hoardHashed(['cat', fx.url, `${bigRef}:small.bin`]);
      assert.equal(s.code, 0, s.stderr);
      assert.equal([s.bytes, s.sha].join(), [small, shaSmall].join());
      const l = await hoardHashed(['cat', fx.url, `${bigRef}:large.bin`]);
      assert.equal(l.code, 0, l.stderr);
      assert.equal([l.bytes, l.sha].join(), [large, shaLarge].join());
      const grewMiB = (l.maxRssKiB - s.maxRssKiB) / 1024;
      assert.ok(Number.isFinite(grewMiB), l.stderr);
      t.diagnostic(
        `peak RSS: ${(s.maxRssKiB / 1024).toFixed(1)} MiB (64 MiB file), ${(l.maxRssKiB / 1024).toFixed(1)} MiB (256 MiB file)`,
      );
      assert.ok(grewMiB < 64, `192 MiB more file raised cat's peak RSS by ${grewMiB.toFixed(1)} MiB`);
    });

    it('rm with a stale version is a conflict (exit 3) and deletes nothing', async () => {
      const rmRef = `${ref}-rm`;
      const dir = join(tmp.dir, 'rm');
      await writeFiles(dir, { f: '1\n' });
      assert.equal((await hoard(['push', dir, fx.url, '--ref', rmRef])).code, 0);
      const ls = await hoard(['ls', fx.url, '--prefix', rmRef, '--json']);
      const version = (ls.json as { refs: { name: string; version: string }[] }).refs.find(
        (r) => r.name === rmRef,
      )?.version;
      assert.ok(version);
      await writeFiles(dir, { f: '2\n' });
      assert.equal((await hoard(['push', dir, fx.url, '--ref', rmRef])).code, 0);
      const stale = await hoard(['rm', fx.url, '--ref', rmRef, '--expect', version, '--json']);
      assert.equal(stale.code, 3, stale.stderr);
      assert.equal((stale.json as { error: { code: string } }).error.code, 'HOARD_EREF_CONFLICT');
      assert.match(stale.stderr, /^hint: /m);
      const still = await hoard(['cat', fx.url, `${rmRef}:f`]);
      assert.equal(still.stdout, '2\n');
      assert.equal((await hoard(['rm', fx.url, '--ref', rmRef])).code, 0);
      assert.equal((await hoard(['cat', fx.url, `${rmRef}:f`])).code, 2);
    });
  });
}
