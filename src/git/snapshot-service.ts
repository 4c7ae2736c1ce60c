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
//
// The parts: snapshot-ref.ts (the ref's name, create-if-absent publication),
// snapshot-trust-records.ts (this server's records), snapshot-blob-writer.ts
// (archive → temp file → blob), snapshot-background.ts (generation after the
// default branch moved), snapshot-anchor-prebuilds.ts (anchor packs built
// when a mirror is created or fetched), snapshot-service-deps.ts (what the
// service needs from the mirrors).

import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { Semaphore } from '../core/pool.ts';
import { SingleFlight } from '../core/single-flight.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { RefStore } from '../store/ref-store.ts';
import { runGit } from './git-process.ts';
import { headCommit } from './git-queries.ts';
import { isObjectId } from './object-id.ts';
import { AnchorPacks } from './snapshot-anchor.ts';
import { AnchorPrebuilds } from './snapshot-anchor-prebuilds.ts';
import { BackgroundSnapshots } from './snapshot-background.ts';
import { writeSnapshotBlob } from './snapshot-blob-writer.ts';
import { publishSnapshotRef, snapshotRefName } from './snapshot-ref.ts';
import { type SnapshotLogger, type SnapshotMirrors, silentSnapshotLogger } from './snapshot-service-deps.ts';
import { SnapshotTrustRecords } from './snapshot-trust-records.ts';

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
  readonly #records: SnapshotTrustRecords;
  #flight = new SingleFlight<string, SnapshotInfo>();
  #sem: Semaphore;
  #prepared: Promise<void> | undefined;
  readonly #background: BackgroundSnapshots;
  /** Repo key → the commit of the snapshot last served or generated (the console's "latest"). */
  #lastCommit = new Map<string, string>();
  #unsubscribe: () => void;
  #unsubscribeFetched: () => void;
  readonly #prebuilds: AnchorPrebuilds;

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
    this.log = opts.log ?? silentSnapshotLogger;
    this.#sem = new Semaphore(opts.concurrency ?? DEFAULTS.snapshotGenerateConcurrency);
    this.#records = new SnapshotTrustRecords(this.verifiedDir, this.blobs, () => this.#prepare());
    this.#prebuilds = new AnchorPrebuilds(this.anchors, this.log, () => this.#prepare());
    this.#background = new BackgroundSnapshots(
      this.publicUrl,
      this.debounceMs,
      this.log,
      (key, dir, commit, base) => this.snapshot(key, dir, commit, this.#origin(key, base)),
    );
    this.#unsubscribe =
      this.mirrors.onDefaultBranchMoved?.((ev) => this.#background.defaultBranchMoved(ev)) ?? (() => {});
    this.#unsubscribeFetched =
      (opts.prebuildAnchors ?? DEFAULTS.snapshotPrebuildAnchors) && this.mirrors.onFetched
        ? this.mirrors.onFetched((ev) => this.#prebuilds.fetched(ev))
        : () => {};
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
      this.#background.watch(r.key, path, this.publicUrl ?? requestBase ?? '');
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
    const found = await this.#records.trusted(refName);
    if (found) return { key, commit, ...found, generated: false, staleSeconds: null };
    return this.#flight.do(`${key}\0${commit}`, async () => {
      const again = await this.#records.trusted(refName);
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
      const found = await this.#records.trusted(refName);
      if (!found) continue;
      const at = await stat(this.#records.pathOf(refName)).then(
        (st) => st.mtimeMs,
        () => 0,
      );
      if (!best || at > best.generatedAt) best = { commit, ...found, generatedAt: Math.round(at) };
    }
    return best;
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
      const { digest, size } = await writeSnapshotBlob({
        key,
        dir,
        commit,
        originUrl,
        work,
        zstdLevel: this.zstdLevel,
        anchors: this.anchors,
        blobs: this.blobs,
        log: this.log,
      });
      const published = await publishSnapshotRef(this.refs, this.blobs, refName, digest);
      await this.#records.record(refName, digest);
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

  /** Waits for background generations and anchor prebuilds in progress (tests). */
  async idle(): Promise<void> {
    while (this.#background.running.size > 0 || this.#prebuilds.size > 0)
      await Promise.allSettled([...this.#background.running, ...this.#prebuilds.running]);
  }

  /** Whether a background generation is scheduled (debouncing) or running. */
  get busy(): boolean {
    return this.#background.busy;
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    this.#unsubscribeFetched();
    this.#prebuilds.close(); // a prebuild's git is killed; a request that joined it fails like at any close
    this.#background.close();
    await this.idle();
  }
}
