import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SERVE_FEATURES, SERVE_SETTINGS } from '../../src/cli/serve-features.ts';
import type { Digest } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { snapshotRefName } from '../../src/git/snapshot-ref.ts';
import { SnapshotService } from '../../src/git/snapshot-service.ts';
import { rangedDownload } from '../../src/http/ranged-download.ts';
import { buildServer } from '../../src/server/app.ts';
import { loadLayers, serverConfigFrom } from '../../src/server/config.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';
import { MemoryRefStore } from '../../src/store/memory-ref-store.ts';
import { commitAll, git, makeUpstream } from '../archive/helpers.ts';
import { type SnapshotTestServer, startSnapshotServer } from '../archive/snapshot-server.ts';
import { waitUntil } from '../support/wait.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function body(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

describe('git snapshots (server)', () => {
  let root: string;
  let work: string; // the upstream's work repo
  let bare: string; // the upstream as served (file://)
  let a: SnapshotTestServer;
  let b: SnapshotTestServer;
  const repo = 'up/app.git';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-snap-'));
    work = await makeUpstream(root);
    bare = join(root, 'upstreams', 'app.git');
    await git(root, 'clone', '-q', '--bare', work, bare);
    const upstreams = { up: `file://${join(root, 'upstreams')}` };
    a = await startSnapshotServer({ upstreams, publicUrl: 'http://hoard.test' });
    b = await startSnapshotServer({ upstreams, publicUrl: 'http://hoard.test' });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await rm(root, { recursive: true, force: true });
  });

  /** Adds a commit to the upstream; returns its id. */
  async function upstreamCommit(msg: string): Promise<string> {
    await writeFile(join(work, 'CHANGES'), `${msg}\n`);
    const c = await commitAll(work, msg);
    await git(work, 'push', '-q', bare, 'HEAD:main');
    return c;
  }

  it('two servers with separate data dirs serve identical bytes for a commit', async () => {
    const head = await git(bare, 'rev-parse', 'main');
    const ra = await fetch(`${a.url}/git/${repo}/snapshot.tar.zst`);
    const rb = await fetch(`${b.url}/git/${repo}/snapshot.tar.zst`);
    assert.equal(ra.status, 200);
    assert.equal(rb.status, 200);
    const ba = await body(ra);
    const bb = await body(rb);
    const hex = sha(ba);
    assert.equal(sha(bb), hex);
    assert.equal(ra.headers.get('etag'), `"${hex}"`);
    assert.equal(rb.headers.get('etag'), `"${hex}"`);
    assert.equal(ra.headers.get('content-location'), `/v1/blobs/sha256/${hex}`);
    assert.equal(ra.headers.get('x-hoard-commit'), head);
    assert.equal(ra.headers.get('cache-control'), 'no-cache');
    assert.equal(ra.headers.get('x-hoard-ref'), 'refs/heads/main');
    assert.equal(Number(ra.headers.get('content-length')), ba.byteLength);
    // The immutable blob URL serves the same bytes, with ranges.
    const blob = await fetch(`${a.url}/v1/blobs/sha256/${hex}`, { headers: { range: 'bytes=10-19' } });
    assert.equal(blob.status, 206);
    assert.ok((await body(blob)).equals(ba.subarray(10, 20)));
    // The commit → digest ref exists in each server's ref store.
    assert.equal((await a.server.ctx.refs.get(snapshotRefName('up/app', head)))?.target, `sha256:${hex}`);
  });

  it('HEAD answers the headers without a body; If-None-Match gives 304', async () => {
    const r = await fetch(`${a.url}/git/${repo}/snapshot.tar.zst`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    const etag = r.headers.get('etag');
    assert.match(etag ?? '', /^"[0-9a-f]{64}"$/);
    assert.ok(Number(r.headers.get('content-length')) > 0);
    assert.equal((await body(r)).byteLength, 0);
    const r304 = await fetch(`${a.url}/git/${repo}/snapshot.tar.zst`, {
      headers: { 'if-none-match': etag ?? '' },
    });
    assert.equal(r304.status, 304);
  });

  it('serves a commit by id and by ?ref=, 404 for an unknown commit, 400 for a bad one', async () => {
    const first = await git(bare, 'rev-list', '--max-parents=0', 'main');
    await git(bare, 'tag', 'v1', first);
    const byCommit = await fetch(`${a.url}/git/${repo}/snapshot/${first}.tar.zst`);
    assert.equal(byCommit.status, 200);
    assert.equal(byCommit.headers.get('x-hoard-commit'), first);
    const bytes = await body(byCommit);
    const byTag = await fetch(`${a.url}/git/${repo}/snapshot.tar.zst?ref=v1`);
    assert.equal(byTag.headers.get('x-hoard-commit'), first);
    assert.equal(sha(await body(byTag)), sha(bytes));
    const unknown = await fetch(`${a.url}/git/${repo}/snapshot/${'0'.repeat(40)}.tar.zst`);
    assert.equal(unknown.status, 404);
    const bad = await fetch(`${a.url}/git/${repo}/snapshot/nothex.tar.zst`);
    assert.equal(bad.status, 400);
    const noRef = await fetch(`${a.url}/git/${repo}/snapshot.tar.zst?ref=nope`);
    assert.equal(noRef.status, 404);
  });

  it('a commit pushed upstream after the last fetch is served by id', async () => {
    const c = await upstreamCommit('pushed just now');
    const r = await fetch(`${b.url}/git/${repo}/snapshot/${c}.tar.zst`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-hoard-commit'), c);
  });

  it('a snapshot ref planted in the store at a foreign blob is not served over HTTP', async () => {
    const c = await upstreamCommit('planted');
    const evil = Buffer.from('not the archive of this commit');
    const evilDigest: Digest = `sha256:${sha(evil)}`;
    await b.server.ctx.blobs.write(evilDigest, [evil]);
    await b.server.ctx.refs.set(snapshotRefName('up/app', c), evilDigest, null);
    const r = await fetch(`${b.url}/git/${repo}/snapshot/${c}.tar.zst`);
    assert.equal(r.status, 200);
    const bytes = await body(r);
    assert.notEqual(sha(bytes), sha(evil));
    assert.equal(r.headers.get('etag'), `"${sha(bytes)}"`);
    assert.equal(b.snapshots.foreignRejected, 1);
  });

  it('concurrent requests for a new commit generate it once', async () => {
    await upstreamCommit('for single-flight');
    const before = a.snapshots.generations;
    const rs = await Promise.all(
      Array.from({ length: 6 }, () => fetch(`${a.url}/git/${repo}/snapshot.tar.zst`, { method: 'HEAD' })),
    );
    const tags = new Set(rs.map((r) => r.headers.get('etag')));
    assert.equal(tags.size, 1);
    // Background regeneration may have done it already; either way exactly one generation.
    await a.snapshots.idle();
    assert.equal(a.snapshots.generations - before, 1);
  });

  it('a ranged download in progress survives a new commit and a new snapshot', async () => {
    const head = await fetch(`${a.url}/git/${repo}/snapshot.tar.zst`, { method: 'HEAD' });
    const etag = head.headers.get('etag') ?? '';
    const size = Number(head.headers.get('content-length'));
    const blobUrl = new URL(head.headers.get('content-location') ?? '', a.url).href;
    const d = rangedDownload({
      url: blobUrl,
      size,
      etag,
      expected: `sha256:${etag.slice(1, -1)}` as Digest,
      concurrency: 2,
      rangeBytes: 4096,
    });
    const parts: Buffer[] = [];
    let switched = false;
    for await (const chunk of d.stream) {
      parts.push(chunk);
      if (!switched) {
        switched = true;
        // Mid-download: a new commit lands upstream and its snapshot is generated.
        await upstreamCommit('lands mid-download');
        const now = await fetch(`${a.url}/git/${repo}/snapshot.tar.zst`, { method: 'HEAD' });
        assert.notEqual(now.headers.get('etag'), etag);
      }
    }
    const r = await d.done;
    assert.equal(r.digest, `sha256:${etag.slice(1, -1)}`);
    assert.equal(sha(Buffer.concat(parts)), etag.slice(1, -1));
    assert.ok(r.requests > 2);
  });

  it('regenerates in the background after a fetch moves the default branch', async () => {
    await fetch(`${b.url}/git/${repo}/snapshot.tar.zst`, { method: 'HEAD' }); // b watches the repo
    const c = await upstreamCommit('background');
    // A plain ref advertisement (what `git fetch` does) fetches the mirror.
    const adv = await fetch(`${b.url}/git/${repo}/info/refs?service=git-upload-pack`);
    assert.equal(adv.status, 200);
    await adv.arrayBuffer();
    // The fetch, then the regeneration, run in the background: wait for the ref.
    await waitUntil(
      async () => {
        await b.snapshots.idle();
        return (await b.server.ctx.refs.get(snapshotRefName('up/app', c))) !== undefined;
      },
      'the snapshot of the new head',
      60_000,
    );
  });
});

