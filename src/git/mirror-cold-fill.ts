// Creating a mirror with ONE upstream transfer that the first clients share
// (issue 16: a cold clone used to wait for hoard's `git clone` of the
// upstream, then clone from the new mirror: two transfers in series).
//
// hoard speaks protocol v2 to the upstream itself (mirror-upstream-v2.ts):
// `ls-refs` of HEAD, refs/heads/ and refs/tags/ (every ref with
// mirror-pull-refs), then one `fetch` wanting every advertised tip, no haves,
// `done`: the answer is a full pack. Its bytes go both into
// `git index-pack --stdin` in a new bare repository under tmp/ and into a
// spool file (mirror-pack-spool.ts) that the waiting clients read from at
// their own pace. A waiting client whose request that pack satisfies (a
// protocol v2 clone: wants among the advertised tips, no haves, no shallow,
// no filter; see git-fill-answers.ts) gets it, sideband-framed, while it arrives,
// and its answer ends as soon as the whole pack has arrived and passed the
// stream checks (pack-stream-check.ts: framing, no upstream error, header,
// trailer): the client's own git verifies the objects and their connectivity,
// as in a direct clone, and does not wait for the mirror's indexing.
//
// The mirror's `index-pack` reads the spool file once the whole pack is in it
// (directly, as its stdin: no copy through this process), at the lowest CPU
// priority (git-process.ts, lowerPriority): on a small machine the clients'
// index-packs of the same bytes are what someone waits for, and two indexings
// of one pack at equal priority made the first clone take about the sum of
// both (issue 16, docs/benchmarks.md). Requests that arrive while the mirror
// is indexed are served from the same fill (its refs, if fresh enough; its
// pack) or wait for the mirror, as before.
//
// Invariants:
// - Freshness: `refs` (what clients' ls-refs are answered with while the fill
//   runs) are exactly the refs of this fetch, and `startedAt` (taken before
//   the upstream was asked) is the mirror's freshAt once published.
// - Single flight: one fill per mirror (Mirror's clone run); every waiter
//   shares its one upstream transfer.
// - Nothing is published unverified: index-pack checks the pack (and that it
//   is self-contained and connected: every object an object of the pack
//   links to is in the pack), update-ref checks that every ref names an
//   object it holds (and branches commits); only then is the directory
//   renamed into place by the caller. A failure at any point publishes
//   nothing and the next request starts a new fill; one before the pack was
//   complete (stream checks) also fails its readers (a client gets hoard's
//   error); one after (index-pack, update-ref) is the clients' own git's to
//   find (a pack whose objects are broken or not connected fails their
//   index-pack or connectivity check, as it would fail a direct clone).
// - Peeled tags: the upstream's `peeled:` values are not served during a
//   fill (hoard cannot check them before the pack is indexed, and a clone
//   does not use them: git peels the tags it writes itself); the mirror's
//   upload-pack serves peeled values computed from its objects.
// - Bounded: the ref list and advertisement by mirror-upstream-v2.ts, the
//   pack by MAX_PACK_BYTES (counted here and given to index-pack), memory by
//   one pkt-line at a time (and a SPOOL_BATCH_BYTES batch) with backpressure
//   from the spool's writes.

import { appendFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Clock } from '../core/clock.ts';
import { HoardError } from '../core/errors.ts';
import type { GitLogger } from './git-logger.ts';
import { runGit } from './git-process.ts';
import { mirrorConfigText } from './mirror-disk.ts';
import { PackSpool } from './mirror-pack-spool.ts';
import {
  FallBack,
  fetchRequest,
  lsRefs,
  parseCapabilities,
  type UpstreamRefs,
  v2Transport,
} from './mirror-upstream-v2.ts';
import { PackStreamCheck, PackStreamError } from './pack-stream-check.ts';
import { PktError, readPkts } from './pkt-line.ts';

/** Largest pack accepted from an upstream when creating a mirror (also index-pack's --max-input-size). */
export const MAX_PACK_BYTES = 32 * 1024 ** 3;

/** How much of the pack is gathered before one append to the spool. */
const SPOOL_BATCH_BYTES = 256 * 1024;

/** The nice value of the mirror's indexing and ref writing: after anything a client waits for. */
const MIRROR_INDEX_NICE = 19;

