// The library entry point (src/index.ts) from the repository: results are
// the objects `--json` prints (the CLI runs the same functions), progress
// events come once per blob, AbortSignal cancels without moving the ref,
// conflicts are typed errors, a caller's open Remote is left open, and
// `connect` reaches a live server with a token (and refuses what is not one).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as hoard from '../../src/index.ts';
import { startTestServer, type TestServer } from '../server/helpers.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { hoard as cli, describeDir, tempDir, writeFiles } from '../sync/helpers.ts';

type Event = hoard.ProgressEvent;

const blobEvents = (events: Event[]) =>
  events.filter((e): e is Extract<Event, { type: 'blob' }> => e.type === 'blob');

/** Fails when any digest has more than one `blob` event. */
function assertOncePerBlob(events: Event[]): void {
  const digests = blobEvents(events).map((e) => e.digest);
  assert.equal(new Set(digests).size, digests.length, `duplicated blob events: ${digests.join(' ')}`);
}

describe('library (file://)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let remote: string;
  before(async () => {
    tmp = await tempDir('hoard-lib-');
    remote = `file://${join(tmp.dir, 'remote')}`;
  });
  after(() => tmp.cleanup());

  it('cache.save / cache.restore / cache.list / cache.delete resolve to what `hoard cache … --json` prints', async () => {
    const work = join(tmp.dir, 'cache-work');
    await writeFiles(join(work, 'deps'), { 'a.txt': 'cache entry a\n', 'b/c.bin': randomBytes(50_000) });
    const events: Event[] = [];
    const saved = await hoard.cache.save({
      remote,
      key: 'deps-1',
      paths: ['deps'],
      cwd: work,
      onProgress: (e) => events.push(e),
    });
    assert.equal(saved.saved, true);
    assert.equal(blobEvents(events).length, 2);
    assertOncePerBlob(events);
    // Saving the key again is a no-op that says so (keys are immutable), as the CLI says.
    const viaCli = await cli(['cache', 'save', 'deps-1', 'deps', '--remote', remote, '--json'], {
      cwd: work,
    });
    assert.equal(viaCli.code, 0);
    const again = await hoard.cache.save({ remote, key: 'deps-1', paths: ['deps'], cwd: work });
    assert.deepEqual({ ...(viaCli.json as object), durationMs: 0 }, { ...again, durationMs: 0 });
    assert.equal(again.exists, true);

    const fresh = join(tmp.dir, 'cache-fresh');
    const restored = await hoard.cache.restore({
      remote,
      key: 'deps-2',
      restoreKeys: ['deps-'],
      paths: ['deps'],
      cwd: fresh,
    });
    assert.equal(restored.hit, 'partial');
    assert.equal(restored.matchedKey, 'deps-1');
    assert.deepEqual(await describeDir(join(fresh, 'deps')), await describeDir(join(work, 'deps')));
    const listed = await hoard.cache.list({ remote });
    assert.deepEqual(
      listed.map((e) => e.key),
      ['deps-1'],
    );
    const deleted = await hoard.cache.delete({ remote, key: 'deps-1' });
    assert.equal(deleted.deleted.length, 1);
    assert.equal(
      (await hoard.cache.restore({ remote, key: 'deps-1', paths: ['deps'], cwd: fresh })).hit,
      'miss',
    );
  });

  it('push and pull resolve to what --json prints, with one blob event per blob', async () => {
    const dir = join(tmp.dir, 'a');
    // Two files share their bytes: one blob, one event.
    await writeFiles(dir, {
      'x.txt': 'same\n',
      'y.txt': 'same\n',
      'big.bin': randomBytes(300_000),
      z: 'z\n',
    });
    const events: Event[] = [];
    const r = await hoard.push({
      dir,
      remote,
      ref: 'lib/a',
      message: 'one',
      onProgress: (e) => events.push(e),
    });
    assert.equal(r.filesUploaded, 3);
    assert.equal(blobEvents(events).length, 3);
    assertOncePerBlob(events);
    assert.deepEqual(
      blobEvents(events).map((e) => e.operation),
      ['push', 'push', 'push'],
    );
    assert.equal(events[0].type, 'start');
    assert.equal(events.at(-1)?.type, 'end');
    const moved = events.reduce(
      (n, e) => n + (e.type === 'bytes' && e.operation === 'push' ? e.bytes : 0),
      0,
    );
    assert.equal(moved, r.bytesUploaded);
    // The hash phase comes first, as its own round: every byte of the new files read once.
    const hashed = events.filter((e) => e.operation === 'hash');
    assert.equal(hashed[0]?.type, 'start');
    assert.equal(hashed.at(-1)?.type, 'end');
    assert.equal(
      hashed.reduce((n, e) => n + (e.type === 'bytes' ? e.bytes : 0), 0),
      300_000 + 5 + 5 + 2,
    );

    // The CLI prints the same object (durationMs aside) for the same kind of call.
    const viaCli = await cli(['push', dir, remote, '--ref', 'lib/a', '--json']);
    assert.equal(viaCli.code, 0);
    const again = await hoard.push({ dir, remote, ref: 'lib/a' });
    assert.deepEqual({ ...(viaCli.json as object), durationMs: 0 }, { ...again, durationMs: 0 });

    const out = join(tmp.dir, 'a-out');
    const pulled: Event[] = [];
    const p = await hoard.pull({ dir: out, remote, ref: 'lib/a', onProgress: (e) => pulled.push(e) });
    assert.equal(p.snapshot, r.snapshot);
    assert.deepEqual(await describeDir(out), await describeDir(dir));
    assert.equal(blobEvents(pulled).length, 3);
    assertOncePerBlob(pulled);
    assert.ok(blobEvents(pulled).every((e) => e.operation === 'pull'));

    // log, listRefs and diff equal their commands' --json.
    const log = await hoard.log({ remote, ref: 'lib/a' });
    assert.deepEqual((await cli(['log', remote, '--ref', 'lib/a', '--json'])).json, log);
    assert.equal(log.entries[0].message, 'one');
    const ls = await hoard.listRefs({ remote });
    assert.deepEqual((await cli(['ls', remote, '--json'])).json, ls);
    const d = await hoard.diff({ remote, ref: 'lib/a' });
    assert.deepEqual((await cli(['diff', remote, '--ref', 'lib/a', '--json'])).json, d);
    assert.deepEqual(
      d.added.map((e) => e.path),
      ['big.bin', 'x.txt', 'y.txt', 'z'],
    );
    await writeFiles(out, { z: 'changed\n' });
    const local = await hoard.diff({ dir: out });
    assert.deepEqual(
      local.changed.map((e) => e.path),
      ['z'],
    );
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(c, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    const cat = await hoard.catFile({ remote, spec: 'lib/a:x.txt', out: sink });
    assert.equal(Buffer.concat(chunks).toString(), 'same\n');
    assert.equal(cat.path, 'x.txt');
  });

  it('two pushes racing for one ref: both land (merge), neither reports a blob twice', async () => {
    const a = join(tmp.dir, 'race-a');
    const b = join(tmp.dir, 'race-b');
    await writeFiles(a, Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`a${i}`, `a ${i}\n`])));
    await writeFiles(b, Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`b${i}`, `b ${i}\n`])));
    const ea: Event[] = [];
    const eb: Event[] = [];
    await Promise.all([
      hoard.push({ dir: a, remote, ref: 'lib/race', onProgress: (e) => ea.push(e) }),
      hoard.push({ dir: b, remote, ref: 'lib/race', onProgress: (e) => eb.push(e) }),
    ]);
    assertOncePerBlob(ea);
    assertOncePerBlob(eb);
    const out = join(tmp.dir, 'race-out');
    await hoard.pull({ dir: out, remote, ref: 'lib/race' });
    assert.equal(Object.keys(await describeDir(out)).length, 40);
  });

  it('push with verify re-uploads what the remote lost, one event per blob', async () => {
    const dir = join(tmp.dir, 'verify');
    await writeFiles(dir, { keep: 'kept\n', lost: 'lost\n', 'lost-too': 'lost\n' });
    await hoard.push({ dir, remote, ref: 'lib/verify' });
    const digest = hoard.sha256('lost\n');
    const hex = digest.slice('sha256:'.length);
    await rm(join(tmp.dir, 'remote', 'blobs', 'sha256', hex.slice(0, 2), hex));
    const events: Event[] = [];
    const r = await hoard.push({
      dir,
      remote,
      ref: 'lib/verify',
      verify: true,
      onProgress: (e) => events.push(e),
    });
    assert.equal(r.verified?.blobsReuploaded, 1);
    assert.deepEqual(
      blobEvents(events).map((e) => e.digest),
      [digest],
    );
  });

  it('a conflict is a SyncConflictError naming the paths; a stale removeRef a RefConflictError', async () => {
    const one = join(tmp.dir, 'c1');
    const two = join(tmp.dir, 'c2');
    await writeFiles(one, { 'f.txt': 'base\n' });
    await hoard.push({ dir: one, remote, ref: 'lib/c' });
    await hoard.pull({ dir: two, remote, ref: 'lib/c' });
    await writeFiles(one, { 'f.txt': 'mine\n' });
    await hoard.push({ dir: one, remote, ref: 'lib/c' });
    await writeFiles(two, { 'f.txt': 'theirs\n' });
    const err = await hoard.push({ dir: two, remote, ref: 'lib/c' }).then(
      () => assert.fail('push should conflict'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof hoard.SyncConflictError);
    assert.ok(err instanceof hoard.HoardError);
    assert.ok(hoard.isHoardError(err, 'HOARD_ESYNC_CONFLICT'));
    assert.deepEqual(err.paths, ['f.txt']);
    assert.equal(err.ref, 'lib/c');
    assert.ok(hoard.ERROR_CODES.includes(err.code));

    const stale = await hoard.removeRef({ remote, ref: 'lib/c', expect: 'stale' }).catch((e: unknown) => e);
    assert.ok(stale instanceof hoard.RefConflictError);
    assert.equal(stale.code, 'HOARD_EREF_CONFLICT');
    assert.equal(stale.expected, 'stale');
    const missing = await hoard.log({ remote, ref: 'lib/none' }).catch((e: unknown) => e);
    assert.ok(hoard.isHoardError(missing, 'HOARD_EREF_NOT_FOUND'));
  });

  it('an aborted push moves no ref and a later push completes; an aborted pull is completed by the next; every call cancels alike', async () => {
    const dir = join(tmp.dir, 'abort');
    await writeFiles(
      dir,
      Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, randomBytes(200_000)])),
    );

    const already = AbortSignal.abort(new Error('never started'));
    const e0 = await hoard.push({ dir, remote, ref: 'lib/abort', signal: already }).catch((e: unknown) => e);
    assert.ok(hoard.isHoardError(e0, 'HOARD_EABORTED'), String(e0));

    const ac = new AbortController();
    const seen: Event[] = [];
    const e1 = await hoard
      .push({
        dir,
        remote,
        ref: 'lib/abort',
        signal: ac.signal,
        onProgress: (e) => {
          seen.push(e);
          if (e.type === 'blob') ac.abort();
        },
      })
      .catch((e: unknown) => e);
    assert.ok(hoard.isHoardError(e1, 'HOARD_EABORTED'), String(e1));
    assert.ok(blobEvents(seen).length < 12, 'the push stopped before uploading everything');
    assert.equal((await hoard.listRefs({ remote, prefix: 'lib/abort' })).refs.length, 0, 'no ref moved');

    const done = await hoard.push({ dir, remote, ref: 'lib/abort' });
    assert.equal(done.filesTotal, 12);

    const out = join(tmp.dir, 'abort-out');
    const pc = new AbortController();
    const e2 = await hoard
      .pull({
        dir: out,
        remote,
        ref: 'lib/abort',
        signal: pc.signal,
        onProgress: (e) => {
          if (e.type === 'blob') pc.abort();
        },
      })
      .catch((e: unknown) => e);
    assert.ok(hoard.isHoardError(e2, 'HOARD_EABORTED'), String(e2));
    await hoard.pull({ dir: out, remote, ref: 'lib/abort' });
    assert.deepEqual(await describeDir(out), await describeDir(dir));

    // Every operation reports a cancellation the same way.
    const signal = AbortSignal.abort();
    for (const call of [
      hoard.log({ remote, ref: 'lib/abort', signal }),
      hoard.diff({ remote, ref: 'lib/abort', signal }),
      hoard.diff({ dir: out, signal }),
      hoard.listRefs({ remote, signal }),
      hoard.removeRef({ remote, ref: 'lib/abort', signal }),
      hoard.catFile({
        remote,
        spec: 'lib/abort:f0',
        out: new Writable({ write: (_c, _e, cb) => cb() }),
        signal,
      }),
    ]) {
      const e = await call.then(
        () => assert.fail('a call with an aborted signal must fail'),
        (err: unknown) => err,
      );
      assert.ok(hoard.isHoardError(e, 'HOARD_EABORTED'), String(e));
    }
    assert.equal(
      (await hoard.listRefs({ remote, prefix: 'lib/abort' })).refs.length,
      1,
      'removeRef removed nothing',
    );
  });

  it("a caller's open Remote is used and left open", async () => {
    const r = await hoard.openRemote(join(tmp.dir, 'shared'), { create: true });
    try {
      const dir = join(tmp.dir, 'shared-src');
      await writeFiles(dir, { k: 'v\n' });
      await hoard.push({ dir, remote: r, ref: 'lib/open' });
      await hoard.pull({ dir: join(tmp.dir, 'shared-out'), remote: r, ref: 'lib/open' });
      // Still open: the store answers.
      assert.ok((await r.refs.get('lib/open'))?.target);
      assert.equal(await readFile(join(tmp.dir, 'shared-out', 'k'), 'utf8'), 'v\n');
    } finally {
      await r.close();
    }
  });

  it('a progress listener that throws does not break the transfer', async () => {
    const dir = join(tmp.dir, 'throwing');
    await writeFiles(dir, { a: 'a\n', b: 'b\n' });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const r = await hoard.push({
        dir,
        remote,
        ref: 'lib/throwing',
        onProgress: () => {
          throw new Error('listener bug');
        },
      });
      assert.equal(r.filesUploaded, 2);
      await new Promise((res) => setImmediate(res)); // warnings are emitted on the next tick
      assert.ok(warnings.includes('HoardProgressListenerError'));
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('library against a live server', () => {
  const TOKEN = 'lib-test-token-0123456789';
  let srv: TestServer;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await tempDir('hoard-lib-srv-');
    const tokens = await writeTokensFile(tmp.dir, [{ name: 'ci', token: TOKEN, scopes: ['read', 'write'] }]);
    srv = await startTestServer({ tokens });
  });
  after(async () => {
    await srv.close();
    await tmp.cleanup();
  });

  it('connect checks the server; its blobs and refs are the API; push/pull take a token', async () => {
    const client = await hoard.connect(srv.url, { token: TOKEN });
    try {
      const bytes = Buffer.from('hello api\n');
      const digest = hoard.sha256(bytes);
      assert.equal((await client.blobs.write(digest, [bytes])).size, bytes.length);
      assert.deepEqual(await client.blobs.missing([digest]), []);
      const v = await client.refs.set('lib/api', digest, null);
      const conflict = await client.refs.set('lib/api', digest, null).catch((e: unknown) => e);
      assert.ok(conflict instanceof hoard.RefConflictError, String(conflict));
      assert.equal((await client.refs.get('lib/api'))?.version, v.version);
    } finally {
      await client.close();
    }

    // Without the token the server refuses, as a typed error.
    const noToken = await hoard.connect(srv.url);
    const refused = await noToken.refs.get('lib/api').catch((e: unknown) => e);
    assert.ok(hoard.isHoardError(refused, 'HOARD_EUNAUTHORIZED'), String(refused));
    await noToken.close();

    const dir = join(tmp.dir, 'ctx');
    await writeFiles(dir, { Dockerfile: 'FROM scratch\n', 'app.js': 'console.log(1)\n' });
    const first = await hoard.push({ dir, remote: srv.url, token: TOKEN, ref: 'lib/ctx' });
    assert.equal(first.filesUploaded, 2);
    await writeFiles(dir, { 'app.js': 'console.log(2)\n' });
    const second = await hoard.push({ dir, remote: srv.url, token: TOKEN, ref: 'lib/ctx' });
    assert.equal(second.filesUploaded, 1, 'only the changed file travels');
    const out = join(tmp.dir, 'ctx-out');
    await hoard.pull({ dir: out, remote: srv.url, token: TOKEN, ref: 'lib/ctx' });
    assert.deepEqual(await describeDir(out), await describeDir(dir));
  });

  it('an aborted push to the server moves no ref; the next one completes', async () => {
    const dir = join(tmp.dir, 'abort-http');
    await writeFiles(
      dir,
      Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, randomBytes(300_000)])),
    );
    const ac = new AbortController();
    const err = await hoard
      .push({
        dir,
        remote: srv.url,
        token: TOKEN,
        ref: 'lib/abort-http',
        signal: ac.signal,
        onProgress: (e) => {
          if (e.type === 'bytes') ac.abort(); // mid-upload: requests in flight are cut
        },
      })
      .catch((e: unknown) => e);
    assert.ok(hoard.isHoardError(err, 'HOARD_EABORTED'), String(err));
    const refs = await hoard.listRefs({ remote: srv.url, token: TOKEN, prefix: 'lib/abort-http' });
    assert.deepEqual(refs.refs, []);
    const done = await hoard.push({ dir, remote: srv.url, token: TOKEN, ref: 'lib/abort-http' });
    assert.equal(done.filesTotal, 10);
  });

  it('connect refuses what is not a reachable hoard server', async () => {
    const folder = await hoard.connect(`file://${tmp.dir}`).catch((e: unknown) => e);
    assert.ok(hoard.isHoardError(folder, 'HOARD_EREMOTE_URL'), String(folder));
    const closed = await hoard.connect('http://127.0.0.1:9').catch((e: unknown) => e);
    assert.ok(hoard.isHoardError(closed), String(closed));
    assert.notEqual(closed.code, 'HOARD_EINTERNAL');
  });
});
