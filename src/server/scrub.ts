// Background scrub of the disk tier: re-hashes every blob file against its
// name at a bounded rate (`--scrub-rate`, bytes per second; 0 = off), so
// corruption that changes no file identity (bit rot, a bad sector) is found
// even in blobs nobody reads, not first by a client. A corrupt file is
// quarantined exactly as a failed read would (TieredBlobStore.checkDisk:
// quarantine, memory copy and index entry dropped, hoard_blob_corrupt_total
// {source="scrub"}); a sound one is trusted again by the read path.
//
// Pacing: before each chunk is read, the scrub waits until the chunk's turn
// comes at the configured rate (a token bucket one chunk deep, so a long
// pause never turns into a burst). Passes run back to back with a pause
// between them (scrubPassPauseMs); the first starts scrubStartDelayMs after
// start-up, out of the way of start-up work (index reconcile, mirror
// warm-up) — reads verify what they serve from the first byte anyway.
// Clock and sleep are injectable, so tests run a pass deterministically.

import { setTimeout as sleepFor } from 'node:timers/promises';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import type { TieredBlobStore } from './tiered-blob-store.ts';

export interface ScrubOptions {
  /** Bytes hashed per second, at most (must be > 0). */
  bytesPerSecond: number;
  /** Delay before the first pass (default DEFAULTS.scrubStartDelayMs). */
  startDelayMs?: number;
  /** Pause between the end of a pass and the next (default DEFAULTS.scrubPassPauseMs). */
  passPauseMs?: number;
  /** Milliseconds clock (tests inject one). */
  now?: () => number;
  /** Waits `ms`, or rejects when `signal` aborts (tests inject one that advances their clock). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Called as bytes are hashed (metrics). */
  onBytes?: (bytes: number) => void;
  log?: (level: 'info' | 'warn', msg: string, extra?: Record<string, unknown>) => void;
}

export interface ScrubReport {
  blobsChecked: number;
  bytesChecked: number;
  /** Blobs found corrupt (and quarantined) in this pass. */
  corrupt: Digest[];
  /** Gone between the listing and the check (evicted, collected). */
  vanished: number;
}

export class Scrubber {
  readonly blobs: TieredBlobStore;
  readonly opts: ScrubOptions;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  /** Earliest clock time the next chunk may be read at. */
  #next = 0;
  passes = 0;

  constructor(blobs: TieredBlobStore, opts: ScrubOptions) {
    if (!(opts.bytesPerSecond > 0))
      throw new HoardError('HOARD_ECONFIG', 'scrub rate must be more than 0 bytes per second');
    this.blobs = blobs;
    this.opts = opts;
  }

  #now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (this.opts.sleep) return this.opts.sleep(ms, signal);
    return sleepFor(ms, undefined, { signal, ref: false });
  }

  /** Waits for the turn of a chunk of `bytes` at the configured rate. */
  async #pace(bytes: number, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const now = this.#now();
    if (this.#next > now) await this.#sleep(this.#next - now, signal);
    this.#next = Math.max(this.#next, now) + (bytes * 1000) / this.opts.bytesPerSecond;
    this.opts.onBytes?.(bytes);
  }

  /** One pass over every blob file of the disk tier. */
  async runPass(signal: AbortSignal = this.#abort.signal): Promise<ScrubReport> {
    const report: ScrubReport = { blobsChecked: 0, bytesChecked: 0, corrupt: [], vanished: 0 };
    for await (const { digest, size } of this.blobs.disk.list()) {
      signal.throwIfAborted();
      const check = await this.blobs.checkDisk(digest, 'scrub', {
        force: true,
        beforeChunk: (n) => this.#pace(n, signal),
      });
      if (check === 'absent') {
        report.vanished++;
        continue;
      }
      report.blobsChecked++;
      report.bytesChecked += size;
      if (check === 'corrupt') {
        report.corrupt.push(digest);
        this.opts.log?.('warn', 'scrub: corrupt blob quarantined', { digest });
      }
    }
    this.passes++;
    return report;
  }

  /** Starts the background passes (once). */
  start(): void {
    if (this.#loop) return;
    const signal = this.#abort.signal;
    this.#loop = (async () => {
      try {
        await this.#sleep(this.opts.startDelayMs ?? DEFAULTS.scrubStartDelayMs, signal);
        for (;;) {
          try {
            const r = await this.runPass(signal);
            this.opts.log?.('info', 'scrub pass done', {
              blobs: r.blobsChecked,
              bytes: r.bytesChecked,
              corrupt: r.corrupt.length,
            });
          } catch (err) {
            if (signal.aborted) return;
            this.opts.log?.('warn', 'scrub pass failed', { err: String(err) });
          }
          await this.#sleep(this.opts.passPauseMs ?? DEFAULTS.scrubPassPauseMs, signal);
        }
      } catch {
        // Aborted by close().
      }
    })();
  }

  /** Stops the passes and waits for the current chunk to finish. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }
}
