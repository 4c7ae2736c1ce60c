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
// no filter; see git-routes.ts) gets it, sideband-framed, while it arrives.
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
//   renamed into place by the caller. A failure at any point fails the
//   readers (a client gets an error, its own git verifies what it got
//   anyway), publishes nothing, and the next request starts a new fill.
// - Bounded: the ref list and advertisement by mirror-upstream-v2.ts, the
//   pack by MAX_PACK_BYTES (counted here and given to index-pack), memory by
//   one pkt-line at a time with backpressure from the spool and index-pack.

import { once } from 'node:events';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Clock } from '../core/clock.ts';
import { HoardError } from '../core/errors.ts';
import type { GitLogger } from './git-logger.ts';
import { gitFailure, runGit, spawnGit } from './git-process.ts';
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
import { PktError, readPkts } from './pkt-line.ts';

/** Largest pack accepted from an upstream when creating a mirror (also index-pack's --max-input-size). */
export const MAX_PACK_BYTES = 32 * 1024 ** 3;

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
  #spool: PackSpool | null = null;
  #packStarted!: () => void;
  /** Resolves when the spool exists (or the fill ended without one). */
  readonly #packReady: Promise<void>;
  #settle!: (err?: unknown) => void;
  /**
   * Resolves when the mirror was published (renamed into place), rejects when
   * it will not be. A client served from the pack gets its answer's last
   * packet only then: a clone that succeeded through hoard means the mirror
   * exists, and a pack hoard refused is never a client's successful clone.
   */
  readonly published: Promise<void>;

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
    this.published = new Promise((resolve, reject) => {
      this.#settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    this.published.catch(() => {});
  }

  /** The caller renamed the repository into place (or failed to): see `published`. */
  settle(err?: unknown): void {
    this.#settle(err ?? undefined);
  }

  /** Whether `oid` is one of the tips this fill fetches (a client may want it from the pack). */
  hasTip(oid: string): boolean {
    return this.#tips.has(oid);
  }

  /**
   * A reader of the pack from its first byte, as it arrives; null when there
   * is no pack (an empty upstream), or it failed or is gone (published: the
   * mirror serves it now).
   */
  async openPack(): Promise<Readable | null> {
    await this.#packReady;
    return this.#spool?.reader() ?? null;
  }

  /**
   * Creates the repository: refs, one pack, verified. Throws FallBack (before
   * any pack was fetched) when the upstream cannot be mirrored this way.
   */
  async run(): Promise<void> {
    try {
      await this.#run();
    } catch (err) {
      this.#failRefs(err);
      this.#spool?.fail(err as Error);
      this.#settle(err);
      throw err;
    } finally {
      this.#packStarted();
    }
  }

  /** Removes the spool (after the mirror was published or the fill failed); readers keep reading. */
  async cleanup(): Promise<void> {
    this.#packStarted();
    this.#settle(new Error('the mirror was not published'));
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
    const opts = { cwd: o.dir, timeoutMs: o.timeoutMs, signal: o.signal };
    if (input) await runGit(['update-ref', '--stdin'], { ...opts, input });
    const target = head?.symref ?? refs.unbornHead;
    if (target?.startsWith('refs/heads/')) await runGit(['symbolic-ref', 'HEAD', target], opts);
    else if (head && !head.symref) await runGit(['update-ref', '--no-deref', 'HEAD', head.oid], opts);
    // Loose refs: the maintenance that follows every creation packs them (`pack-refs --all`);
    // packing here would add its time to the clients waiting for the publication.
    o.log.debug(
      { repo: o.key, refs: refs.refs.length, packMs: t1 - t0, refsMs: Date.now() - t1 },
      'git: cold fill indexed the pack and wrote the refs',
    );
  }

  async #fetchPack(t: NonNullable<ReturnType<typeof v2Transport>>, caps: Map<string, string>): Promise<void> {
    const o = this.#o;
    const spool = await PackSpool.create(o.spoolPath);
    this.#spool = spool;
    this.#packStarted();
    const ip = spawnGit(
      ['index-pack', '--stdin', '--check-self-contained-and-connected', `--max-input-size=${MAX_PACK_BYTES}`],
      { cwd: o.dir, stdin: true, timeoutMs: o.timeoutMs, signal: o.signal },
    );
    ip.child.stdout!.resume();
    const stdin = ip.child.stdin!;
    const bad = (why: string) => new HoardError('HOARD_EGIT', `upstream fetch: ${why}`);
    try {
      const received = Date.now();
      const answer = await t.rpc(fetchRequest(caps, [...this.#tips]));
      let state: 'start' | 'pack' | 'end' = 'start';
      let bytes = 0;
      for await (const p of readPkts(answer)) {
        if (state === 'end') throw bad('data after the pack');
        if (state === 'start') {
          const line = p.kind === 'data' ? p.payload.toString('latin1').replace(/\n$/, '') : '';
          if (line === 'packfile') state = 'pack';
          else if (line.startsWith('ERR ')) throw bad('the upstream reported an error');
          else throw bad(`unexpected section ${JSON.stringify(line.slice(0, 40))}`);
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
        bytes += data.length;
        if (bytes > MAX_PACK_BYTES) throw bad(`pack larger than ${MAX_PACK_BYTES} bytes`);
        await spool.append(data);
        if (!stdin.write(data)) await Promise.race([once(stdin, 'drain'), ip.done]);
        if (ip.child.exitCode !== null || stdin.destroyed) break;
      }
      if (state !== 'end') {
        const exit = ip.child.exitCode !== null ? await ip.done : null;
        if (exit && exit.code !== 0) throw gitFailure(['index-pack'], exit);
        throw bad('the pack ended early');
      }
      stdin.end();
      // Clients have every byte now; each one's own git verifies its copy.
      spool.finish();
      o.log.debug({ repo: o.key, bytes, ms: Date.now() - received }, 'git: cold fill received the pack');
      const exit = await ip.done;
      if (exit.code !== 0) throw gitFailure(['index-pack'], exit);
    } catch (err) {
      ip.kill();
      if (err instanceof PktError) throw bad(err.message);
      throw err;
    }
  }
}
