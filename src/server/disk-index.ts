// The disk tier's index: every blob on disk with its size and last use, in
// least-recently-used order (a Map re-inserted on every use), and the bound
// (`--max-disk`) it keeps the tier under while serving.
//
// - With a shared remote the disk is a cache: room is made by evicting the
//   least recently used blobs (reads count, not only writes).
// - Without one the disk is the authoritative store: only garbage (blobs no
//   ref reaches, see gc.ts) is evicted, least recently used first, and never
//   a blob used within the grace period; when only live data is left, writes
//   get 507 (HOARD_ENO_SPACE).
//
// Persistence: the index is saved to `<data>/index/lru` (one `hex size
// usedMs` line per blob, LRU first) atomically every indexSaveIntervalMs and
// at close. Start-up loads that file and serves at once; a background scan
// then reconciles it with the blobs directory (blobs the index does not know
// join at the cold end, ordered by mtime; entries whose file is gone are
// dropped). Until the scan ends, eviction works on what the index knows.

import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, digestFromHex, hexOf } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { isErrno, writeFileAtomic } from '../store/fs-atomic.ts';
import type { FsBlobStore } from '../store/fs-blob-store.ts';
import { largestOf } from '../store/tier-usage.ts';

/** Entries the eviction scan skips between yields to the event loop (~1 ms of work). */
const EVICT_SCAN_YIELD_EVERY = 4096;

interface Entry {
  size: number;
  used: number;
  /** Order of the last #set (an eviction pass skips entries set after it began). */
  seq: number;
}

export interface DiskIndexOptions {
  maxBytes: number;
  /** 'cache': evict any blob (a shared remote holds them); 'authoritative': evict garbage only. */
  mode: 'cache' | 'authoritative';
  /**
   * Computes the live set (authoritative mode). `onDisk` says whether the
   * index knows a blob: the set needs no digest the disk does not hold.
   */
  liveSet?: (onDisk: (digest: Digest) => boolean) => Promise<{ has(digest: Digest): boolean }>;
  graceMs?: number;
  onEvict?: (digest: Digest, size: number) => void;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

export class DiskIndex {
  readonly disk: FsBlobStore;
  readonly opts: DiskIndexOptions;
  #entries = new Map<Digest, Entry>();
  #bytes = 0;
  /** Bytes reserved by writes in progress (concurrent writers must not overshoot the bound together). */
  #pending = 0;
  /** Writers waiting for reservations of others to end. */
  #waiters: (() => void)[] = [];
  #dirty = false;
  #seq = 1;
  #timer: NodeJS.Timeout | undefined;
  #evicting: Promise<void> | undefined;
  #reconciled: Promise<void> | undefined;
  readonly path: string;
  evictions = 0;

  constructor(disk: FsBlobStore, opts: DiskIndexOptions) {
    this.disk = disk;
    this.opts = opts;
    this.path = join(disk.root, 'index', 'lru');
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes reserved by writes in progress. */
  get pending(): number {
    return this.#pending;
  }

  get count(): number {
    return this.#entries.size;
  }

  /** Digests in LRU order (least recently used first). */
  order(): Digest[] {
    return [...this.#entries.keys()];
  }

  /** The `n` largest blobs on disk, largest first (one pass over the index, for the console). */
  largest(n: number): { digest: Digest; size: number }[] {
    const entries = this.#entries;
    return largestOf(
      (function* () {
        for (const [digest, e] of entries) yield { digest, size: e.size };
      })(),
      n,
    );
  }

  /** Loads the saved index (fast) and starts the background reconcile scan. */
  async open(): Promise<void> {
    await mkdir(join(this.disk.root, 'index'), { recursive: true });
    try {
      const text = await readFile(this.path, 'utf8');
      for (const line of text.split('\n')) {
        const [hex, sizeText, usedText] = line.split(' ');
        const size = Number(sizeText);
        const used = Number(usedText);
        // Skip a damaged line: the reconcile scan re-adds its blob, if present, at the cold end.
        if (!hex || !/^[0-9a-f]{64}$/.test(hex) || !Number.isSafeInteger(size) || size < 0) continue;
        this.#set(digestFromHex(hex), size, Number.isFinite(used) ? used : 0);
      }
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    this.#reconciled = this.#reconcile().catch((err) =>
      this.opts.log?.('disk index reconcile failed', { err: String(err) }),
    );
    this.#timer = setInterval(() => {
      void this.save();
    }, DEFAULTS.indexSaveIntervalMs);
    this.#timer.unref();
  }

