// The `hoard cache` suite, parameterised by a remote factory like the sync
// suite, so file://, a live hoard server (and any other backend) run the same
// checks. Real `hoard` processes: the CLI's JSON fields and exit codes are
// the contract CI scripts depend on.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Digest } from '../../src/core/digest.ts';
import { sha256 } from '../../src/core/digest.ts';
import { snapshotDigest } from '../../src/core/snapshot-record.ts';
import { openRemote, type Remote } from '../../src/remote/remote.ts';
import { cacheRefName, cacheVersion } from '../../src/sync/cache-key.ts';
import { BIN, describeDir, tempDir, writeFiles } from './helpers.ts';

export interface CacheRemoteFixture {
  url: string;
  cleanup: () => Promise<void>;
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>;
}

/** `hoard <args>` in `cwd` (a new process), with extra environment. */
export function run(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(stdout);
        } catch {}
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

const RESTORE_KEYS = [
  'bytesDownloaded',
  'bytesTotal',
  'createdAt',
  'durationMs',
  'filesDeleted',
  'filesDownloaded',
  'filesKept',
  'filesRestored',
  'filesTotal',
  'hit',
  'key',
  'lookupOnly',
  'matchedKey',
  'paths',
  'ref',
  'scope',
  'snapshot',
  'version',
];

/** A tree blob written byte for byte (so tests can store what `treeDigest` would refuse). */
function rawTree(lines: object[]): Buffer {
  return Buffer.from(`{"hoard":"tree/1"}\n${lines.map((l) => `${JSON.stringify(l)}\n`).join('')}`);
}

async function putBlob(remote: Remote, bytes: Buffer): Promise<Digest> {
  const d = sha256(bytes);
  await remote.blobs.write(d, Readable.from([bytes]), { size: bytes.byteLength });
  return d;
}

