// Repository snapshots on the server: commit → immutable `tar.zst` blob.
//
// A snapshot is found through the ref `git-snapshots/<repo-key>/<commit>`
// (written create-if-absent: when two servers race on one commit the first
// writer wins and the loser adopts its digest, so through a shared bucket
// every server serves the same bytes for a commit) or generated: single-flight
// per (repo, commit), at most DEFAULTS.snapshotGenerateConcurrency at once,
// into a temp file while hashing (the store needs the digest before write()),
// then written to the blob store and the ref. Temp files are removed on
// success and failure. After a fetch moves a repo's default branch, the new
// commit's snapshot is generated in the background (debounced), for repos
// whose snapshots have been asked for.
//
// Trust: the ref and the blob it names may have been written by anyone who
// can write the shared bucket (or, before the namespace was server-owned, a
// user token), so a ref is never enough to serve a blob as a commit's
// snapshot. This server serves only a digest it generated itself, recorded in
// `<verifiedDir>/<sha256 of the ref name>` (its own disk, never the shared
// stores). A ref it has no record for is verified by regenerating the archive
// (deterministic: same commit → same bytes) and comparing digests: equal, the
// record is written and the blob served; different, the foreign blob is never
// served (ours is, the ref is left alone so that servers with another git
// version do not flap it, and a warning is logged and counted).
//
// Old snapshot blobs are ordinary blobs: they age out of the disk tier by its
// LRU eviction; in a shared bucket a lifecycle rule on old objects is the
// retention (docs/snapshots.md).

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, hexOf, sha256, VerifyingStream } from '../core/digest.ts';
import { HoardError, isHoardError } from '../core/errors.ts';
import { Semaphore } from '../core/pool.ts';
import { validateRefName } from '../core/ref-name.ts';
import { SingleFlight } from '../core/single-flight.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { writeFileAtomic } from '../store/fs-atomic.ts';
import type { RefStore } from '../store/ref-store.ts';
import { runGit } from './git-process.ts';
import { headCommit } from './git-queries.ts';
import { isObjectId } from './object-id.ts';
import { AnchorPacks, anchorsOf } from './snapshot-anchor.ts';
import { snapshotArchive } from './snapshot-archive.ts';

/** What the snapshot service needs from the mirror manager (MirrorManager implements it). */
export interface SnapshotMirrors {
  /** Resolves a ref (default: the upstream's HEAD branch) after the freshness check. */
  resolveRef(
    path: string,
    ref?: string,
  ): Promise<{ key: string; dir: string; ref: string; commit: string; staleSeconds: number | null }>;
  /** The mirror of `path` (cloned if needed), without a freshness check. */
  open(
    path: string,
    opts: { refs: boolean },
  ): Promise<{ key: string; dir: string; staleSeconds: number | null }>;
  /** Of `ids`, those still missing after a fetch. */
  ensureObjects(path: string, ids: string[]): Promise<string[]>;
  /**
   * Subscribes to moves of the default branch (MirrorManager.onDefaultBranchMoved);
   * returns the unsubscribe function. Without it, no background generation.
   */
  onDefaultBranchMoved?(
    listener: (ev: { key: string; path: string; dir: string; to: string }) => void,
  ): () => void;
  /**
   * Subscribes to fetches, the mirror's creation included (MirrorManager.onFetched):
   * `after` is HEAD's commit after it. Without it, no anchor prebuilding.
   */
  onFetched?(listener: (ev: { key: string; dir: string; after?: string | null }) => void): () => void;
}

type LogFn = (obj: object | string, msg?: string) => void;
export interface SnapshotLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
}

export interface SnapshotServiceOptions {
  mirrors: SnapshotMirrors;
  blobs: BlobStore;
  refs: RefStore;
  /** Work directory for generation (created; leftovers of a previous run are removed). */
  tmpDir: string;
  /**
   * Where this server records the snapshot digests it generated or verified
   * (default `<tmpDir>.verified`); only this server writes it.
   */
  verifiedDir?: string;
  /**
   * Where this server keeps the anchor packs of long histories (default
   * `<tmpDir>.anchors`; src/git/snapshot-anchor.ts). Not emptied at start-up.
   */
  anchorDir?: string;
  /** First-parent commits per anchor (default DEFAULTS.snapshotAnchorStep; tests use small ones). */
  anchorStep?: number;
  /** First-parent commits per sub-anchor (default DEFAULTS.snapshotSubAnchorStep; used when it divides anchorStep). */
  anchorSubStep?: number;
  /**
   * Base URL of the server as clients see it (`https://hoard.example`): the
   * archive's `origin` is `<publicUrl>/git/<repo-key>`. Servers sharing a
   * bucket must agree on it to generate identical bytes. Without it the base
   * URL of the request that caused generation is used.
   */
  publicUrl?: string;
  zstdLevel?: number;
  debounceMs?: number;
  concurrency?: number;
  /** Build anchor packs when a mirror is created or fetched (default DEFAULTS.snapshotPrebuildAnchors). */
  prebuildAnchors?: boolean;
  log?: SnapshotLogger;
}

