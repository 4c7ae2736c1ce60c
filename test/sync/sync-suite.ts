// The sync test suite, parameterised by a remote factory so every backend
// (file://, s3://, gs://, a hoard server) runs the same checks:
//
//   syncSuite('file', async () => ({ url: 'file:///…', cleanup }));
//
// The factory is called once per suite run and must return a fresh, empty remote
// (e.g. a new bucket prefix): some checks count the blobs a push uploads.
//
// Real directories, real files, and real `hoard` processes where the CLI is
// the contract (JSON fields, exit codes, new-process behaviour).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmod,
  mkdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../../src/core/digest.ts';
import { snapshotDigest } from '../../src/core/snapshot-record.ts';
import { openRemote, type Remote } from '../../src/remote/remote.ts';
import { pull } from '../../src/sync/pull.ts';
import { push } from '../../src/sync/push.ts';
import { countingRemote, describeDir, hoard, listAll, spawnHoard, tempDir, writeFiles } from './helpers.ts';

export interface RemoteFixture {
  url: string;
  cleanup: () => Promise<void>;
}

const PUSH_KEYS = [
  'bytesReused',
  'bytesUploaded',
  'durationMs',
  'filesReused',
  'filesTotal',
  'filesUploaded',
  'ref',
  'snapshot',
  'tree',
  'upToDate',
];
const PULL_KEYS = [
  'bytesDownloaded',
  'durationMs',
  'filesDeleted',
  'filesDownloaded',
  'filesTotal',
  'ref',
  'snapshot',
  'tree',
  'upToDate',
];

