import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { isHoardError } from '../../src/core/errors.ts';
import { comparePathBytes } from '../../src/core/tree-path.ts';
import { AnchorPacks, anchorsOf } from '../../src/git/snapshot-anchor.ts';
import { snapshotArchive } from '../../src/git/snapshot-archive.ts';
import { git, makeMirror, makeUpstream, sha256Of } from '../archive/helpers.ts';
import { waitUntil } from '../support/wait.ts';

const execFileP = promisify(execFile);

/** Commits in a commit-graph file: the last entry of its OID fanout chunk (git's format, v1). */
function graphCommitCount(file: Buffer): number {
  assert.equal(file.subarray(0, 4).toString('latin1'), 'CGPH');
  const chunks = file[6];
  for (let i = 0; i < chunks; i++) {
    const at = 8 + i * 12;
    if (file.subarray(at, at + 4).toString('latin1') === 'OIDF')
      return file.readUInt32BE(Number(file.readBigUInt64BE(at + 4)) + 255 * 4);
  }
  throw new Error('no OIDF chunk');
}

describe('deterministic snapshot archives', () => {
  let root: string;
  let upstream: string;
  let head: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-dtar-'));
    upstream = await makeUpstream(root);
    head = await git(upstream, 'rev-parse', 'HEAD');
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('two mirrors with different pack layouts and data dirs give identical bytes', async () => {
    const a = join(root, 'server-a', 'git', 'm.git');
    const b = join(root, 'server-b', 'git', 'm.git');
    await mkdir(join(root, 'server-a', 'git'), { recursive: true });
    await mkdir(join(root, 'server-b', 'git'), { recursive: true });
    await makeMirror(upstream, a, 'packed');
    await new Promise((r) => setTimeout(r, 1100)); // different wall-clock seconds
    await makeMirror(upstream, b, 'loose');
    // A mirror with its own commit-graph (a split chain with changed-path filters, as
    // maintenance may leave): the snapshot's graph is built from its packs alone.
    await git(b, 'commit-graph', 'write', '--reachable', '--split', '--changed-paths', '--no-progress');
    const tmpA = await mkdtemp(join(root, 'tmp-a-'));
    const tmpB = await mkdtemp(join(root, 'tmp-b-'));
    const url = 'http://hoard.example/git/gh/acme/app';
    const ga = await snapshotArchive({ repoDir: a, commit: 'main', originUrl: url, tmpDir: tmpA });
    const ra = await sha256Of(ga.stream, join(root, 'a.tar.zst'));
    const gb = await snapshotArchive({ repoDir: b, commit: head, originUrl: url, tmpDir: tmpB });
    const rb = await sha256Of(gb.stream);
    assert.equal(ga.commit, head);
    assert.equal(gb.commit, head);
    assert.equal(ra.hex, rb.hex);
    assert.equal(ra.size, rb.size);
    // And again from the same mirror.
    const again = await snapshotArchive({ repoDir: a, commit: head, originUrl: url, tmpDir: tmpA });
    assert.equal((await sha256Of(again.stream)).hex, ra.hex);
    // The work directories are gone.
    assert.deepEqual(await readdir(tmpA), []);
    assert.deepEqual(await readdir(tmpB), []);
  });

  it('has sorted entries with fixed metadata', async () => {
    const file = join(root, 'a.tar.zst');
    const commitTime = Number(await git(upstream, 'show', '-s', '--format=%ct', head));
    const names: string[] = [];
    const extract = tar.extract();
    extract.on('entry', (h, stream, next) => {
      names.push(h.name.replace(/\/$/, ''));
      assert.equal(h.uid, 0);
      assert.equal(h.gid, 0);
      assert.equal(h.uname, '');
      assert.equal(h.gname, '');
      assert.equal(h.mtime?.getTime(), commitTime * 1000, h.name);
      if (h.type === 'directory') assert.equal(h.mode, 0o755);
      else if (h.type === 'symlink') assert.equal(h.mode, 0o777);
      else if (h.name === 'bin/run.sh') assert.equal(h.mode, 0o755);
      else if (h.name.startsWith('.git/objects/pack/') || h.name === '.git/objects/info/commit-graph')
        assert.equal(h.mode, 0o444);
      else assert.equal(h.mode, 0o644, h.name);
      stream.resume();
      stream.on('end', next);
    });
    await pipeline(createReadStream(file), zlib.createZstdDecompress(), extract);
    const sorted = [...names].sort(comparePathBytes);
    assert.deepEqual(names, sorted);
    assert.ok(names.includes(`long-${'n'.repeat(120)}.txt`));
    assert.ok(names.includes('unicodé/naïve 文件.txt'));
    assert.ok(names.includes('vendor/sub'));
    assert.ok(!names.some((n) => n === '.git/index'));
    assert.ok(names.includes('.git/objects/info/commit-graph'));
    assert.ok(!names.some((n) => n.startsWith('.git/objects/info/commit-graphs')));
  });

  it('extracts (with system tar) into a clean work tree after `git reset -q`', async () => {
    const dir = join(root, 'checkout');
    await mkdir(dir);
    await execFileP('sh', ['-c', `zstd -dc '${join(root, 'a.tar.zst')}' | tar -xf - -C '${dir}'`]).catch(
      async () => {
        // No zstd binary: decompress with Node.
        await pipeline(createReadStream(join(root, 'a.tar.zst')), zlib.createZstdDecompress(), tar.extract());
        throw new Error('zstd binary missing');
      },
    );
    await git(dir, 'reset', '-q');
    assert.equal(await git(dir, 'status', '--porcelain'), '');
    assert.equal(await git(dir, 'rev-parse', 'HEAD'), head);
    assert.equal(
      await git(dir, 'rev-list', '--count', 'HEAD'),
      await git(upstream, 'rev-list', '--count', 'HEAD'),
    );
    await git(dir, 'fsck', '--full', '--no-dangling');
    // The commit-graph: valid for these objects, and every commit of the history in it.
    await git(dir, 'commit-graph', 'verify');
    assert.equal(
      graphCommitCount(await readFile(join(dir, '.git/objects/info/commit-graph'))),
      Number(await git(dir, 'rev-list', '--count', 'HEAD')),
    );
    assert.equal(await git(dir, 'remote', 'get-url', 'origin'), 'http://hoard.example/git/gh/acme/app');
    assert.equal(await readlink(join(dir, 'src-link')), 'src');
    assert.equal((await stat(join(dir, 'bin/run.sh'))).mode & 0o777, 0o755);
    assert.ok((await lstat(join(dir, 'vendor/sub'))).isDirectory());
    assert.deepEqual(await readdir(join(dir, 'vendor/sub')), []);
    assert.equal((await stat(join(dir, 'data/big.bin'))).size, 700 * 1024);
  });

  it('with anchor packs: two packs, identical bytes from mirrors with different layouts, a complete repository', async () => {
    const a = join(root, 'server-a', 'git', 'm.git');
    const b = join(root, 'server-b', 'git', 'm.git');
    // Step 2: the test history (8 first-parent commits) gets an anchor 2 commits below.
    const packsA = new AnchorPacks(join(root, 'anchors-a'), 2);
    const packsB = new AnchorPacks(join(root, 'anchors-b'), 2);
    const url = 'http://hoard.example/git/gh/acme/app';
    const tmp = await mkdtemp(join(root, 'tmp-anchor-'));
    const archive = (repoDir: string, packs: AnchorPacks) =>
      snapshotArchive({ repoDir, commit: head, originUrl: url, tmpDir: tmp, anchors: { packs, key: 'k' } });
    const file = join(root, 'anchored.tar.zst');
    const ra = await sha256Of((await archive(a, packsA)).stream, file);
    assert.equal((await sha256Of((await archive(b, packsB)).stream)).hex, ra.hex);
    // Again from the anchor this server kept.
    assert.equal((await sha256Of((await archive(b, packsB)).stream)).hex, ra.hex);
    assert.deepEqual(await readdir(tmp), []);
    const dir = join(root, 'checkout-anchored');
    await mkdir(dir);
    await execFileP('sh', ['-c', `zstd -dc '${file}' | tar -xf - -C '${dir}'`]);
    const packs = (await readdir(join(dir, '.git/objects/pack'))).filter((n) => n.endsWith('.pack'));
    assert.equal(packs.length, 2);
    await git(dir, 'reset', '-q');
    assert.equal(await git(dir, 'status', '--porcelain'), '');
    assert.equal(await git(dir, 'rev-parse', 'HEAD'), head);
    await git(dir, 'fsck', '--full', '--no-dangling');
    // One graph over both packs' commits.
    await git(dir, 'commit-graph', 'verify');
    assert.equal(
      graphCommitCount(await readFile(join(dir, '.git/objects/info/commit-graph'))),
      Number(await git(dir, 'rev-list', '--count', 'HEAD')),
    );
  });

  it('with sub-anchor packs: three packs, the same bytes prebuilt or built on the request, a complete repository', async () => {
    const a = join(root, 'server-a', 'git', 'm.git');
    const b = join(root, 'server-b', 'git', 'm.git');
    // Step 4, sub-step 2: the anchor at the largest multiple of 4 below the head's
    // first-parent depth, the sub-anchor at the largest multiple of 2 (above it).
    const packsA = new AnchorPacks(join(root, 'sub-anchors-a'), 4, 2);
    const packsB = new AnchorPacks(join(root, 'sub-anchors-b'), 4, 2);
    // The archived commit: at a first-parent depth t with t % 4 == 3 (t > 4), so its
    // anchor is at t - 3 (a multiple of 4) and its sub-anchor at t - 1 (of 2).
    const depth = Number(await git(a, 'rev-list', '--count', '--first-parent', head));
    const t = depth - ((depth - 3 + 4) % 4);
    assert.ok(t > 4, `a history of ${depth} first-parent commits is too short`);
    const commit = await git(a, 'rev-parse', `${head}~${depth - t}`);
    const { anchor, sub } = await anchorsOf(a, commit, 4, 2);
    assert.equal(anchor, await git(a, 'rev-parse', `${commit}~3`));
    assert.equal(sub, await git(a, 'rev-parse', `${commit}~1`));
    assert.deepEqual(await anchorsOf(a, commit, 4, 0), { anchor, sub: null });
    // Server A prebuilt both (as after a fetch); server B builds them for the request.
    await packsA.ensure('k', a, anchor as string);
    await packsA.ensure('k', a, sub as string, undefined, anchor as string);
    assert.equal(packsA.built, 2);
    const url = 'http://hoard.example/git/gh/acme/app';
    const tmp = await mkdtemp(join(root, 'tmp-sub-anchor-'));
    const archive = (repoDir: string, packs: AnchorPacks) =>
      snapshotArchive({ repoDir, commit, originUrl: url, tmpDir: tmp, anchors: { packs, key: 'k' } });
    const file = join(root, 'sub-anchored.tar.zst');
    const ra = await sha256Of((await archive(a, packsA)).stream, file);
    assert.equal(packsA.built, 2, 'the prebuilt packs were used');
    assert.equal((await sha256Of((await archive(b, packsB)).stream)).hex, ra.hex);
    assert.equal(packsB.built, 2);
    assert.deepEqual(await readdir(tmp), []);
    const dir = join(root, 'checkout-sub-anchored');
    await mkdir(dir);
    await execFileP('sh', ['-c', `zstd -dc '${file}' | tar -xf - -C '${dir}'`]);
    const packs = (await readdir(join(dir, '.git/objects/pack'))).filter((n) => n.endsWith('.pack'));
    assert.equal(packs.length, 3);
    await git(dir, 'reset', '-q');
    assert.equal(await git(dir, 'status', '--porcelain'), '');
    assert.equal(await git(dir, 'rev-parse', 'HEAD'), commit);
    await git(dir, 'fsck', '--full', '--no-dangling');
  });

  it('fails clearly for an unknown commit and leaves no temp files', async () => {
    const mirror = join(root, 'server-a', 'git', 'm.git');
    const tmp = await mkdtemp(join(root, 'tmp-c-'));
    await assert.rejects(
      snapshotArchive({ repoDir: mirror, commit: 'f'.repeat(40), originUrl: 'http://x/', tmpDir: tmp }),
      (e) => isHoardError(e, 'HOARD_EGIT') && /not found/.test(e.message),
    );
    assert.deepEqual(await readdir(tmp), []);
  });

  it('removes its temp dir when the consumer goes away early', async () => {
    const mirror = join(root, 'server-a', 'git', 'm.git');
    const tmp = await mkdtemp(join(root, 'tmp-d-'));
    const g = await snapshotArchive({ repoDir: mirror, commit: head, originUrl: 'http://x/', tmpDir: tmp });
    assert.equal((await readdir(tmp)).length, 1);
    g.stream.destroy();
    await waitUntil(async () => (await readdir(tmp)).length === 0, 'the temp dir to be removed');
  });
});