export interface SnapshotInfo {
  key: string;
  commit: string;
  digest: Digest;
  size: number;
  /** Whether this call generated it (false: found through its ref). */
  generated: boolean;
  /** Set when the mirror was served stale (upstream unreachable). */
  staleSeconds: number | null;
  /** The full ref resolved (stable URL only), e.g. `refs/heads/main`. */
  ref?: string;
}

/** A mirror's newest snapshot, as the console shows it. */
export interface LatestSnapshot {
  commit: string;
  digest: Digest;
  size: number;
  /** When this server generated (or verified) it: wall-clock ms. */
  generatedAt: number;
}

const silent: SnapshotLogger = { debug() {}, info() {}, warn() {} };

/** The ref holding a commit's snapshot digest. */
export function snapshotRefName(key: string, commit: string): string {
  // Repo keys may hold `~`, which ref names do not allow; `=` never occurs in keys.
  const enc = key.replace(/[~]/g, (c) => `=${c.charCodeAt(0).toString(16)}`);
  const name = `git-snapshots/${enc}/${commit}`;
  try {
    return validateRefName(name);
  } catch {
    const h = hexOf(sha256(key));
    return `git-snapshots/=${h}/${commit}`;
  }
}

export class SnapshotService {
  readonly mirrors: SnapshotMirrors;
  readonly blobs: BlobStore;
  readonly refs: RefStore;
  readonly tmpDir: string;
  readonly publicUrl: string | undefined;
  readonly zstdLevel: number;
  readonly debounceMs: number;
  readonly log: SnapshotLogger;
  readonly verifiedDir: string;
  readonly anchors: AnchorPacks;
  /** Completed generations (for tests and metrics). */
  generations = 0;
  /** Snapshot requests answered (200 or 304), for the console's request and hit rates. */
  served = 0;
  /** Snapshot refs whose blob was not this server's and did not match a regeneration (never served). */
  foreignRejected = 0;
  /** Ref name → digest this server generated or verified (cache of verifiedDir). */
  #verified = new Map<string, Digest>();
  #flight = new SingleFlight<string, SnapshotInfo>();
  #sem: Semaphore;
  #prepared: Promise<void> | undefined;
  /** Repos whose snapshots were asked for → the base URL to use for background generation. */
  #watched = new Map<string, { path: string; base: string }>();
  #timers = new Map<string, NodeJS.Timeout>();
  #background = new Set<Promise<unknown>>();
  /** Repo key → the commit of the snapshot last served or generated (the console's "latest"). */
  #lastCommit = new Map<string, string>();
  #closed = false;
  #unsubscribe: () => void;
  #unsubscribeFetched: () => void;
  /** Anchor prebuilding (see #prebuildAnchor): repo key → the newest HEAD to build for, waiting. */
  #anchorWanted = new Map<string, { dir: string; commit: string }>();
  /** Repo key → the HEAD whose anchor was last ensured (a fetch that did not move it costs nothing). */
  #anchorDone = new Map<string, string>();
  #prebuilds = new Map<string, Promise<void>>();
  /** One prebuild at a time (it is a full single-core delta search); requests are not limited by it. */
  #prebuildSem = new Semaphore(1);
  #abort = new AbortController();