describe('snapshot routes wired by the composition root (as hoard serve does)', () => {
  it('serves snapshot.tar.zst through the features of SERVE_FEATURES', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hoard-snapwire-'));
    try {
      const work = await makeUpstream(root, 1);
      await git(root, 'clone', '-q', '--bare', work, join(root, 'ups', 'app.git'));
      const dataDir = join(root, 'data');
      const layers = await loadLayers(
        SERVE_SETTINGS,
        {
          gitUpstream: [`up=file://${join(root, 'ups')}`],
          listen: '127.0.0.1:0',
          data: dataDir,
          logLevel: 'silent',
          publicUrl: 'http://hoard.test',
        },
        {},
      );
      const server = await buildServer(serverConfigFrom(layers), {
        logger: false,
        features: await Promise.all(SERVE_FEATURES.map((f) => f.use(layers))),
      });
      const url = await server.listen();
      try {
        const r = await fetch(`${url}/git/up/app.git/snapshot.tar.zst`);
        assert.equal(r.status, 200);
        const bytes = await body(r);
        assert.equal(r.headers.get('etag'), `"${sha(bytes)}"`);
        assert.equal(r.headers.get('x-hoard-commit'), await git(work, 'rev-parse', 'HEAD'));
      } finally {
        await server.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('snapshot service publishing', () => {
  let root: string;
  let mirror: string;
  let commit: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-snapsvc-'));
    const work = await makeUpstream(root, 2);
    mirror = join(root, 'mirror.git');
    await git(root, 'clone', '-q', '--mirror', work, mirror);
    commit = await git(mirror, 'rev-parse', 'HEAD');
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const mirrorsStub = () => ({
    resolveRef: async () => {
      throw new Error('unused');
    },
    open: async () => {
      throw new Error('unused');
    },
    ensureObjects: async () => [],
  });

  // Changed by issue 11: the loser used to adopt the winner's digest unverified, which let
  // anyone who can write the bucket race a poisoned archive in. It now serves its own
  // (verified by construction) and leaves the ref alone.
  it('the loser of a create-if-absent race never adopts a digest it cannot reproduce', async () => {
    const blobs = new MemoryBlobStore();
    const refs = new MemoryRefStore();
    // Another server wins the race with (hypothetically) different bytes.
    const other = Buffer.from('the winner archive');
    const otherDigest: Digest = `sha256:${sha(other)}`;
    await blobs.write(otherDigest, [other]);
    const name = snapshotRefName('k/r', commit);
    const racingRefs = Object.create(refs) as MemoryRefStore;
    let raced = false;
    racingRefs.get = async (n: string) => {
      const v = await refs.get(n);
      if (!v && !raced && n === name) {
        // The first lookups see nothing; the winner writes just before our publish.
        return undefined;
      }
      return v;
    };
    racingRefs.set = async (n, target, expected) => {
      if (!raced) {
        raced = true;
        await refs.set(n, otherDigest, null);
      }
      return refs.set(n, target, expected);
    };
    const svc = new SnapshotService({
      mirrors: mirrorsStub(),
      blobs,
      refs: racingRefs,
      tmpDir: join(root, 'tmp-race'),
    });
    const info = await svc.snapshot('k/r', mirror, commit, 'http://h/git/k/r');
    assert.notEqual(info.digest, otherDigest);
    assert.equal(info.generated, true);
    assert.equal(svc.foreignRejected, 1);
    assert.equal((await refs.get(name))?.target, otherDigest, 'the ref is left alone');
    // Served from its own record from now on, without regenerating.
    const again = await svc.snapshot('k/r', mirror, commit, 'http://h/git/k/r');
    assert.equal(again.digest, info.digest);
    assert.equal(svc.generations, 1);
  });

  it('a snapshot ref planted at a foreign blob is never served; a ref another server wrote is verified', async () => {
    const blobs = new MemoryBlobStore();
    const refs = new MemoryRefStore();
    const evil = Buffer.from('a crafted archive with hooks');
    const evilDigest: Digest = `sha256:${sha(evil)}`;
    await blobs.write(evilDigest, [evil]);
    const name = snapshotRefName('k/r', commit);
    await refs.set(name, evilDigest, null);
    const svc = new SnapshotService({ mirrors: mirrorsStub(), blobs, refs, tmpDir: join(root, 'tmp-plant') });
    const info = await svc.snapshot('k/r', mirror, commit, 'http://h/git/k/r');
    assert.notEqual(info.digest, evilDigest);
    assert.equal(svc.foreignRejected, 1);
    // What it served is the real archive: the same digest a clean server generates.
    const clean = new SnapshotService({
      mirrors: mirrorsStub(),
      blobs: new MemoryBlobStore(),
      refs: new MemoryRefStore(),
      tmpDir: join(root, 'tmp-clean'),
    });
    assert.equal((await clean.snapshot('k/r', mirror, commit, 'http://h/git/k/r')).digest, info.digest);
    // A second server sharing the stores finds a ref it did not write: it regenerates, the
    // digests agree, and it serves that blob (verified, not generated anew into the ref).
    await refs.set(name, info.digest, (await refs.get(name))!.version);
    const peer = new SnapshotService({ mirrors: mirrorsStub(), blobs, refs, tmpDir: join(root, 'tmp-peer') });
    const seen = await peer.snapshot('k/r', mirror, commit, 'http://h/git/k/r');
    assert.equal(seen.digest, info.digest);
    assert.equal(seen.generated, false);
    assert.equal(peer.generations, 1, 'verified by regenerating');
    assert.equal(peer.foreignRejected, 0);
  });

  it('regenerates when the ref points at a blob that aged out, with the same digest', async () => {
    const blobs = new MemoryBlobStore();
    const refs = new MemoryRefStore();
    const svc = new SnapshotService({ mirrors: mirrorsStub(), blobs, refs, tmpDir: join(root, 'tmp-age') });
    const first = await svc.snapshot('k/r', mirror, commit, 'http://h/git/k/r');
    assert.equal(first.generated, true);
    await blobs.delete(first.digest);
    const again = await svc.snapshot('k/r', mirror, commit, 'http://h/git/k/r');
    assert.equal(again.digest, first.digest);
    assert.equal(svc.generations, 2);
    assert.ok(await blobs.has(first.digest));
  });

  it('cleans up after a failed generation', async () => {
    const blobs = new MemoryBlobStore();
    const refs = new MemoryRefStore();
    const tmp = join(root, 'tmp-fail');
    const svc = new SnapshotService({ mirrors: mirrorsStub(), blobs, refs, tmpDir: tmp });
    await assert.rejects(svc.snapshot('k/r', mirror, 'e'.repeat(40), 'http://h/x'), (e) =>
      isHoardError(e, 'HOARD_EGIT'),
    );
    const { readdir } = await import('node:fs/promises');
    assert.deepEqual(await readdir(tmp), []);
  });
});
