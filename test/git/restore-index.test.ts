// The index `hoard git restore` derives from its own extraction
// (src/git/restore-index.ts) instead of running `git reset`: real snapshots of
// a real repository (executables, symlinks, non-ASCII, deep and long paths, an
// empty file; no submodule), restored by gitRestore against an in-process
// hoard server, and crafted archives served by a hostile server whose work
// tree differs from the commit in each way a derived index could hide. The
// derived index must equal what git would write (object ids, modes, the
// kernel's stat data, no racily clean entries), and an archive that does not
// match its commit must still be refused with nothing left behind.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { isHoardError } from '../../src/core/errors.ts';
import { gitRestore } from '../../src/git/restore.ts';
import { GitIndexRecorder } from '../../src/git/restore-index.ts';
import { commitAll, type Entry, git, makeTar, makeUpstream, zst } from '../archive/helpers.ts';
import { type SnapshotTestServer, startSnapshotServer } from '../archive/snapshot-server.ts';
import {
  type HostileSnapshotServer,
  readTar,
  startHostileSnapshotServer,
} from './helpers/hostile-snapshot-server.ts';

const REAL_GIT = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();

describe('hoard git restore: the index derived from the extraction', () => {
  let root: string;
  let srv: SnapshotTestServer;
  let url: string;
  let commit: string;
  let real: Entry[];
  let evil: HostileSnapshotServer;
  let evilBase: string;
  /** What the hostile server serves as the snapshot. */
  let archive: Buffer = Buffer.alloc(0);
  let n = 0;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-restore-index-'));
    const work = await makeUpstream(root);
    // No submodule: its gitlink is the one thing the archive cannot carry.
    await git(work, 'rm', '-q', '--cached', 'vendor/sub');
    // A fixed past date, as every commit of makeUpstream: the files are extracted with the
    // commit's time, and one made in the same second as the restore would be racily clean.
    await commitAll(work, 'no submodule', false);
    const bare = join(root, 'upstreams', 'app.git');
    await git(root, 'clone', '-q', '--bare', work, bare);
    srv = await startSnapshotServer({ upstreams: { up: `file://${join(root, 'upstreams')}` } });
    url = `${srv.url}/git/up/app.git`;
    const res = await fetch(`${url}/snapshot.tar.zst`);
    assert.equal(res.status, 200);
    commit = res.headers.get('x-hoard-commit')!;
    real = await readTar(zlib.zstdDecompressSync(Buffer.from(await res.arrayBuffer())));

    evil = await startHostileSnapshotServer({
      realUrl: srv.url,
      archive: () => archive,
      commit: () => commit,
      ref: () => 'refs/heads/main',
    });
    evilBase = `${evil.url}/git/up/app.git`;
  });
  after(async () => {
    await evil?.close();
    await srv?.close();
    await rm(root, { recursive: true, force: true });
  });

  /** gitRestore with a git on PATH that logs every command line; returns them too. */
  async function restoreLogged(base: string, dest: string) {
    const shim = join(root, `shim-${++n}`);
    await mkdir(shim);
    const log = join(shim, 'argv.log');
    await writeFile(
      join(shim, 'git'),
      `#!/bin/sh\nprintf '%s\\n' "git $*" >> '${log}'\nexec '${REAL_GIT}' "$@"\n`,
    );
    await chmod(join(shim, 'git'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${shim}:${path}`;
    try {
      const result = await gitRestore({ url: base, dir: dest, onWarning: () => {} });
      return { result, argv: await readFile(log, 'utf8') };
    } finally {
      process.env.PATH = path;
    }
  }

  it('restores without re-hashing: the index is git’s own, stat data from the files, nothing racy', async () => {
    const dest = join(root, 'ws');
    const { result, argv } = await restoreLogged(url, dest);
    assert.equal(result.commit, commit);
    assert.doesNotMatch(argv, /^git reset/m, 'the index was built by git reset');
    // Verified by comparing the index with the commit; no walk of the work tree was needed.
    assert.match(argv, /^git diff-index --cached/m);
    assert.doesNotMatch(argv, /^git status/m);
    // The entries are the commit's tree: paths, modes and object ids.
    assert.equal(
      await git(dest, 'ls-files', '-s'),
      await git(dest, 'ls-tree', '-r', '--format=%(objectmode) %(objectname) 0\t%(path)', 'HEAD'),
    );
    // The stat data is each file's own, and every mtime is older than the index
    // (else git would re-hash the file as racily clean on every status).
    const index = await stat(join(dest, '.git', 'index'));
    const debug = await git(dest, 'ls-files', '--debug', '-z');
    // `path\0` then indented `key: value` fields up to `flags: N\n`.
    const records = [...debug.matchAll(/([^\n\0]+)\0([^\0]*?flags: \d+)/g)];
    assert.ok(records.length >= 10);
    for (const [, path, fields] of records) {
      const f = Object.fromEntries([...fields.matchAll(/(\w+): ([\d:]+)/g)].map((m) => [m[1], m[2]]));
      const st = await lstat(join(dest, path), { bigint: true });
      assert.equal(f.mtime, `${st.mtimeNs / 1_000_000_000n}:${st.mtimeNs % 1_000_000_000n}`, path);
      assert.equal(f.ctime, `${st.ctimeNs / 1_000_000_000n}:${st.ctimeNs % 1_000_000_000n}`, path);
      assert.equal(f.ino, String(st.ino & 0xffffffffn), path);
      assert.equal(f.size, String(st.size), path);
      assert.ok(st.mtimeMs < Math.floor(index.mtimeMs / 1000) * 1000, `${path} is racily clean`);
    }
    assert.equal(await git(dest, 'status', '--porcelain', '--untracked-files=all', '--ignored'), '');
    // Editing a file afterwards is seen (same size, so only stat data can tell).
    const readme = await readFile(join(dest, 'README.md'), 'utf8');
    await writeFile(join(dest, 'README.md'), readme.replace('project', 'PROJECT'));
    assert.equal(await git(dest, 'status', '--porcelain'), 'M README.md');
  });

  it('falls back to git reset for a submodule (an empty directory) and a hard link', async () => {
    archive = zst(await makeTar([...real, { name: 'vendor/empty', type: 'directory', mode: 0o755 }]));
    const a = await restoreLogged(evilBase, join(root, 'with-empty-dir'));
    assert.match(a.argv, /^git reset -q/m);
    assert.equal(await git(join(root, 'with-empty-dir'), 'status', '--porcelain'), '');

    // A hard link (the index would need its target's entry twice) and a SHA-256 repository: no index.
    const rec = new GitIndexRecorder();
    assert.ok(rec.encode('a'.repeat(40)));
    assert.equal(rec.encode('a'.repeat(64)), null);
    rec.hardlink();
    assert.equal(rec.encode('a'.repeat(40)), null);
  });

  const tampered: [string, (entries: Entry[]) => Entry[], RegExp][] = [
    [
      'a file whose bytes differ (same size)',
      (es) => es.map((e) => (e.name === 'README.md' ? { ...e, body: String(e.body).replace('p', 'P') } : e)),
      /not commit .*README\.md/,
    ],
    [
      'an extra file',
      (es) => [...es, { name: 'src/extra.txt', body: 'not in the commit\n' }],
      /not commit .*extra\.txt/,
    ],
    ['a missing file', (es) => es.filter((e) => e.name !== 'src/file-0.txt'), /not commit .*file-0\.txt/],
    [
      'an executable bit the commit lacks',
      (es) => es.map((e) => (e.name === 'README.md' ? { ...e, mode: 0o755 } : e)),
      /not commit .*README\.md/,
    ],
    [
      'a symlink pointing elsewhere',
      (es) => es.map((e) => (e.name === 'src-link' ? { ...e, linkname: 'bin' } : e)),
      /not commit .*src-link/,
    ],
    [
      'a pack after the work tree (not sorted)',
      (es) => {
        const pack = es.find((e) => e.name.endsWith('.idx'))!;
        return [...es.filter((e) => e !== pack), pack];
      },
      /\.git entries must come before the work tree/,
    ],
  ];
  for (const [what, change, message] of tampered) {
    it(`refuses ${what}, leaving nothing behind`, async () => {
      archive = zst(await makeTar(change(real)));
      const parent = join(root, `case-${++n}`);
      await mkdir(parent);
      await assert.rejects(
        gitRestore({ url: evilBase, dir: join(parent, 'ws'), onWarning: () => {} }),
        (err: unknown) => {
          assert.ok(isHoardError(err) && err.code === 'HOARD_EARCHIVE_UNSAFE', String(err));
          assert.match(err.message, message);
          return true;
        },
      );
      assert.deepEqual(await readdir(parent), []);
    });
  }
});