  constructor(opts: SnapshotServiceOptions) {
    this.mirrors = opts.mirrors;
    this.blobs = opts.blobs;
    this.refs = opts.refs;
    this.tmpDir = opts.tmpDir;
    this.verifiedDir = opts.verifiedDir ?? `${opts.tmpDir.replace(/\/+$/, '')}.verified`;
    this.anchors = new AnchorPacks(
      opts.anchorDir ?? `${opts.tmpDir.replace(/\/+$/, '')}.anchors`,
      opts.anchorStep,
      opts.anchorSubStep,
    );
    this.publicUrl = opts.publicUrl?.replace(/\/+$/, '');
    this.zstdLevel = opts.zstdLevel ?? DEFAULTS.snapshotZstdLevel;
    this.debounceMs = opts.debounceMs ?? DEFAULTS.snapshotDebounceMs;
    this.log = opts.log ?? silent;
    this.#sem = new Semaphore(opts.concurrency ?? DEFAULTS.snapshotGenerateConcurrency);
    this.#unsubscribe =
      this.mirrors.onDefaultBranchMoved?.((ev) => this.#scheduleBackground(ev)) ?? (() => {});
    this.#unsubscribeFetched =
      (opts.prebuildAnchors ?? DEFAULTS.snapshotPrebuildAnchors) && this.mirrors.onFetched
        ? this.mirrors.onFetched((ev) => this.#prebuildAnchor(ev))
        : () => {};
  }

  /**
   * The anchor pack of a mirror's HEAD, built in the background when the
   * mirror is created or fetched (only when HEAD moved since the last time).
   * A repository's first snapshot otherwise pays the anchor's full delta
   * search (≈ 15-20 s for eslint) while the client waits; prebuilt, it pays
   * the rest's pack and the archive only. Deterministic like any anchor (a
   * function of the commit graph, built by the same command), so the bytes do
   * not depend on whether it was prebuilt. A request that arrives while it is
   * built joins it (AnchorPacks is single-flight). Per repository, the newest
   * HEAD wins: fetches during a build leave one more build at most.
   */
  #prebuildAnchor(ev: { key: string; dir: string; after?: string | null }): void {
    if (this.#closed || !ev.after || this.#anchorDone.get(ev.key) === ev.after) return;
    this.#anchorWanted.set(ev.key, { dir: ev.dir, commit: ev.after });
    if (this.#prebuilds.has(ev.key)) return; // the running loop takes the newest next
    const key = ev.key;
    const run = async () => {
      // The start-up clean-up of the anchor directory's half-built packs runs
      // once, before any build of this process (it would delete this one's).
      await this.#prepare();
      for (let w = this.#anchorWanted.get(key); w && !this.#closed; w = this.#anchorWanted.get(key)) {
        this.#anchorWanted.delete(key);
        const t0 = Date.now();
        const signal = this.#abort.signal;
        const built = this.anchors.built;
        const anchor = await this.#prebuildSem.run(async () => {
          const a = await anchorsOf(w.dir, w.commit, this.anchors.step, this.anchors.subStep, signal);
          if (a.anchor) await this.anchors.ensure(key, w.dir, a.anchor, signal);
          if (a.sub && a.anchor) await this.anchors.ensure(key, w.dir, a.sub, signal, a.anchor);
          return a.anchor;
        });
        this.#anchorDone.set(key, w.commit);
        // info only when a pack was built (once per `step` commits), not per fetch.
        const fields = { repo: key, commit: w.commit, anchor, ms: Date.now() - t0 };
        if (this.anchors.built > built) this.log.info(fields, 'git: snapshot anchor pack ready');
        else this.log.debug(fields, 'git: snapshot anchor pack ready');
      }
    };
    const p = run()
      .catch((err) => {
        if (!this.#closed)
          this.log.warn({ repo: key, err: (err as Error).message }, 'git: snapshot anchor prebuild failed');
      })
      .finally(() => this.#prebuilds.delete(key));
    this.#prebuilds.set(key, p);
  }

  #prepare(): Promise<void> {
    this.#prepared ??= (async () => {
      await mkdir(this.tmpDir, { recursive: true });
      await mkdir(this.verifiedDir, { recursive: true });
      // Leftovers of a killed process: nothing else writes here.
      for (const name of await readdir(this.tmpDir))
        await rm(join(this.tmpDir, name), { recursive: true, force: true });
      // Half-built anchor packs of a killed process (complete ones are renamed into place).
      for (const name of await readdir(this.anchors.dir).catch(() => []))
        if (name.startsWith('tmp-')) await rm(join(this.anchors.dir, name), { recursive: true, force: true });
    })();
    return this.#prepared;
  }