export function cacheSuite(name: string, makeRemote: () => Promise<CacheRemoteFixture>): void {
  describe(`hoard cache against ${name}`, () => {
    let fx: CacheRemoteFixture;
    let remote: Remote;
    let work: { dir: string; cleanup: () => Promise<void> };
    let n = 0;
    const dir = async (label: string) => {
      const d = join(work.dir, `${label}-${++n}`);
      await mkdir(d, { recursive: true });
      return d;
    };
    const save = (cwd: string, key: string, paths: string[], ...extra: string[]) =>
      run(cwd, ['cache', 'save', key, ...paths, '--remote', fx.url, '--json', ...extra]);
    const restore = (cwd: string, key: string, paths: string[], ...extra: string[]) =>
      run(cwd, ['cache', 'restore', key, ...paths, '--remote', fx.url, '--json', ...extra]);

    before(async () => {
      fx = await makeRemote();
      remote = await openRemote(fx.url, { create: true });
      work = await tempDir('hoard-cache-');
    });
    after(async () => {
      await remote?.close();
      await work?.cleanup();
      await fx?.cleanup();
    });

    it('exact hit, partial hits (key prefix, restore keys in order, newest first), miss', async () => {
      const a = await dir('a');
      await writeFiles(a, {
        'node_modules/left-pad/index.js': 'module.exports = 1;\n',
        'node_modules/.bin/tool': '#!/bin/sh\n',
        'node_modules/big.bin': randomBytes(300_000),
        'cfg.json': '{"a":1}',
      });
      await chmod(join(a, 'node_modules/.bin/tool'), 0o755);
      await symlink('../left-pad/index.js', join(a, 'node_modules/.bin/lp'));
      await mkdir(join(a, 'node_modules/empty'));
      const paths = ['node_modules', 'cfg.json'];
      const s1 = await save(a, 'npm-aaa', paths);
      assert.equal(s1.code, 0, s1.stderr);
      assert.equal(s1.json.saved, true);
      assert.equal(s1.json.filesTotal, 4);

      // Exact: a fresh working directory gets every path back, byte for byte.
      const b = await dir('b');
      const r1 = await restore(b, 'npm-aaa', paths);
      assert.equal(r1.code, 0, r1.stderr);
      assert.deepEqual(Object.keys(r1.json).sort(), RESTORE_KEYS);
      assert.equal(r1.json.hit, 'exact');
      assert.equal(r1.json.matchedKey, 'npm-aaa');
      assert.equal(r1.json.version, cacheVersion(paths));
      assert.equal(r1.json.filesDownloaded, 4);
      assert.equal(r1.json.bytesDownloaded, r1.json.bytesTotal);
      assert.deepEqual(await describeDir(b), await describeDir(a));
      assert.equal(r1.stderr, ''); // no progress when stderr is not a terminal

      // The key itself is the first prefix (as actions/cache): npm-a matches npm-aaa.
      const r2 = await restore(await dir('c'), 'npm-a', paths);
      assert.equal(r2.json.hit, 'partial');
      assert.equal(r2.json.matchedKey, 'npm-aaa');

      // Restore keys: the newest entry under the first prefix that has any.
      const a2 = await dir('a2');
      await writeFiles(a2, { 'node_modules/x.js': 'newer', 'cfg.json': '{}' });
      assert.equal((await save(a2, 'npm-bbb', paths)).json.saved, true);
      const r3 = await restore(
        await dir('d'),
        'npm-zzz',
        paths,
        '--restore-keys',
        'yarn-',
        '--restore-keys',
        'npm-',
      );
      assert.equal(r3.json.hit, 'partial');
      assert.equal(r3.json.matchedKey, 'npm-bbb');
      // Order wins over age: npm-a comes first and only npm-aaa matches it.
      const r4 = await restore(await dir('e'), 'npm-zzz', paths, '--restore-keys', 'npm-a\nnpm-');
      assert.equal(r4.json.matchedKey, 'npm-aaa');
      assert.deepEqual(await describeDir(join(work.dir, `e-${n}`)), await describeDir(a));

      // Miss: exit 0, or 2 with --fail-on-cache-miss; nothing written either way.
      const f = await dir('f');
      const m1 = await restore(f, 'pip-1', paths, '--restore-keys', 'pip-');
      assert.equal(m1.code, 0);
      assert.equal(m1.json.hit, 'miss');
      assert.equal(m1.json.matchedKey, null);
      const m2 = await restore(f, 'pip-1', paths, '--fail-on-cache-miss');
      assert.equal(m2.code, 2);
      assert.equal(m2.json.hit, 'miss');
      assert.match(m2.stderr, /no cache entry matches/);
      assert.deepEqual(await readdir(f), []);

      // --lookup-only: says what would be restored, writes nothing.
      const l = await restore(f, 'npm-q', paths, '--restore-keys', 'npm-', '--lookup-only');
      assert.equal(l.code, 0);
      assert.equal(l.json.hit, 'partial');
      assert.equal(l.json.matchedKey, 'npm-bbb');
      assert.equal(l.json.lookupOnly, true);
      assert.deepEqual(await readdir(f), []);

      // Human output names the hit.
      const h = await run(await dir('g'), ['cache', 'restore', 'npm-aaa', ...paths, '--remote', fx.url]);
      assert.match(h.stdout, /^cache hit: 4 file\(s\)/);
    });

    it('restores incrementally: only missing blobs travel, files already right are kept', async () => {
      const src = await dir('src');
      const files: Record<string, Buffer> = {};
      for (let i = 0; i < 120; i++) files[`node_modules/p${i % 9}/f${i}.js`] = randomBytes(2_000 + i);
      await writeFiles(src, files);
      assert.equal((await save(src, 'inc-1', ['node_modules'])).json.saved, true);
      // Next key: one file changed, one added, one removed.
      const changed = randomBytes(5_000);
      const added = randomBytes(7_000);
      await writeFile(join(src, 'node_modules/p0/f0.js'), changed);
      await writeFile(join(src, 'node_modules/new.js'), added);
      await rm(join(src, 'node_modules/p1/f1.js'));
      assert.equal((await save(src, 'inc-2', ['node_modules'])).json.saved, true);

      const ci = await dir('ci');
      const cold = await restore(ci, 'inc-1', ['node_modules']);
      assert.equal(cold.json.filesDownloaded, 120);
      assert.equal(cold.json.bytesDownloaded, cold.json.bytesTotal);
      const warm = await restore(ci, 'inc-2', ['node_modules']);
      assert.equal(warm.code, 0, warm.stderr);
      assert.equal(warm.json.hit, 'exact');
      assert.equal(warm.json.filesDownloaded, 2);
      assert.equal(warm.json.bytesDownloaded, changed.length + added.length);
      assert.equal(warm.json.filesKept, 118);
      // Without --delete the file the entry lacks stays; with it, the folder is the entry exactly.
      assert.ok((await describeDir(ci))['node_modules/p1/f1.js']);
      const exact = await restore(ci, 'inc-2', ['node_modules'], '--delete');
      assert.equal(exact.json.bytesDownloaded, 0);
      assert.equal(exact.json.filesDeleted, 1);
      assert.deepEqual(await describeDir(ci), await describeDir(src));
      const again = await restore(ci, 'inc-2', ['node_modules']);
      assert.equal(again.json.filesRestored, 0);
      assert.equal(again.json.bytesDownloaded, 0);

      // A folder hoard never wrote (no stat cache): matching files are hashed, not downloaded.
      const copy = await dir('copy');
      await writeFiles(copy, files);
      const fromCopy = await restore(copy, 'inc-2', ['node_modules']);
      assert.equal(fromCopy.json.filesDownloaded, 2);
      assert.equal(fromCopy.json.bytesDownloaded, changed.length + added.length);
    });

    it('the version separates path lists (and platforms, when asked); keys are immutable', async () => {
      const a = await dir('v');
      await writeFiles(a, { 'one/x': '1', 'two/y': '2' });
      const s1 = await save(a, 'same-key', ['one']);
      const s2 = await save(a, 'same-key', ['one', 'two']);
      const s3 = await save(a, 'same-key', ['one'], '--platform');
      for (const s of [s1, s2, s3]) assert.equal(s.json.saved, true, s.stderr);
      assert.equal(new Set([s1.json.version, s2.json.version, s3.json.version]).size, 3);

      const b = await dir('v-restore');
      const r1 = await restore(b, 'same-key', ['one']);
      assert.equal(r1.json.hit, 'exact');
      assert.deepEqual(await describeDir(b), { 'one/x': `file:${sha256('1').slice(7)}` });
      const miss = await restore(await dir('v2'), 'same-key', ['two']);
      assert.equal(miss.json.hit, 'miss');

      // Saving an existing key is a no-op that says so (exit 0).
      await writeFile(join(a, 'one/x'), 'changed');
      const again = await save(a, 'same-key', ['one']);
      assert.equal(again.code, 0);
      assert.equal(again.json.saved, false);
      assert.equal(again.json.exists, true);
      assert.equal(again.json.snapshot, s1.json.snapshot);
      const human = await run(a, ['cache', 'save', 'same-key', 'one', '--remote', fx.url]);
      assert.equal(human.code, 0);
      assert.match(human.stdout, /already exists; not saved/);
    });

    it('concurrent saves of one key: one wins, the others say "already exists" and exit 0', async () => {
      const dirs = await Promise.all(
        [0, 1, 2, 3].map(async (i) => {
          const d = await dir(`race${i}`);
          await writeFiles(d, { 'out/file.txt': `writer ${i}\n`, 'out/big.bin': randomBytes(200_000) });
          return d;
        }),
      );
      const results = await Promise.all(dirs.map((d) => save(d, 'race-key', ['out'])));
      for (const r of results) assert.equal(r.code, 0, r.stderr);
      const winners = results.filter((r) => r.json.saved === true);
      assert.equal(winners.length, 1);
      for (const r of results.filter((x) => x !== winners[0])) {
        assert.equal(r.json.exists, true);
        assert.equal(r.json.snapshot, winners[0].json.snapshot);
      }
      const w = dirs[results.indexOf(winners[0])];
      const back = await dir('race-restore');
      assert.equal((await restore(back, 'race-key', ['out'])).json.hit, 'exact');
      assert.deepEqual(await describeDir(back), await describeDir(w));
    });

    it('relative paths follow the working directory, absolute ones and ~ stay where they are', async () => {
      const home1 = await dir('home1');
      const abs = join(await dir('abs'), 'data');
      const a = await dir('cwd1');
      await writeFiles(home1, { '.cache/tool/x': 'home' });
      await writeFiles(abs, { 'd.txt': 'absolute' });
      await writeFiles(a, { 'rel/r.txt': 'relative' });
      const paths = ['rel', abs, '~/.cache/tool'];
      const s = await run(a, ['cache', 'save', 'where', ...paths, '--remote', fx.url, '--json'], {
        HOME: home1,
      });
      assert.deepEqual(s.json.skipped, []);
      assert.equal(s.code, 0, s.stderr);
      // Elsewhere: another working directory and another home.
      await rm(abs, { recursive: true });
      const home2 = await dir('home2');
      const b = await dir('cwd2');
      const r = await run(b, ['cache', 'restore', 'where', ...paths, '--remote', fx.url, '--json'], {
        HOME: home2,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await readFile(join(b, 'rel/r.txt'), 'utf8'), 'relative');
      assert.equal(await readFile(join(abs, 'd.txt'), 'utf8'), 'absolute');
      assert.equal(await readFile(join(home2, '.cache/tool/x'), 'utf8'), 'home');
      // Overlapping paths are refused before anything happens.
      const o = await save(a, 'overlap', ['rel', 'rel/sub']);
      assert.equal(o.code, 1);
      assert.match(o.stderr, /overlap/);
    });

    it('list (newest first, by prefix) and delete (compare-and-set; absent key exits 2)', async () => {
      const a = await dir('l');
      await writeFiles(a, { 'x/1': '1' });
      for (const k of ['list-a', 'list-b', 'other']) assert.equal((await save(a, k, ['x'])).json.saved, true);
      const l = await run(a, ['cache', 'list', '--remote', fx.url, '--prefix', 'list-', '--json']);
      assert.equal(l.code, 0, l.stderr);
      const entries = l.json.entries as { key: string; paths: string[]; createdAt: string }[];
      assert.deepEqual(
        entries.map((e) => e.key),
        ['list-b', 'list-a'],
      );
      assert.deepEqual(entries[0].paths, ['x']);
      const d = await run(a, ['cache', 'delete', 'list-b', '--remote', fx.url, '--json']);
      assert.equal(d.code, 0, d.stderr);
      assert.equal((d.json.deleted as unknown[]).length, 1);
      assert.equal((await restore(await dir('l2'), 'list-b', ['x'])).json.hit, 'miss');
      const gone = await run(a, ['cache', 'delete', 'list-b', '--remote', fx.url]);
      assert.equal(gone.code, 2);
    });

    it('refuses hostile entries (.. paths, absolute paths, foreign roots, reserved names, symlinked roots): nothing written', async () => {
      const outside = await dir('outside');
      const file = await putBlob(remote, Buffer.from('pwned\n'));
      const fileLine = (path: string) => ({ path, kind: 'file', size: 6, digest: file });
      const cases: { label: string; lines: object[] }[] = [
        { label: 'dotdot', lines: [fileLine(`0/../../${outside.split('/').pop()}/x`)] },
        { label: 'absolute', lines: [fileLine(`${outside}/x`)] },
        { label: 'foreign root', lines: [fileLine('0/ok.txt'), fileLine('7/x')] },
        { label: 'not a root', lines: [fileLine('0/ok.txt'), fileLine('etc/passwd')] },
        { label: 'reserved', lines: [fileLine('0/.hoard/stat-cache.json')] },
        { label: 'symlinked root', lines: [{ path: '0', kind: 'symlink', target: outside }] },
        {
          label: 'symlink then file',
          lines: [{ path: '0/l', kind: 'symlink', target: outside }, fileLine('0/l/x')],
        },
      ];
      const paths = ['target'];
      const version = cacheVersion(paths);
      for (const c of cases) {
        const key = `hostile-${c.label.replace(/ /g, '-')}`;
        const tree = await putBlob(remote, rawTree(c.lines));
        const snap = snapshotDigest({ tree, parents: [], createdAt: new Date().toISOString(), meta: {} });
        await putBlob(remote, snap.bytes);
        await remote.refs.set(cacheRefName('default', key, version), snap.digest, null);
        const cwd = await dir(`h-${c.label.replace(/ /g, '-')}`);
        const r = await restore(cwd, key, paths);
        assert.equal(r.code, 1, `${c.label}: ${r.stdout} ${r.stderr}`);
        assert.match(
          String((r.json.error as { code?: string } | undefined)?.code),
          /HOARD_E(PATH|TREE)_INVALID/,
          c.label,
        );
        // Nothing in the working directory (not even the target folder's contents), nothing outside.
        const left = await readdir(cwd);
        for (const name of left) assert.deepEqual(await readdir(join(cwd, name)), [], `${c.label}: ${name}`);
        assert.deepEqual(await readdir(outside), [], c.label);
      }
    });
  });
}