  /** Resolves when the start-up scan is done (tests). */
  reconciled(): Promise<void> {
    return this.#reconciled ?? Promise.resolve();
  }

  async #reconcile(): Promise<void> {
    const startedKnown = new Set(this.#entries.keys());
    const seen = new Set<Digest>();
    const unknown: { digest: Digest; size: number; used: number }[] = [];
    for await (const b of this.disk.list()) {
      seen.add(b.digest);
      if (this.#entries.has(b.digest)) continue;
      const st = await stat(this.disk.fileOf(b.digest)).catch(() => undefined);
      if (st) unknown.push({ digest: b.digest, size: b.size, used: st.mtimeMs });
    }
    // Entries known at start whose file is gone: drop.
    for (const d of startedKnown) if (!seen.has(d) && this.#entries.has(d)) this.remove(d);
    // Unknown blobs (added behind our back, or before the index existed) join at the cold end.
    unknown.sort((a, b) => a.used - b.used);
    const rebuilt = new Map<Digest, Entry>();
    for (const u of unknown)
      if (!this.#entries.has(u.digest))
        rebuilt.set(u.digest, { size: u.size, used: u.used, seq: this.#seq++ });
    for (const [d, e] of this.#entries) rebuilt.set(d, e);
    this.#entries = rebuilt;
    this.#bytes = 0;
    for (const e of rebuilt.values()) this.#bytes += e.size;
    this.#dirty = true;
    await this.#maybeEvict();
  }

  #set(digest: Digest, size: number, used: number): void {
    const old = this.#entries.get(digest);
    if (old) {
      this.#entries.delete(digest);
      this.#bytes -= old.size;
    }
    this.#entries.set(digest, { size, used, seq: this.#seq++ });
    this.#bytes += size;
    this.#dirty = true;
  }

  /** A blob was read: it becomes the most recently used. */
  touch(digest: Digest, size: number): void {
    this.#set(digest, size, Date.now());
  }

  /**
   * Keeps a blob from eviction until the returned function is called: a PUT
   * with a shared tier stores the disk copy first and uploads from it, and
   * concurrent writers making room must not evict it in between (the PUT
   * would fail with a 404 for a blob it just stored). Counted, so overlapping
   * pins of one digest nest.
   */
  pin(digest: Digest): () => void {
    this.#pinned.set(digest, (this.#pinned.get(digest) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#pinned.get(digest) ?? 1) - 1;
      if (n > 0) this.#pinned.set(digest, n);
      else this.#pinned.delete(digest);
    };
  }

  readonly #pinned = new Map<Digest, number>();

  /** A blob was used from an upper tier: refresh it only if the disk holds it. */
  touchIfKnown(digest: Digest): void {
    const e = this.#entries.get(digest);
    if (e) this.#set(digest, e.size, Date.now());
  }

  /** A blob was added to the disk tier. */
  add(digest: Digest, size: number): void {
    this.#set(digest, size, Date.now());
    void this.#maybeEvict();
  }

  remove(digest: Digest): void {
    const e = this.#entries.get(digest);
    if (!e) return;
    this.#entries.delete(digest);
    this.#bytes -= e.size;
    this.#dirty = true;
  }

  /**
   * Makes room for `incoming` bytes before they are written. In
   * authoritative mode, throws HOARD_ENO_SPACE (507) when only live data
   * (or data within the grace period) is left.
   */
  async reserve(incoming: number): Promise<void> {
    const max = this.opts.maxBytes;
    const over = () => max > 0 && this.#bytes + this.#pending + incoming > max;
    const deadline = Date.now() + DEFAULTS.diskReserveWaitMs;
    while (over()) {
      // A pass already running was sized for another writer: join it, then run our own
      // while evicting still makes progress.
      for (let before = Number.POSITIVE_INFINITY; over() && this.#bytes < before; ) {
        before = this.#bytes;
        await this.#evict(this.#pending + incoming);
      }
      // Still over with other writes in progress: wait for one to land, then evict again.
      if (!over() || this.#pending === 0 || Date.now() > deadline) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    if (over()) {
      if (this.opts.mode === 'authoritative')
        throw new HoardError(
          'HOARD_ENO_SPACE',
          `disk bound reached: ${this.#bytes} of ${max} bytes hold live data; cannot store ${incoming} more`,
          { hint: 'raise --max-disk, delete refs that are no longer needed, or add a shared --remote' },
        );
      this.opts.log?.('disk bound exceeded: nothing left to evict', { bytes: this.#bytes, incoming });
    }
    this.#pending += incoming;
  }

  /** Ends a reservation (after the blob was added, or its write failed). */
  unreserve(bytes: number): void {
    this.#pending = Math.max(0, this.#pending - bytes);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #maybeEvict(): Promise<void> {
    if (!this.opts.maxBytes || this.#bytes <= this.opts.maxBytes) return Promise.resolve();
    return this.#evict(0);
  }

  /** One eviction pass at a time; concurrent callers share it. */
  #evict(incoming: number): Promise<void> {
    this.#evicting ??= this.#evictPass(incoming).finally(() => {
      this.#evicting = undefined;
    });
    return this.#evicting;
  }

  async #evictPass(incoming: number): Promise<void> {
    const max = this.opts.maxBytes;
    const target = Math.max(0, max - incoming);
    if (this.#bytes <= target) return;
    // Only entries set before this point are candidates. The live set keeps only digests the
    // index holds when the marker meets them: an entry set later (a write, the start-up scan
    // finding an unknown blob) may be live without being in the set, so this pass leaves it.
    const passSeq = this.#seq;
    let live: { has(digest: Digest): boolean } | undefined;
    if (this.opts.mode === 'authoritative')
      live = (await this.opts.liveSet?.((d) => this.#entries.has(d))) ?? new Set();
    const grace = this.opts.graceMs ?? DEFAULTS.gcGraceMs;
    const now = Date.now();
    // The Map itself, not a copy (millions of entries): a blob touched during the pass moves
    // to the end and is met again there, set after the pass began, and skipped.
    let sinceYield = 0;
    for (const [digest, e] of this.#entries) {
      // Entries that stay are skipped synchronously: yield now and then so a disk of
      // millions of live blobs does not hold up requests.
      if (++sinceYield >= EVICT_SCAN_YIELD_EVERY) {
        sinceYield = 0;
        await nextTurn();
      }
      if (this.#bytes <= target) break;
      if (e.seq >= passSeq || this.#pinned.has(digest)) continue;
      if (live && (live.has(digest) || now - e.used < grace)) continue;
      if (this.#entries.get(digest) !== e) continue; // touched meanwhile
      await this.disk.delete(digest);
      this.remove(digest);
      this.evictions++;
      this.opts.onEvict?.(digest, e.size);
    }
  }

  async save(): Promise<void> {
    if (!this.#dirty) return;
    this.#dirty = false;
    const lines: string[] = [];
    for (const [d, e] of this.#entries) lines.push(`${hexOf(d)} ${e.size} ${Math.round(e.used)}`);
    try {
      await writeFileAtomic(this.path, `${lines.join('\n')}\n`, join(this.disk.root, 'index'));
    } catch (err) {
      this.#dirty = true;
      this.opts.log?.('saving the disk index failed', { err: String(err) });
    }
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#reconciled;
    await this.#evicting;
    await this.save();
  }
}