export interface ColdFillOptions {
  key: string;
  /** The upstream URL (credentials allowed: never logged). */
  url: string;
  /** The new bare repository to create (under tmp/; the caller renames it into place). */
  dir: string;
  /** The spool file (under tmp/). */
  spoolPath: string;
  /** Ref prefixes to mirror (besides HEAD); empty: every ref. */
  prefixes: readonly string[];
  signal: AbortSignal;
  timeoutMs: number;
  clock: Clock;
  log: GitLogger;
}

export class ColdFill {
  /** Clock time before the upstream was asked for its refs: the mirror's freshAt. */
  readonly startedAt: number;
  /** The upstream's refs this fill fetches; rejects when the fill fails before knowing them. */
  readonly refs: Promise<UpstreamRefs>;
  readonly #o: ColdFillOptions;
  #setRefs!: (r: UpstreamRefs) => void;
  #failRefs!: (err: unknown) => void;
  #tips = new Set<string>();
  #outdated = false;
  #spool: PackSpool | null = null;
  #packStarted!: () => void;
  /** Resolves when the spool exists (or the fill ended without one). */
  readonly #packReady: Promise<void>;

  constructor(o: ColdFillOptions) {
    this.#o = o;
    this.startedAt = o.clock.now();
    this.refs = new Promise((resolve, reject) => {
      this.#setRefs = resolve;
      this.#failRefs = reject;
    });
    this.refs.catch(() => {}); // the caller of run() sees the failure
    this.#packReady = new Promise((r) => {
      this.#packStarted = r;
    });
  }

  /**
   * A push went through to the upstream while this fill ran (Mirror.invalidate):
   * its refs may predate the push and no longer answer a ref advertisement.
   */
  outdate(): void {
    this.#outdated = true;
  }
  get outdated(): boolean {
    return this.#outdated;
  }

  /** Whether `oid` is one of the tips this fill fetches (a client may want it from the pack). */
  hasTip(oid: string): boolean {
    return this.#tips.has(oid);
  }

  /**
   * A reader of the pack from its first byte, as it arrives; it ends once the
   * whole pack arrived and passed the stream checks, and fails if it does
   * not. null when there is no pack (an empty upstream, or one mirrored with
   * `git clone`), or it failed or is gone (published: the mirror serves it now).
   */
  async openPack(): Promise<Readable | null> {
    await this.#packReady;
    return this.#spool?.reader() ?? null;
  }

  /**
   * Creates the repository: refs, one pack, verified. Throws FallBack (before
   * any pack was spooled) when the upstream cannot be mirrored this way.
   */
  async run(): Promise<void> {
    try {
      await this.#run();
    } catch (err) {
      this.#failRefs(err);
      this.#spool?.fail(err as Error);
      throw err;
    } finally {
      this.#packStarted();
    }
  }

  /** Removes the spool (after the mirror was published or the fill failed); readers keep reading. */
  async cleanup(): Promise<void> {
    this.#packStarted();
    await this.#spool?.remove();
  }

  async #run(): Promise<void> {
    const o = this.#o;
    const t = v2Transport(o.url, { signal: o.signal, timeoutMs: o.timeoutMs });
    if (!t) throw new FallBack('no stateless transport for this scheme');
    const caps = parseCapabilities(await t.advertise());
    const refs = await lsRefs(t, caps, o.prefixes);
    const head = refs.refs.find((r) => r.name === 'HEAD');
    for (const r of refs.refs) if (r.name !== 'HEAD' || !r.symref) this.#tips.add(r.oid);
    this.#setRefs(refs);

    await runGit(['init', '--bare', '--quiet', o.dir], { timeoutMs: o.timeoutMs, signal: o.signal });
    await appendFile(join(o.dir, 'config'), mirrorConfigText());
    const t0 = Date.now();
    if (this.#tips.size > 0) await this.#fetchPack(t, caps);
    const t1 = Date.now();

    // Refs: update-ref refuses ids the repository lacks (and non-commits on branches).
    const input = refs.refs
      .filter((r) => r.name !== 'HEAD')
      .map((r) => `create ${r.name} ${r.oid}\n`)
      .join('');
    const opts = { cwd: o.dir, timeoutMs: o.timeoutMs, signal: o.signal, nice: MIRROR_INDEX_NICE };
    if (input) await runGit(['update-ref', '--stdin'], { ...opts, input });
    const target = head?.symref ?? refs.unbornHead;
    if (target?.startsWith('refs/heads/')) await runGit(['symbolic-ref', 'HEAD', target], opts);
    else if (head && !head.symref) await runGit(['update-ref', '--no-deref', 'HEAD', head.oid], opts);
    // Loose refs: the maintenance that follows every creation packs them (`pack-refs --all`).
    o.log.debug(
      { repo: o.key, refs: refs.refs.length, packMs: t1 - t0, refsMs: Date.now() - t1 },
      'git: cold fill indexed the pack and wrote the refs',
    );
  }

  /**
   * Fetches the pack into the spool, checked as it arrives (the clients read
   * it from there), then has the mirror's index-pack read the spool file
   * itself, niced: nothing of the mirror's indexing is on the way of the
   * transfer or of the clients' answers. Resolves once index-pack accepted it.
   */
  async #fetchPack(t: NonNullable<ReturnType<typeof v2Transport>>, caps: Map<string, string>): Promise<void> {
    const o = this.#o;
    const bad = (why: string) => new HoardError('HOARD_EGIT', `upstream fetch: ${why}`);
    const received = Date.now();
    const answer = await t.rpc(fetchRequest(caps, [...this.#tips]));
    let state: 'start' | 'pack' | 'end' = 'start';
    const check = new PackStreamCheck();
    let spool: PackSpool | null = null;
    let batch: Buffer[] = [];
    let batched = 0;
    try {
      for await (const p of readPkts(answer)) {
        if (state === 'end') throw bad('data after the pack');
        if (state === 'start') {
          const line = p.kind === 'data' ? p.payload.toString('latin1').replace(/\n$/, '') : '';
          if (line === 'shallow-info') throw new FallBack('the upstream is a shallow repository');
          if (line.startsWith('ERR ')) throw bad('the upstream reported an error');
          if (line !== 'packfile') throw bad(`unexpected section ${JSON.stringify(line.slice(0, 40))}`);
          state = 'pack';
          // The spool exists from the pack's first section on: clients waiting in openPack go on.
          spool = await PackSpool.create(o.spoolPath);
          this.#spool = spool;
          this.#packStarted();
          continue;
        }
        if (p.kind === 'flush') {
          state = 'end';
          continue;
        }
        if (p.kind !== 'data' || p.payload.length < 1) throw bad('unexpected packet in the pack');
        const band = p.payload[0];
        if (band === 2) continue; // progress (we asked for none)
        if (band === 3) {
          o.log.warn(
            { repo: o.key, message: p.payload.subarray(1, 500).toString('utf8') },
            'git: upstream error during mirror fetch',
          );
          throw bad('the upstream reported an error');
        }
        if (band !== 1) throw bad(`unknown sideband ${band}`);
        const data = p.payload.subarray(1);
        if (check.bytes + data.length > MAX_PACK_BYTES) throw bad(`pack larger than ${MAX_PACK_BYTES} bytes`);
        check.update(data);
        // Appended in batches: one write (and one wake-up of the readers) per SPOOL_BATCH_BYTES
        // rather than per pkt-line (~64 KiB); the end of the pack is appended at once.
        batch.push(data);
        batched += data.length;
        if (batched >= SPOOL_BATCH_BYTES) {
          await spool!.append(Buffer.concat(batch, batched));
          batch = [];
          batched = 0;
        }
      }
      if (state !== 'end') throw bad('the pack ended early');
      check.finish();
      if (batched > 0) await spool!.append(Buffer.concat(batch, batched));
    } catch (err) {
      answer.destroy();
      if (err instanceof PktError) throw bad(err.message);
      if (err instanceof PackStreamError) throw bad(err.message);
      throw err;
    }
    // Clients have every byte now and their answers end; each one's own git verifies its copy.
    spool!.finish();
    o.log.debug(
      { repo: o.key, bytes: check.bytes, ms: Date.now() - received },
      'git: cold fill received the pack',
    );
    // index-pack reads the spool file directly (no copy through this process), niced.
    const fh = await open(spool!.path, 'r');
    try {
      await runGit(
        [
          'index-pack',
          '--stdin',
          '--check-self-contained-and-connected',
          `--max-input-size=${MAX_PACK_BYTES}`,
        ],
        { cwd: o.dir, stdin: fh.fd, timeoutMs: o.timeoutMs, signal: o.signal, nice: MIRROR_INDEX_NICE },
      );
    } finally {
      await fh.close();
    }
  }
}
