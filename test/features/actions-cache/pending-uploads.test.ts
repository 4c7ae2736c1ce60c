// Uploads in progress (src/features/actions-cache/pending-uploads.ts) on a
// manual clock: an idle upload expires and its spool is deleted, one with a
// request in flight does not, the spool root is emptied at start, ranges
// must cover the archive exactly; and the key escape behind restore-key
// lookups keeps "starts with" (cache-keys.ts).

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { validateRefName, validateRefPrefix } from '../../../src/core/ref-name.ts';
import { entryRef, escapeSegment, prefixRef } from '../../../src/features/actions-cache/cache-keys.ts';
import { PendingUploads } from '../../../src/features/actions-cache/pending-uploads.ts';
import { ManualClock } from '../../support/manual-clock.ts';

const target = (key: string, owner = 'ci') => ({
  owner,
  namespace: 'acme/app',
  key,
  version: 'v',
  ref: `cache/actions/acme/app/vv/k${key}`,
});

describe('PendingUploads', () => {
  let dir: string;
  let spool: string;
  let clock: ManualClock;
  let uploads: PendingUploads;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-pending-'));
    spool = join(dir, 'spool');
    await mkdir(join(spool, 'left-by-a-crash'), { recursive: true });
    await writeFile(join(spool, 'left-by-a-crash', 'block'), 'x');
    clock = new ManualClock();
    uploads = new PendingUploads({
      spoolDir: spool,
      maxBytes: 1000,
      maxSpoolBytes: 1500,
      maxPerOwner: 10,
      idleMs: 60_000,
      clock,
    });
    await uploads.start();
  });
  after(async () => {
    await uploads.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("removes a previous process's spool at start (the first upload makes it again)", async () => {
    await assert.rejects(readdir(spool), { code: 'ENOENT' });
  });

  it('drops an idle upload and deletes its spool; an upload with a request in flight stays', async () => {
    const idle = await uploads.reserve(target('idle'));
    await uploads.using(idle, () => uploads.putBlob(idle, Readable.from([Buffer.from('abc')]), 3));
    const busy = await uploads.reserve(target('busy'));
    let release!: () => void;
    const held = uploads.using(busy, () => new Promise<void>((r) => (release = r)));
    clock.advance(59_999);
    assert.equal(await uploads.sweep(), 0);
    clock.advance(1);
    assert.equal(await uploads.sweep(), 1);
    await assert.rejects(stat(idle.dir), { code: 'ENOENT' });
    assert.throws(() => uploads.byId(idle.id), { code: 'HOARD_EBLOB_NOT_FOUND' });
    assert.equal(uploads.pendingFor(idle.ref), undefined);
    // The busy one's idle time counts from the end of its request.
    release();
    await held;
    clock.advance(59_999);
    assert.equal(await uploads.sweep(), 0);
    assert.equal(uploads.byId(busy.id), busy);
    clock.advance(1);
    assert.equal(await uploads.sweep(), 1);
    // The key may be reserved again once its upload expired.
    await uploads.drop(await uploads.reserve(target('idle')));
  });

  it('publishes v1 ranges only when they cover [0, size) exactly', async () => {
    const u = await uploads.reserve(target('ranges'));
    await uploads.writeRange(u, 3, 5, Readable.from([Buffer.from('def')]));
    await uploads.writeRange(u, 0, 1, Readable.from([Buffer.from('ab')]));
    assert.throws(() => uploads.finish(u, 6), /gaps/);
    await uploads.writeRange(u, 2, 2, Readable.from([Buffer.from('c')]));
    assert.throws(() => uploads.finish(u, 5), /cover 6 bytes, not 5/);
    const archive = uploads.finish(u, 6);
    const chunks: Buffer[] = [];
    for await (const c of archive.open()) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'abcdef');
    await uploads.drop(u);
  });

  it('bounds the spooled bytes of every upload together (507), and a drop gives them back', async () => {
    const a = await uploads.reserve(target('spool-a'));
    const b = await uploads.reserve(target('spool-b'));
    await uploads.putBlob(a, Readable.from([Buffer.alloc(500)]), 500);
    // A replaced blob is counted once (both are on disk only while the new one arrives).
    await uploads.putBlob(a, Readable.from([Buffer.alloc(600)]), 600);
    assert.equal(uploads.spooled, 600);
    // v1 takes its extent before writing.
    await assert.rejects(uploads.writeRange(b, 0, 999, Readable.from([Buffer.alloc(1000)])), {
      code: 'HOARD_ENO_SPACE',
    });
    await assert.rejects(uploads.putBlock(b, 'QUFB', Readable.from([Buffer.alloc(901)]), 901), {
      code: 'HOARD_ENO_SPACE',
    });
    assert.equal(uploads.spooled, 600);
    assert.deepEqual(
      (await readdir(b.dir)).filter((f) => f.endsWith('.part')),
      [],
    );
    await uploads.writeRange(b, 0, 899, Readable.from([Buffer.alloc(900)]));
    assert.equal(uploads.spooled, 1500);
    await uploads.drop(a);
    await uploads.drop(b);
    assert.equal(uploads.spooled, 0);
  });

  it('refuses a range body longer or shorter than its Content-Range', async () => {
    const u = await uploads.reserve(target('lengths'));
    await assert.rejects(uploads.writeRange(u, 0, 1, Readable.from([Buffer.from('abc')])), /longer than/);
    await assert.rejects(uploads.writeRange(u, 0, 3, Readable.from([Buffer.from('ab')])), {
      code: 'HOARD_ETRUNCATED',
    });
    assert.equal(u.staged, 0);
    await uploads.drop(u);
  });
});

describe('cache keys as ref names', () => {
  it('escapes every key into a valid ref, keeping "starts with"', () => {
    const keys = [
      'node-linux-abc',
      'a.lock',
      'ключ/с пробелом',
      'x=y',
      '-leading',
      '%41',
      'a b,c'.replace(',', ''),
    ];
    for (const key of keys) {
      const ref = entryRef('acme/app', 'a'.repeat(64), key);
      assert.equal(validateRefName(ref), ref);
      for (let i = 0; i <= key.length; i++) {
        const prefix = prefixRef('acme/app', 'a'.repeat(64), key.slice(0, i));
        validateRefPrefix(prefix);
        assert.ok(ref.startsWith(prefix), `${key} / ${key.slice(0, i)}`);
      }
    }
    // Distinct keys never share an escape, and a non-prefix never matches.
    assert.notEqual(escapeSegment('a=41'), escapeSegment('aA'));
    assert.ok(!entryRef('n', 'v', 'ab').startsWith(prefixRef('n', 'v', 'a.')));
  });

  it('refuses a key whose escape does not fit a ref name', () => {
    assert.throws(() => entryRef('acme/app', 'v', 'é'.repeat(200)), { code: 'HOARD_EBAD_REQUEST' });
  });
});