export function syncSuite(name: string, makeRemote: () => Promise<RemoteFixture>): void {
  describe(`sync against ${name}`, () => {
    let fx: RemoteFixture;
    let remote: Remote;
    let work: { dir: string; cleanup: () => Promise<void> };
    let n = 0;
    const ref = () => `test/sync/r${++n}-${process.pid}`;
    const dir = async (label: string) => {
      const d = join(work.dir, `${label}-${++n}`);
      await mkdir(d, { recursive: true });
      return d;
    };
    const cliPush = (d: string, r: string, ...extra: string[]) =>
      hoard(['push', d, fx.url, '--ref', r, '--json', ...extra]);
    const cliPull = (d: string, r: string, ...extra: string[]) =>
      hoard(['pull', fx.url, d, '--ref', r, '--json', ...extra]);

    before(async () => {
      fx = await makeRemote();
      remote = await openRemote(fx.url, { create: true });
      work = await tempDir();
    });
    after(async () => {
      await remote?.close();
      await work?.cleanup();
      await fx?.cleanup();
    });

    it('round-trips files, executables, symlinks and empty folders; JSON fields are exact', async () => {
      const a = await dir('a');
      await writeFiles(a, {
        'x.txt': 'x',
        'sub/deep/y.bin': Buffer.alloc(70_000, 7),
        'run.sh': '#!/bin/sh\n',
      });
      const big = Buffer.alloc(1_500_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
      await writeFiles(a, { 'big/blob.bin': big, 'naïve dir/ünïcode name.txt': 'u', 'empty.txt': '' });
      await chmod(join(a, 'run.sh'), 0o755);
      await symlink('sub/deep/y.bin', join(a, 'link'));
      await symlink('/nonexistent/target', join(a, 'dangling'));
      await mkdir(join(a, 'empty'));
      const r = ref();
      const p1 = await cliPush(a, r);
      assert.equal(p1.code, 0, p1.stderr);
      assert.deepEqual(Object.keys(p1.json!).sort(), PUSH_KEYS);
      assert.equal(p1.json!.filesTotal, 6);
      assert.equal(p1.json!.filesUploaded, 6);
      assert.equal(p1.json!.bytesUploaded, 1 + 70_000 + 10 + 1_500_000 + 1);
      assert.equal(p1.json!.upToDate, false);
      assert.match(String(p1.json!.snapshot), /^sha256:[0-9a-f]{64}$/);
      assert.equal(p1.stdout.trim().split('\n').length, 1);
      assert.equal(p1.stderr, ''); // no progress display when stderr is not a terminal

      const b = await dir('b');
      const p2 = await cliPull(b, r);
      assert.equal(p2.code, 0, p2.stderr);
      assert.deepEqual(Object.keys(p2.json!).sort(), PULL_KEYS);
      assert.equal(p2.json!.snapshot, p1.json!.snapshot);
      assert.equal(p2.json!.tree, p1.json!.tree);
      assert.equal(p2.json!.filesDownloaded, 6);
      assert.equal(p2.json!.bytesDownloaded, 1 + 70_000 + 10 + 1_500_000 + 1);
      assert.deepEqual(await describeDir(b), await describeDir(a));

      const p3 = await cliPull(b, r);
      assert.equal(p3.json!.upToDate, true);
      assert.equal(p3.json!.filesDownloaded, 0);
      const p4 = await cliPush(a, r);
      assert.equal(p4.json!.upToDate, true);
      assert.equal(p4.json!.snapshot, p1.json!.snapshot);
    });

    it('fresh pull of 200 files then push uploads nothing, in-process and from new processes', async () => {
      const src = await dir('src');
      const files: Record<string, string> = {};
      for (let i = 0; i < 200; i++)
        files[`d${i % 7}/f${i}.txt`] = `content of file ${i}\n`.repeat(1 + (i % 13));
      await writeFiles(src, files);
      const r = ref();
      const first = await push({ dir: src, remote, ref: r });
      assert.equal(first.filesUploaded, 200);

      // New processes: pull, then push from that directory.
      const fresh = await dir('fresh');
      const pl = await cliPull(fresh, r);
      assert.equal(pl.code, 0, pl.stderr);
      assert.equal(pl.json!.filesDownloaded, 200);
      const ps = await cliPush(fresh, r);
      assert.equal(ps.code, 0, ps.stderr);
      assert.equal(ps.json!.filesUploaded, 0);
      assert.equal(ps.json!.bytesUploaded, 0);
      assert.equal(ps.json!.upToDate, true);
      assert.equal(ps.json!.filesTotal, 200);

      // In-process.
      const fresh2 = await dir('fresh2');
      const pl2 = await pull({ dir: fresh2, remote, ref: r });
      assert.equal(pl2.filesDownloaded, 200);
      const ps2 = await push({ dir: fresh2, remote, ref: r });
      assert.equal(ps2.filesUploaded, 0);
      assert.equal(ps2.bytesUploaded, 0);
      assert.equal(ps2.upToDate, true);
      assert.equal(ps2.snapshot, first.snapshot);
    });

    it('no-op push and pull make exactly one remote call (the ref read)', async () => {
      const a = await dir('a');
      const files: Record<string, string> = {};
      for (let i = 0; i < 100; i++) files[`n/f${i}`] = `no-op ${i} ${n}`;
      await writeFiles(a, files);
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });
      for (const d of [a, b]) {
        const c1 = countingRemote(remote);
        const ps = await push({ dir: d, remote: c1.remote, ref: r });
        assert.equal(ps.upToDate, true);
        assert.deepEqual(Object.fromEntries(c1.calls), { 'refs.get': 1 });
        const c2 = countingRemote(remote);
        const pl = await pull({ dir: d, remote: c2.remote, ref: r });
        assert.equal(pl.upToDate, true);
        assert.deepEqual(Object.fromEntries(c2.calls), { 'refs.get': 1 });
      }
    });

    it('a push onto an unmoved ref uploads only new content, from the kept tree or, without it, the fetched one', async () => {
      const a = await dir('a');
      const tag = n;
      const files: Record<string, string> = {};
      for (let i = 0; i < 60; i++) files[`k/f${i}.txt`] = `kept ${i} ${tag}`;
      await writeFiles(a, files);
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const trees = join(a, '.hoard', 'trees');
      // 'intact': the kept tree answers which blobs the remote has; 'absent' and
      // 'damaged': the push reads the ref's tree from the remote instead.
      let round = 0;
      for (const kept of ['intact', 'absent', 'damaged'] as const) {
        round++;
        const state = await push({ dir: a, remote, ref: r });
        assert.equal(state.upToDate, true);
        const keptNow = join(trees, state.tree.slice('sha256:'.length));
        if (kept === 'absent') await rm(keptNow);
        if (kept === 'damaged') await writeFile(keptNow, 'not the tree');
        // A rename keeps its blob (the remote has it), a copy of kept content, and one new file.
        await rename(join(a, `k/f${round}.txt`), join(a, `moved-${round}.txt`));
        await writeFile(join(a, `copy-${round}.txt`), `kept 30 ${tag}`);
        await writeFile(join(a, `new-${round}.txt`), `new ${round} ${tag}`);
        const c = countingRemote(remote);
        // The digests asked about: only content the remote's tree lacks (the new file's), never the rest.
        const asked: string[] = [];
        const blobs = c.remote.blobs;
        const missing = blobs.missing.bind(blobs);
        const asking = new Proxy(c.remote, {
          get: (t, p, rcv) =>
            p === 'blobs'
              ? new Proxy(blobs, {
                  get: (bt, bp, brcv) =>
                    bp === 'missing'
                      ? (ds: Parameters<typeof missing>[0]) => {
                          asked.push(...ds);
                          return missing(ds);
                        }
                      : Reflect.get(bt, bp, brcv),
                })
              : Reflect.get(t, p, rcv),
        });
        const ps = await push({ dir: a, remote: asking, ref: r });
        assert.ok(asked.length <= 1, `${kept}: asked about ${asked.length} blobs`);
        assert.equal(ps.upToDate, false, kept);
        assert.equal(ps.filesUploaded, 1, kept);
        assert.equal(ps.bytesUploaded, Buffer.byteLength(`new ${round} ${tag}`), kept);
        assert.equal(c.reads.includes(state.tree), kept !== 'intact', kept);
        const b = await dir('b');
        await pull({ dir: b, remote, ref: r });
        assert.deepEqual(await describeDir(b), await describeDir(a), kept);
      }
    });

    it('a blob shared by many files is downloaded once; blobs already local are not downloaded', async () => {
      const a = await dir('a');
      const same = `shared content ${n} `.repeat(1000);
      const files: Record<string, string> = { 'unique.txt': `unique ${n}` };
      for (let i = 0; i < 40; i++) files[`copies/c${i}.txt`] = same;
      await writeFiles(a, files);
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const b = await dir('b');
      const c = countingRemote(remote);
      const pl = await pull({ dir: b, remote: c.remote, ref: r });
      assert.equal(pl.filesTotal, 41);
      assert.equal(pl.filesDownloaded, 2);
      assert.equal(pl.bytesDownloaded, Buffer.byteLength(same) + Buffer.byteLength(`unique ${n}`));
      assert.equal(c.reads.length, 4); // snapshot, tree, 2 blobs
      assert.equal(new Set(c.reads).size, 4);
      assert.deepEqual(await describeDir(b), await describeDir(a));

      // A rename on the remote: b already has the bytes, so nothing is downloaded.
      await rm(join(a, 'copies'), { recursive: true });
      await writeFiles(a, { 'moved/one.txt': same });
      await push({ dir: a, remote, ref: r });
      const c2 = countingRemote(remote);
      const pl2 = await pull({ dir: b, remote: c2.remote, ref: r });
      assert.equal(pl2.filesDownloaded, 0);
      assert.equal(pl2.bytesDownloaded, 0);
      assert.equal(pl2.filesDeleted, 40);
      assert.deepEqual(await describeDir(b), await describeDir(a));
    });

    it('pushes a same-size edit with the mtime restored; a touch uploads nothing; chmod +x is pushed', async () => {
      const a = await dir('a');
      await writeFiles(a, { 'data.txt': 'AAAA-original', 'other.txt': 'other' });
      const fixed = new Date('2020-01-02T03:04:05Z');
      await utimes(join(a, 'data.txt'), fixed, fixed);
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const before = await stat(join(a, 'data.txt'), { bigint: true });

      await writeFile(join(a, 'data.txt'), 'BBBB-original');
      await utimes(join(a, 'data.txt'), fixed, fixed);
      const after = await stat(join(a, 'data.txt'), { bigint: true });
      assert.equal(after.size, before.size);
      assert.equal(after.mtimeNs, before.mtimeNs);
      const edit = await cliPush(a, r);
      assert.equal(edit.code, 0, edit.stderr);
      assert.equal(edit.json!.filesUploaded, 1);
      assert.equal(edit.json!.bytesUploaded, 13);
      assert.equal(edit.json!.upToDate, false);

      const later = new Date(Date.now() + 60_000);
      await utimes(join(a, 'other.txt'), later, later);
      const touch = await cliPush(a, r);
      assert.equal(touch.json!.filesUploaded, 0);
      assert.equal(touch.json!.bytesUploaded, 0);
      assert.equal(touch.json!.upToDate, true);

      await chmod(join(a, 'other.txt'), 0o755);
      const x = await cliPush(a, r);
      assert.equal(x.json!.upToDate, false);
      assert.equal(x.json!.filesUploaded, 0);

      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });
      assert.equal(await readFile(join(b, 'data.txt'), 'utf8'), 'BBBB-original');
      assert.ok(((await stat(join(b, 'other.txt'))).mode & 0o100) !== 0);
      // ...and chmod -x travels back the other way.
      await chmod(join(b, 'other.txt'), 0o644);
      assert.equal((await push({ dir: b, remote, ref: r })).upToDate, false);
      await pull({ dir: a, remote, ref: r });
      assert.equal((await stat(join(a, 'other.txt'))).mode & 0o111, 0);
    });

    it('round-trips symlink changes and deletions (files and whole folders)', async () => {
      const a = await dir('a');
      await writeFiles(a, { 'keep.txt': 'k', 'gone.txt': 'g', 'tree/one': '1', 'tree/sub/two': '2' });
      await symlink('keep.txt', join(a, 'l1'));
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });

      await unlink(join(a, 'gone.txt'));
      await rm(join(a, 'tree'), { recursive: true });
      await unlink(join(a, 'l1'));
      await symlink('elsewhere', join(a, 'l1'));
      await symlink('keep.txt', join(a, 'l2'));
      await writeFile(join(a, 'new.txt'), 'n');
      await push({ dir: a, remote, ref: r });

      const res = await cliPull(b, r);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.json!.filesDeleted, 3);
      assert.deepEqual(await describeDir(b), await describeDir(a));
      await assert.rejects(stat(join(b, 'tree')), { code: 'ENOENT' });
      // Replacing a symlink by a file and a file by a folder.
      await unlink(join(a, 'l2'));
      await writeFile(join(a, 'l2'), 'now a file');
      await unlink(join(a, 'new.txt'));
      await writeFiles(a, { 'new.txt/inside': 'now a folder' });
      await push({ dir: a, remote, ref: r });
      await pull({ dir: b, remote, ref: r });
      assert.deepEqual(await describeDir(b), await describeDir(a));
    });

    it('honours nested .hoardignore files and never syncs .hoard/', async () => {
      const a = await dir('a');
      await writeFiles(a, {
        '.hoardignore': '*.log\nbuild/\n',
        'app.log': 'l',
        'keep.txt': 'k',
        'build/out.o': 'o',
        'sub/.hoardignore': 'secret.txt\n!important.log\n',
        'sub/secret.txt': 's',
        'sub/important.log': 'i',
        'sub/other.log': 'x',
        'other/secret.txt': 'not ignored here',
      });
      const r = ref();
      const res = await push({ dir: a, remote, ref: r });
      assert.equal(res.filesTotal, 5); // .hoardignore x2, keep.txt, sub/important.log, other/secret.txt
      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });
      assert.deepEqual(Object.keys(await describeDir(b)).sort(), [
        '.hoardignore',
        'keep.txt',
        'other/secret.txt',
        'sub/.hoardignore',
        'sub/important.log',
      ]);
    });

    it('merges pushes of different paths; pull keeps un-pushed edits', async () => {
      const a = await dir('a');
      await writeFiles(a, { 'base.txt': 'base', 'shared.txt': 'v1' });
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });

      await writeFile(join(a, 'from-a.txt'), 'a');
      await writeFile(join(b, 'from-b.txt'), 'b');
      await unlink(join(b, 'base.txt'));
      await push({ dir: a, remote, ref: r });
      const merged = await cliPush(b, r);
      assert.equal(merged.code, 0, merged.stderr);
      assert.equal(merged.json!.upToDate, false);

      const c = await dir('c');
      await pull({ dir: c, remote, ref: r });
      assert.deepEqual(Object.keys(await describeDir(c)).sort(), ['from-a.txt', 'from-b.txt', 'shared.txt']);

      // a has an un-pushed edit; pulling b's changes keeps it.
      await writeFile(join(a, 'local-only.txt'), 'mine');
      const pl = await pull({ dir: a, remote, ref: r });
      assert.equal(pl.filesDeleted, 1);
      assert.equal(await readFile(join(a, 'local-only.txt'), 'utf8'), 'mine');
      assert.equal(await readFile(join(a, 'from-b.txt'), 'utf8'), 'b');
      // ...and it is still pushed afterwards.
      const ps = await push({ dir: a, remote, ref: r });
      assert.equal(ps.filesUploaded, 1);
      // b pushed nothing new since: its push is a no-op, its pull brings local-only.txt.
      assert.equal((await push({ dir: b, remote, ref: r })).upToDate, true);
      await pull({ dir: b, remote, ref: r });
      assert.deepEqual(await describeDir(b), await describeDir(a));
    });

    it('same path changed on both sides: push and pull exit 3, list the path and write nothing', async () => {
      const a = await dir('a');
      await writeFiles(a, { 'shared.txt': 'v1', 'other.txt': 'o' });
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });
      await writeFile(join(a, 'shared.txt'), 'from a');
      await writeFile(join(b, 'shared.txt'), 'from b');
      await writeFile(join(b, 'b-only.txt'), 'b');
      const pa = await push({ dir: a, remote, ref: r });

      const pb = await cliPush(b, r);
      assert.equal(pb.code, 3, pb.stderr);
      assert.match(pb.stderr, /shared\.txt/);
      assert.deepEqual((pb.json!.error as { paths: string[] }).paths, ['shared.txt']);
      assert.equal((await remote.refs.get(r))?.target, pa.snapshot);

      const before = await describeDir(b);
      const lb = await cliPull(b, r);
      assert.equal(lb.code, 3, lb.stderr);
      assert.deepEqual(await describeDir(b), before);

      // --force on pull takes theirs, keeps the non-conflicting local file.
      const forced = await cliPull(b, r, '--force');
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(await readFile(join(b, 'shared.txt'), 'utf8'), 'from a');
      assert.equal(await readFile(join(b, 'b-only.txt'), 'utf8'), 'b');
      // --force on push makes ours win.
      await writeFile(join(a, 'shared.txt'), 'a again');
      await push({ dir: a, remote, ref: r });
      await writeFile(join(b, 'shared.txt'), 'b wins');
      assert.equal((await cliPush(b, r)).code, 3);
      const fp = await cliPush(b, r, '--force');
      assert.equal(fp.code, 0, fp.stderr);
      const c = await dir('c');
      await pull({ dir: c, remote, ref: r });
      assert.equal(await readFile(join(c, 'shared.txt'), 'utf8'), 'b wins');
    });

    it('two processes pushing different files, 20 rounds each, lose no update', async () => {
      const r = ref();
      const a = await dir('a');
      const b = await dir('b');
      const worker = fileURLToPath(new URL('./push-worker.ts', import.meta.url));
      const run = (d: string, prefix: string) =>
        new Promise<{ code: number; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [worker, fx.url, d, r, prefix, '20'], {
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let stderr = '';
          child.stderr.on('data', (c) => (stderr += c));
          child.on('exit', (code) => resolve({ code: code ?? 1, stderr }));
        });
      const [ra, rb] = await Promise.all([run(a, 'a'), run(b, 'b')]);
      assert.equal(ra.code, 0, ra.stderr);
      assert.equal(rb.code, 0, rb.stderr);
      const c = await dir('c');
      await pull({ dir: c, remote, ref: r });
      const names = Object.keys(await describeDir(c)).sort();
      const expected = [];
      for (const p of ['a', 'b']) for (let i = 0; i < 20; i++) expected.push(`${p}-${i}.txt`);
      assert.deepEqual(names, expected.sort());
    });

    it('the same path pushed concurrently by two processes: exactly one gets exit 3', async () => {
      const a = await dir('a');
      await writeFiles(a, { 'same.txt': 'start' });
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });
      await writeFile(join(a, 'same.txt'), 'edit by a');
      await writeFile(join(b, 'same.txt'), 'edit by b');
      const results = await Promise.all([cliPush(a, r), cliPush(b, r)]);
      const codes = results.map((x) => x.code).sort();
      assert.deepEqual(codes, [0, 3], results.map((x) => x.stderr).join('\n'));
      const winner = results[0].code === 0 ? 'edit by a' : 'edit by b';
      const c = await dir('c');
      await pull({ dir: c, remote, ref: r });
      assert.equal(await readFile(join(c, 'same.txt'), 'utf8'), winner);
    });

    describe('hostile remote trees', () => {
      // Crafts a tree blob by hand (bypassing validation), a snapshot and a ref.
      const plant = async (lines: object[]) => {
        const content = Buffer.from('evil\n');
        const cd = sha256(content);
        await remote.blobs.write(cd, Readable.from([content]));
        const treeBytes = Buffer.from(
          `${['{"hoard":"tree/1"}', ...lines.map((l) => JSON.stringify({ ...l }).replace('"DIGEST"', `"${cd}"`))].join('\n')}\n`,
        );
        const td = sha256(treeBytes);
        await remote.blobs.write(td, Readable.from([treeBytes]));
        const snap = snapshotDigest({ tree: td, parents: [], createdAt: new Date().toISOString(), meta: {} });
        await remote.blobs.write(snap.digest, Readable.from([snap.bytes]));
        const r = ref();
        await remote.refs.set(r, snap.digest, null);
        return r;
      };

      const cases: [string, (outside: string) => object[]][] = [
        ['../escape', () => [{ path: '../escape', kind: 'file', size: 5, digest: 'DIGEST' }]],
        [
          'an absolute path',
          (outside) => [{ path: `${outside}/abs`.slice(0), kind: 'file', size: 5, digest: 'DIGEST' }],
        ],
        [
          'a symlink followed by a file under it',
          (outside) => [
            { path: 'a', kind: 'symlink', target: outside },
            { path: 'a/x', kind: 'file', size: 5, digest: 'DIGEST' },
          ],
        ],
        ['a nested ../', () => [{ path: 'ok/../../escape2', kind: 'file', size: 5, digest: 'DIGEST' }]],
      ];
      for (const [label, lines] of cases) {
        it(`refuses ${label} and writes nothing`, async () => {
          const outside = await dir('outside');
          const parent = await dir('parent');
          const d = join(parent, 'dest');
          const r = await plant(lines(outside));
          const res = await cliPull(d, r);
          assert.equal(res.code, 1, res.stderr);
          assert.match(res.stderr, /invalid (tree|path)/);
          assert.deepEqual(await listAll(outside), []);
          assert.deepEqual(
            (await listAll(parent)).filter((p) => !p.startsWith('dest/.hoard')),
            ['dest'],
          );
          assert.deepEqual(await describeDir(d), {});
        });
      }

      it('refuses paths inside .hoard/ (local state) and writes nothing', async () => {
        const d = await dir('dest');
        await writeFiles(d, { 'keep.txt': 'k' });
        const r = await plant([
          { path: '.hoard/stat-cache.json', kind: 'file', size: 5, digest: 'DIGEST' },
          { path: 'z.txt', kind: 'file', size: 5, digest: 'DIGEST' },
        ]);
        const res = await cliPull(d, r);
        assert.equal(res.code, 1, res.stderr);
        assert.match(res.stderr, /reserved/);
        await assert.rejects(stat(join(d, 'z.txt')), { code: 'ENOENT' });
        const cache = await readFile(join(d, '.hoard', 'stat-cache.json'), 'utf8').catch(() => '');
        assert.notEqual(cache, 'evil\n');
      });

      it('refuses to write through a local symlink (even an ignored one)', async () => {
        const outside = await dir('outside');
        const a = await dir('a');
        await writeFiles(a, { 'a/x': 'payload', 'ok.txt': 'fine' });
        const r = ref();
        await push({ dir: a, remote, ref: r });
        const d = await dir('dest');
        await writeFiles(d, { '.hoardignore': 'a\n' });
        await symlink(outside, join(d, 'a'));
        const res = await cliPull(d, r);
        assert.equal(res.code, 1, res.stderr);
        assert.match(res.stderr, /symlink/);
        assert.deepEqual(await listAll(outside), []);
        await assert.rejects(stat(join(d, 'ok.txt')), { code: 'ENOENT' });
        // Without the ignore rule, the local symlink is part of the tree: a conflict.
        await unlink(join(d, '.hoardignore'));
        assert.equal((await cliPull(d, r)).code, 3);
        assert.deepEqual(await listAll(outside), []);
      });
    });

    it('a pull killed with SIGKILL leaves every file old or new, and the next pull completes', async () => {
      const a = await dir('a');
      const count = 300;
      const v = (i: number, ver: string) => `${ver}:${i}:`.padEnd(20_000, ver);
      const files = (ver: string) => {
        const f: Record<string, string> = {};
        for (let i = 0; i < count; i++) f[`f${String(i).padStart(3, '0')}`] = v(i, ver);
        return f;
      };
      await writeFiles(a, files('1'));
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });
      await writeFiles(a, files('2'));
      await push({ dir: a, remote, ref: r });

      const child = spawnHoard(['pull', fx.url, b, '--ref', r, '--json']);
      const exited = new Promise((resolve) => child.on('exit', resolve));
      const deadline = Date.now() + 20_000;
      let killedEarly = false;
      while (Date.now() < deadline) {
        const first = await readFile(join(b, 'f000'), 'utf8').catch(() => '');
        if (first.startsWith('2:')) {
          killedEarly = child.kill('SIGKILL');
          break;
        }
        if (child.exitCode !== null) break;
        await sleep(1);
      }
      await exited;
      let olds = 0;
      let news = 0;
      for (let i = 0; i < count; i++) {
        const text = await readFile(join(b, `f${String(i).padStart(3, '0')}`), 'utf8');
        if (text === v(i, '1')) olds++;
        else if (text === v(i, '2')) news++;
        else assert.fail(`file ${i} is torn`);
      }
      assert.equal(olds + news, count);
      assert.ok(killedEarly || news === count);
      if (process.env.HOARD_TEST_VERBOSE) console.log(`killed=${killedEarly} old=${olds} new=${news}`);

      const again = await cliPull(b, r);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await describeDir(b), await describeDir(a));
      assert.deepEqual(
        (await listAll(b)).filter((p) => p.includes('.tmp') && !p.startsWith('.hoard/')),
        [],
      );
      const ps = await push({ dir: b, remote, ref: r });
      assert.equal(ps.upToDate, true);
      assert.equal(ps.filesUploaded, 0);
    });

    it('two syncs of one directory at once take turns; a dead process’s lock is taken over', async () => {
      const a = await dir('a');
      await writeFiles(a, { 'one.txt': '1' });
      const r = ref();
      const [x, y] = await Promise.all([cliPush(a, r), cliPush(a, r)]);
      assert.equal(x.code, 0, x.stderr);
      assert.equal(y.code, 0, y.stderr);
      assert.deepEqual([x.json!.upToDate, y.json!.upToDate].sort(), [false, true]);
      // A lock left by a process that no longer exists does not block.
      await writeFile(join(a, '.hoard', 'lock'), `${hostname()} 999999999`);
      await writeFile(join(a, 'two.txt'), `unique to ${r}`);
      const z = await cliPush(a, r);
      assert.equal(z.code, 0, z.stderr);
      assert.equal(z.json!.filesUploaded, 1);
    });

    it('a push after the ref was deleted recreates it with the whole directory', async () => {
      const a = await dir('a');
      await writeFiles(a, { 'one.txt': `one ${n}`, 'two.txt': `two ${n}` });
      const r = ref();
      await push({ dir: a, remote, ref: r });
      const cur = await remote.refs.get(r);
      await remote.refs.delete(r, cur!.version);
      await writeFile(join(a, 'three.txt'), `three ${n}`);
      const res = await push({ dir: a, remote, ref: r });
      assert.equal(res.filesTotal, 3);
      const b = await dir('b');
      assert.equal((await cliPull(b, r)).code, 0);
      assert.deepEqual(await describeDir(b), await describeDir(a));
    });

    it('a push killed with SIGKILL changes no ref, and the next push completes', async () => {
      const a = await dir('a');
      const files: Record<string, string> = {};
      for (let i = 0; i < 300; i++)
        files[`k/f${String(i).padStart(3, '0')}`] = `${n}:${i}:`.padEnd(20_000, 'k');
      await writeFiles(a, files);
      const r = ref();
      const first = sha256(files['k/f000']);
      const child = spawnHoard(['push', a, fx.url, '--ref', r, '--json']);
      const exited = new Promise((resolve) => child.on('exit', resolve));
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && child.exitCode === null) {
        if (await remote.blobs.has(first)) {
          child.kill('SIGKILL');
          break;
        }
        await sleep(1);
      }
      await exited;
      const after = await remote.refs.get(r);
      if (process.env.HOARD_TEST_VERBOSE)
        console.log(`push killed before the ref moved: ${after === undefined}`);
      if (after === undefined) {
        const again = await cliPush(a, r);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(again.json!.filesTotal, 300);
      }
      const b = await dir('b');
      await pull({ dir: b, remote, ref: r });
      assert.deepEqual(await describeDir(b), await describeDir(a));
    });

    it('exit 2 for a missing ref; exit 1 for a bad ref name', async () => {
      const d = await dir('d');
      const res = await cliPull(d, 'test/sync/does-not-exist');
      assert.equal(res.code, 2);
      assert.equal((res.json!.error as { code: string }).code, 'HOARD_EREF_NOT_FOUND');
      const bad = await cliPush(d, '../bad');
      assert.equal(bad.code, 1);
    });
  });
}
