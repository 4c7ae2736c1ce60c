// A blob lost from a remote (deleted, quarantined): pull fails naming the
// paths that need it and the fix; `hoard push --verify` asks the remote about
// every blob of the tree, even when the ref is up to date, and re-uploads
// what is missing; the push after a failed pull verifies without being asked.
// Real CLI processes against a file:// remote.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { describeDir, hoard, tempDir, writeFiles } from './helpers.ts';

describe('lost blobs: pull names the paths, push --verify puts them back', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  let store: string;
  let url: string;
  let n = 0;
  before(async () => {
    work = await tempDir('hoard-verify-');
    store = join(work.dir, 'remote');
    url = pathToFileURL(store).href;
  });
  after(() => work.cleanup());

  const push = (d: string, r: string, ...extra: string[]) =>
    hoard(['push', d, url, '--ref', r, '--json', ...extra]);
  const pull = (d: string, r: string, ...extra: string[]) =>
    hoard(['pull', url, d, '--ref', r, '--json', ...extra]);
  const blobFile = (d: Digest) => {
    const hex = hexOf(d);
    return join(store, 'blobs', 'sha256', hex.slice(0, 2), hex);
  };
  const LOST = 'lost content, needed twice';

  async function pushedAndLost(): Promise<{ a: string; r: string }> {
    const r = `verify/r${++n}`;
    const a = join(work.dir, `a${n}`);
    await writeFiles(a, { 'keep.txt': 'k', 'sub/lost.txt': LOST, 'copy/of-lost.txt': LOST, 'x.bin': 'x' });
    const p = await push(a, r);
    assert.equal(p.code, 0, p.stderr);
    assert.ok(existsSync(blobFile(sha256(LOST))));
    await unlink(blobFile(sha256(LOST)));
    return { a, r };
  }

  it('pull fails naming every path that needs the blob and the fix; push --verify re-uploads it', async () => {
    const { a, r } = await pushedAndLost();
    const b = join(work.dir, `b${n}`);
    const failed = await pull(b, r);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /\[HOARD_EBLOB_NOT_FOUND\]/);
    assert.match(failed.stderr, new RegExp(sha256(LOST)));
    assert.match(failed.stderr, /sub\/lost\.txt/);
    assert.match(failed.stderr, /copy\/of-lost\.txt/);
    assert.match(failed.stderr, /re-push from a machine that has them: hoard push .* --verify/);
    const err = failed.json!.error as { missing: { digest: string; paths: string[] }[] };
    assert.deepEqual(err.missing, [{ digest: sha256(LOST), paths: ['copy/of-lost.txt', 'sub/lost.txt'] }]);

    // A plain push from the original folder sees an up-to-date ref and uploads nothing…
    const plain = await push(a, r);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.json!.upToDate, true);
    assert.equal(existsSync(blobFile(sha256(LOST))), false);
    // …--verify asks about every blob and puts the lost one back.
    const verified = await push(a, r, '--verify');
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.json!.upToDate, true);
    assert.deepEqual(verified.json!.verified, { blobsChecked: 4, blobsReuploaded: 1, stillMissing: [] });
    assert.ok(existsSync(blobFile(sha256(LOST))));

    const again = await pull(b, r);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await describeDir(b), await describeDir(a));
    // Nothing missing any more: a second verify re-uploads nothing.
    const twice = await push(a, r, '--verify');
    assert.deepEqual(twice.json!.verified, { blobsChecked: 4, blobsReuploaded: 0, stillMissing: [] });
  });

  it('the push after a failed pull verifies by itself and clears the flag', async () => {
    const { a, r } = await pushedAndLost();
    const b = join(work.dir, `b${n}`);
    assert.equal((await pull(b, r)).code, 1);
    // The user restores the lost file here (say, regenerated it) and pushes.
    await writeFiles(b, { 'sub/lost.txt': LOST, 'copy/of-lost.txt': LOST });
    const p = await push(b, r);
    assert.equal(p.code, 0, p.stderr);
    assert.equal((p.json!.verified as { blobsReuploaded: number }).blobsReuploaded, 1);
    assert.ok(existsSync(blobFile(sha256(LOST))));
    // The flag is gone: the next push is the ordinary one again.
    const next = await push(b, r);
    assert.equal(next.json!.verified, undefined);
    const c = join(work.dir, `c${n}`);
    assert.equal((await pull(c, r)).code, 0);
    assert.deepEqual(await describeDir(c), await describeDir(a));
  });

  it('a lost snapshot record: pull says so; push --verify gives the ref a new record of the same tree', async () => {
    const r = `verify/r${++n}`;
    const a = join(work.dir, `a${n}`);
    await writeFiles(a, { 'one.txt': '1', 'sub/two.txt': '2' });
    const first = await push(a, r);
    assert.equal(first.code, 0, first.stderr);
    await unlink(blobFile(first.json!.snapshot as Digest));
    const b = join(work.dir, `b${n}`);
    const failed = await pull(b, r);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(
      failed.stderr,
      /its snapshot record sha256:[0-9a-f]{64} is missing \[HOARD_EBLOB_NOT_FOUND\]/,
    );
    assert.match(failed.stderr, /--verify/);
    const fixed = await push(a, r, '--verify');
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.equal(fixed.json!.upToDate, false);
    assert.equal(fixed.json!.tree, first.json!.tree);
    assert.notEqual(fixed.json!.snapshot, first.json!.snapshot);
    const again = await pull(b, r);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await describeDir(b), await describeDir(a));
    assert.equal((await push(a, r, '--verify')).json!.upToDate, true);
  });

  it('push --verify that cannot supply a lost blob fails naming its paths', async () => {
    const { a, r } = await pushedAndLost();
    // A clone that never had the lost file pushes an unrelated change with --verify.
    const b = join(work.dir, `b${n}`);
    assert.equal((await pull(b, r)).code, 1);
    await writeFile(join(a, 'keep.txt'), 'k2');
    const other = join(work.dir, `o${n}`);
    await writeFiles(other, { 'other.txt': 'o' });
    const refFile = join(store, 'refs', ...r.split('/'));
    const refBefore = await readFile(refFile, 'utf8');
    const res = await push(other, r, '--verify');
    assert.equal(res.code, 1, res.stderr);
    assert.equal(await readFile(refFile, 'utf8'), refBefore, 'nothing was committed');
    assert.match(res.stderr, /\[HOARD_EBLOB_NOT_FOUND\]/);
    assert.match(res.stderr, /sub\/lost\.txt/);
    assert.match(res.stderr, /a machine that has/);
  });
});
