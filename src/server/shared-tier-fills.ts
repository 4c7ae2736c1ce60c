// The tier stack's reads of its shared tier (tiered-blob-store.ts): a miss
// of both upper tiers starts (or joins) the one Fill of that blob (fill.ts):
// a single upstream read teed into the disk tier's temp file, which every
// waiting client follows as it grows — 100 concurrent GETs of a cold blob are
// one read of the shared tier, and each client gets bytes as they arrive. A
// failed fill reaches every reader and is forgotten, so the next request
// starts a fresh one.
//
// Ranged cold reads: a range is passed down to the shared tier (a ranged
// read, streamed straight through) unless a fill of the blob is already in
// progress and has reached, or will soon reach, the range's start
// (fillFollowWindowBytes), in which case the range follows the fill. A
// ranged cold read also starts a background fill (fillOnRangeRead), so the
// next reader is warm; parallel range downloads of a big snapshot therefore
// cost the shared tier at most one whole read plus the ranges that ran ahead
// of it, and never make a small range wait for the whole blob.

import { Readable } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { BlobNotFoundError, HoardError } from '../core/errors.ts';
import { SingleFlight } from '../core/single-flight.ts';
import type { BlobHandle } from '../store/blob-handle.ts';
import type { BlobInfo, BlobStore } from '../store/blob-store.ts';
import { Fill } from './fill.ts';
import type { DiskTier, TierHooks, TierName } from './tier-types.ts';

export interface SharedTierFillsOptions {
  shared: BlobStore;
  /** Where fills write (its positional writer). */
  disk: DiskTier;
  hooks: TierHooks;
  fillOnRangeRead?: boolean;
  fillFollowWindowBytes?: number;
  /** A fill published its verified temp file as the disk tier's copy. */
  published(digest: Digest): void;
}

export class SharedTierFills {
  readonly #shared: BlobStore;
  readonly #disk: DiskTier;
  readonly #hooks: TierHooks;
  readonly #fillOnRange: boolean;
  readonly #followWindow: number;
  readonly #published: (digest: Digest) => void;
  readonly #fills = new Map<Digest, Fill>();
  readonly #stats = new SingleFlight<Digest, BlobInfo | undefined>();
  /** Fills started (one upstream read each), for tests and metrics. */
  started = 0;

  constructor(opts: SharedTierFillsOptions) {
    this.#shared = opts.shared;
    this.#disk = opts.disk;
    this.#hooks = opts.hooks;
    this.#fillOnRange = opts.fillOnRangeRead ?? DEFAULTS.fillOnRangeRead;
    this.#followWindow = opts.fillFollowWindowBytes ?? DEFAULTS.fillFollowWindowBytes;
    this.#published = opts.published;
  }

  get inFlight(): number {
    return this.#fills.size;
  }

  /**
   * Opens a blob the upper tiers lack: through its fill (started now unless
   * `ranged`), or, for a range with no fill in flight, by its size alone
   * (each range then passed down or following a fill). Undefined if the
   * shared tier does not have it either.
   */
  async open(digest: Digest, ranged: boolean): Promise<BlobHandle<TierName> | undefined> {
    let fill = this.#fills.get(digest);
    if (fill) this.#hooks.coalesced?.();
    else if (!ranged) fill = this.#start(digest);
    if (fill) {
      try {
        const size = await fill.ready;
        this.#hooks.hit?.('shared', digest);
        return this.#handle(digest, fill, size);
      } catch (err) {
        if (err instanceof BlobNotFoundError) {
          this.#hooks.miss?.('shared');
          return undefined;
        }
        throw err;
      }
    }
    // Ranged and no fill in flight: learn the size (one stat per key at a time).
    const info = await this.stat(digest);
    if (!info) {
      this.#hooks.miss?.('shared');
      return undefined;
    }
    this.#hooks.hit?.('shared', digest);
    return this.#handle(digest, undefined, info.size);
  }

  /** The blob's size from a fill that knows it, else the shared tier's stat (one per key at a time). */
  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    const fill = this.#fills.get(digest);
    if (fill && fill.size >= 0) return { digest, size: fill.size };
    return this.#stats.do(digest, () => this.#shared.stat(digest));
  }

  /** Waits for every fill in flight to settle (they never reject). */
  async close(): Promise<void> {
    await Promise.all([...this.#fills.values()].map((f) => f.settled));
  }

  #start(digest: Digest, knownSize?: number): Fill {
    const fill = new Fill(digest, this.#shared, this.#disk, knownSize);
    this.started++;
    this.#fills.set(digest, fill);
    fill.settled.then(() => {
      // Forget the fill first, so a request after a failure starts afresh.
      if (this.#fills.get(digest) === fill) this.#fills.delete(digest);
      this.#hooks.fillDone?.((performance.now() - fill.startedAt) / 1000, fill.state === 'done');
      if (fill.published) this.#published(digest);
    });
    return fill;
  }

  #handle(digest: Digest, fill: Fill | undefined, size: number): BlobHandle<TierName> {
    return {
      size,
      tier: 'shared',
      stream: (start, end) => {
        if (end <= start) return Readable.from([]);
        let f = fill ?? this.#fills.get(digest);
        if (f && f.state !== 'failed' && start <= f.written + this.#followWindow) return f.reader(start, end);
        // Pass the range down to the shared tier, and warm the disk tier in the background.
        if (!f && this.#fillOnRange) f = this.#start(digest, size);
        return passDown(this.#shared, digest, start, end);
      },
      close() {},
    };
  }
}

function passDown(shared: BlobStore, digest: Digest, start: number, end: number): Readable {
  // A lazily opened upstream ranged read, exposed as a plain Readable.
  return Readable.from(
    (async function* () {
      const src = await shared.read(digest, { offset: start, length: end - start });
      let got = 0;
      for await (const chunk of src as AsyncIterable<Buffer>) {
        got += chunk.byteLength;
        yield chunk;
      }
      if (got !== end - start)
        throw new HoardError(
          'HOARD_EREMOTE',
          `shared tier sent ${got} of ${end - start} bytes of a range of ${digest}`,
        );
    })(),
  );
}