  #origin(key: string, requestBase: string | undefined): string {
    const base = this.publicUrl ?? requestBase;
    if (!base)
      throw new HoardError('HOARD_ECONFIG', 'no public URL to write as the snapshot origin', {
        hint: 'configure the server public URL',
      });
    return `${base}/git/${key}`;
  }

  /** The snapshot of a ref's commit (default: the upstream HEAD branch), after the freshness check. */
  async forRef(path: string, ref: string | undefined, requestBase?: string): Promise<SnapshotInfo> {
    const r = await this.mirrors.resolveRef(path, ref);
    if (ref === undefined || ref === '' || ref === 'HEAD')
      this.#watched.set(r.key, { path, base: this.publicUrl ?? requestBase ?? '' });
    const info = await this.snapshot(r.key, r.dir, r.commit, this.#origin(r.key, requestBase));
    return { ...info, staleSeconds: r.staleSeconds, ref: r.ref };
  }

  /** The snapshot of one commit; HOARD_EREF_NOT_FOUND when the commit is unknown even after a fetch. */
  async forCommit(path: string, commit: string, requestBase?: string): Promise<SnapshotInfo> {
    if (!isObjectId(commit))
      throw new HoardError('HOARD_EBAD_REQUEST', `not a full commit id: ${JSON.stringify(commit)}`, {
        hint: 'use the 40 (or 64) hex digits of the commit',
      });
    const o = await this.mirrors.open(path, { refs: false });
    const missing = await this.mirrors.ensureObjects(path, [commit]);
    const type = missing.length
      ? ''
      : (await runGit(['cat-file', '-t', commit], { cwd: o.dir, okCodes: [1, 128] })).stdout.trim();
    if (type !== 'commit')
      throw new HoardError('HOARD_EREF_NOT_FOUND', `commit ${commit} not found in ${o.key}`, {
        details: { repo: o.key, commit },
      });
    const info = await this.snapshot(o.key, o.dir, commit, this.#origin(o.key, requestBase));
    return { ...info, staleSeconds: o.staleSeconds };
  }

  /**
   * The snapshot of `commit` of the mirror in `dir`: the one this server
   * generated or verified before (its blob still stored), else generated now
   * (which also verifies a ref some other writer left: see the header).
   */
  async snapshot(key: string, dir: string, commit: string, originUrl: string): Promise<SnapshotInfo> {
    const refName = snapshotRefName(key, commit);
    this.#lastCommit.set(key, commit);
    const found = await this.#trusted(refName);
    if (found) return { key, commit, ...found, generated: false, staleSeconds: null };
    return this.#flight.do(`${key}\0${commit}`, async () => {
      const again = await this.#trusted(refName);
      if (again) return { key, commit, ...again, generated: false, staleSeconds: null };
      return this.#sem.run(() => this.#generate(key, dir, commit, originUrl, refName));
    });
  }

  /**
   * The newest snapshot of the mirror `key` (in `dir`) this server holds a
   * record of: of its current HEAD commit or of the last one served, whichever
   * was generated later; undefined when neither has one (nothing is generated
   * here: the console only looks).
   */
  async latest(key: string, dir: string): Promise<LatestSnapshot | undefined> {
    const commits = new Set<string>();
    const last = this.#lastCommit.get(key);
    if (last) commits.add(last);
    const head = await headCommit(dir).catch(() => undefined);
    if (head) commits.add(head);
    let best: LatestSnapshot | undefined;
    for (const commit of commits) {
      const refName = snapshotRefName(key, commit);
      const found = await this.#trusted(refName);
      if (!found) continue;
      const at = await stat(this.#recordPath(refName)).then(
        (st) => st.mtimeMs,
        () => 0,
      );
      if (!best || at > best.generatedAt) best = { commit, ...found, generatedAt: Math.round(at) };
    }
    return best;
  }

  /** This server's own record of the ref's digest, when its blob is still stored. */
  async #trusted(refName: string): Promise<{ digest: Digest; size: number } | undefined> {
    const digest = await this.#recorded(refName);
    if (!digest) return undefined;
    const st = await this.blobs.stat(digest);
    // A blob that aged out is regenerated (deterministically: same digest).
    return st ? { digest, size: st.size } : undefined;
  }

  #recordPath(refName: string): string {
    return join(this.verifiedDir, hexOf(sha256(refName)));
  }

  async #recorded(refName: string): Promise<Digest | undefined> {
    const cached = this.#verified.get(refName);
    if (cached) return cached;
    let text: string;
    try {
      text = (await readFile(this.#recordPath(refName), 'utf8')).trim();
    } catch {
      return undefined;
    }
    if (!/^sha256:[0-9a-f]{64}$/.test(text)) return undefined;
    this.#verified.set(refName, text as Digest);
    return text as Digest;
  }

  async #record(refName: string, digest: Digest): Promise<void> {
    await this.#prepare();
    await writeFileAtomic(this.#recordPath(refName), `${digest}\n`, this.verifiedDir);
    this.#verified.set(refName, digest);
  }

  async #generate(
    key: string,
    dir: string,
    commit: string,
    originUrl: string,
    refName: string,
  ): Promise<SnapshotInfo> {
    await this.#prepare();
    const t0 = Date.now();
    const work = await mkdtemp(join(this.tmpDir, 'gen-'));
    try {
      const file = join(work, 'snapshot.tar.zst');
      let hashed: VerifyingStream;
      // One retry: a maintenance repack of the mirror can remove a pack under a running git.
      for (let attempt = 0; ; attempt++) {
        hashed = new VerifyingStream();
        try {
          const archive = await snapshotArchive({
            repoDir: dir,
            commit,
            originUrl,
            tmpDir: work,
            zstdLevel: this.zstdLevel,
            anchors: { packs: this.anchors, key },
          });
          await pipeline(archive.stream, hashed, createWriteStream(file));
        } catch (err) {
          if (attempt >= 1 || !isHoardError(err, 'HOARD_EGIT') || /not found/.test(err.message)) throw err;
          this.log.warn({ repo: key, commit, err: err.message }, 'git: snapshot generation failed; retrying');
          continue;
        }
        break;
      }
      const digest = hashed.result as Digest;
      const size = hashed.hasher.size;
      if ((await stat(file)).size !== size)
        throw new HoardError('HOARD_EINTERNAL', 'snapshot temp file size changed');
      await this.blobs.write(digest, createReadStream(file, { highWaterMark: DEFAULTS.streamChunkBytes }), {
        size,
      });
      const published = await this.#publish(refName, digest);
      await this.#record(refName, digest);
      this.generations++;
      if (published === 'foreign') {
        this.foreignRejected++;
        this.log.warn(
          { repo: key, commit, digest, ref: refName },
          'git: snapshot ref names a blob this server did not generate and cannot reproduce; serving its own',
        );
      }
      this.log.info(
        { repo: key, commit, digest, bytes: size, ms: Date.now() - t0, ref: published },
        'git: snapshot generated',
      );
      return { key, commit, digest, size, generated: published !== 'same', staleSeconds: null };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /**
   * Writes the commit → digest ref create-if-absent. Returns 'created' (or
   * replaced a ref whose blob is gone), 'same' (the ref already named these
   * bytes: another server generated them, now verified), or 'foreign' (the ref
   * names other bytes whose blob exists: left as it is, never served by us).
   */
  async #publish(refName: string, digest: Digest): Promise<'created' | 'same' | 'foreign'> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.refs.get(refName);
      try {
        if (!cur) await this.refs.set(refName, digest, null);
        else if (cur.target === digest) return 'same';
        else {
          if (await this.blobs.stat(cur.target)) return 'foreign';
          await this.refs.set(refName, digest, cur.version); // its blob is gone: replace
        }
        return 'created';
      } catch (err) {
        if (!isHoardError(err, 'HOARD_EREF_CONFLICT')) throw err;
        // Lost a race: look at what the winner wrote on the next round.
      }
    }
    throw new HoardError('HOARD_EREF_CONFLICT', `could not publish snapshot ref ${refName}`);
  }

  #scheduleBackground(ev: { key: string; path: string; dir: string; to: string }): void {
    if (this.#closed) return;
    const w = this.#watched.get(ev.key);
    if (!w || !(this.publicUrl ?? w.base)) return; // nobody asked for this repo's snapshots
    clearTimeout(this.#timers.get(ev.key));
    const timer = setTimeout(() => {
      this.#timers.delete(ev.key);
      if (this.#closed) return;
      const p = this.snapshot(ev.key, ev.dir, ev.to, this.#origin(ev.key, w.base))
        .then((info) =>
          this.log.debug(
            { repo: ev.key, commit: ev.to, digest: info.digest },
            'git: background snapshot ready',
          ),
        )
        .catch((err) =>
          this.log.warn(
            { repo: ev.key, commit: ev.to, err: (err as Error).message },
            'git: background snapshot failed',
          ),
        )
        .finally(() => this.#background.delete(p));
      this.#background.add(p);
    }, this.debounceMs);
    timer.unref();
    this.#timers.set(ev.key, timer);
  }

  /** Waits for background generations and anchor prebuilds in progress (tests). */
  async idle(): Promise<void> {
    while (this.#background.size > 0 || this.#prebuilds.size > 0)
      await Promise.allSettled([...this.#background, ...this.#prebuilds.values()]);
  }

  /** Whether a background generation is scheduled (debouncing) or running. */
  get busy(): boolean {
    return this.#timers.size > 0 || this.#background.size > 0;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    this.#unsubscribeFetched();
    this.#abort.abort(); // a prebuild's git is killed; a request that joined it fails like at any close
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await this.idle();
  }
}
