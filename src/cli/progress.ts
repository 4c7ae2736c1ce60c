// Progress of push and pull (and their hash phase) on stderr:
//
// - on a terminal, one bar per phase (bytes, files done of total, rate, ETA);
// - elsewhere (CI logs), one plain line every progressPlainIntervalMs —
//   phase, files, bytes, rate, ETA — printed by a ticker, so a stalled
//   transfer still shows it is alive; a last line when a phase that printed
//   ends. Nothing for phases shorter than one interval;
// - nothing with --json unless HOARD_PROGRESS=plain asks for lines anyway.
//
// HOARD_PROGRESS=auto|bar|plain|off overrides the choice (and
// HOARD_PROGRESS_INTERVAL_MS the plain lines' interval). Rates and ETAs are
// an exponentially weighted moving average over time (RateMeter): the ETA
// of a raw per-update rate jumped 11m35s → 15s → 3s → 2m10s as big and small
// files alternated. Time comes from an injected Clock, so tests drive it.

import { setTimeout as sleepFor } from 'node:timers/promises';
import type cliProgressTypes from 'cli-progress';
import { type Clock, sleepOn } from '../core/clock.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';
import type { ProgressListener } from '../library/progress-events.ts';
import { noProgress, type ProgressSink } from '../sync/transfer.ts';
import { formatBytes } from './output.ts';

/**
 * A rate smoothed over time: each sample moves the estimate toward the rate
 * since the previous sample by 1 - e^(-dt/tau), so the weight of a sample is
 * its duration, not how many updates happened to fall in it.
 */
export class RateMeter {
  readonly #tauMs: number;
  #lastAt: number;
  #lastTotal = 0;
  #rate: number | undefined;

  constructor(now: number, tauMs: number = DEFAULTS.progressRateTauMs) {
    this.#tauMs = tauMs;
    this.#lastAt = now;
  }

  /** Records that `total` units were done by `now`; samples closer than 100 ms are folded into the next. */
  sample(now: number, total: number): void {
    const dt = now - this.#lastAt;
    if (dt < 100) return;
    const instant = ((total - this.#lastTotal) * 1000) / dt;
    const w = 1 - Math.exp(-dt / this.#tauMs);
    this.#rate = this.#rate === undefined ? instant : this.#rate + w * (instant - this.#rate);
    this.#lastAt = now;
    this.#lastTotal = total;
  }

  /** Units per second, or undefined before the first sample. */
  get rate(): number | undefined {
    return this.#rate;
  }

  /** Seconds left for `remaining` units at the smoothed rate, or undefined when unknown. */
  eta(remaining: number): number | undefined {
    if (remaining <= 0) return 0;
    if (this.#rate === undefined || this.#rate <= 0) return undefined;
    return remaining / this.#rate;
  }
}

/** `45s`, `3m05s`, `2h10m`; `?` when unknown. */
export function formatDuration(secs: number | undefined): string {
  if (secs === undefined || !Number.isFinite(secs)) return '?';
  const s = Math.round(secs);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One phase's counters, shared by the bar and the plain lines. */
class Phase {
  done = 0;
  value = 0;
  readonly meter: RateMeter;
  readonly startedAt: number;
  readonly label: string;
  readonly blobs: number;
  readonly bytes: number;

  constructor(label: string, blobs: number, bytes: number, now: number) {
    this.label = label;
    this.blobs = blobs;
    this.bytes = bytes;
    this.meter = new RateMeter(now);
    this.startedAt = now;
  }

  rateText(now: number): string {
    this.meter.sample(now, this.value);
    const avg = (this.value * 1000) / Math.max(1, now - this.startedAt);
    return `${formatBytes(this.meter.rate ?? avg)}/s`;
  }

  etaText(): string {
    return formatDuration(this.meter.eta(this.bytes - this.value));
  }
}

export interface PlainProgressOptions {
  write: (line: string) => void;
  clock?: Clock;
  intervalMs?: number;
}

/** Real time whose pending sleeps never keep the process alive (a ticker must not delay exit). */
const unrefClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleepFor(ms, undefined, { signal, ref: false }),
};

/** Plain progress lines every interval (see the module header). */
export function plainProgress(opts: PlainProgressOptions): ProgressSink {
  const clock = opts.clock ?? unrefClock;
  const interval = opts.intervalMs ?? DEFAULTS.progressPlainIntervalMs;
  let phase: Phase | undefined;
  let ticker: AbortController | undefined;
  let printed = false;
  const line = (p: Phase, final: boolean) => {
    const now = clock.now();
    const rate = p.rateText(now); // samples the meter before the ETA reads it
    const pct = p.bytes > 0 ? ` (${Math.floor((p.value * 100) / p.bytes)}%)` : '';
    const tail = final
      ? `done in ${formatDuration((now - p.startedAt) / 1000)}`
      : `ETA ${p.etaText()}, ${formatDuration((now - p.startedAt) / 1000)} elapsed`;
    opts.write(
      `hoard: ${p.label} ${p.done}/${p.blobs} files, ${formatBytes(p.value)}/${formatBytes(p.bytes)}${pct}, ` +
        `${rate}, ${tail}\n`,
    );
  };
  const tick = async (p: Phase, signal: AbortSignal) => {
    for (;;) {
      try {
        await sleepOn(clock, interval, signal);
      } catch {
        return; // stopped
      }
      if (phase !== p) return;
      line(p, false);
      printed = true;
    }
  };
  const stop = () => {
    ticker?.abort();
    ticker = undefined;
    if (phase && printed) line(phase, true);
    phase = undefined;
    printed = false;
  };
  return {
    start(label, blobs, bytes) {
      stop();
      if (blobs === 0) return;
      phase = new Phase(label, blobs, bytes, clock.now());
      ticker = new AbortController();
      void tick(phase, ticker.signal);
    },
    bytes(n) {
      if (phase) phase.value += n;
    },
    blobDone() {
      if (phase) phase.done++;
    },
    stop,
  };
}

/** A bar on a terminal stream; cli-progress is only loaded when one is drawn. */
async function barProgress(stream: NodeJS.WriteStream, clock: Clock): Promise<ProgressSink> {
  const cliProgress = (await import('cli-progress')).default;
  let bar: cliProgressTypes.SingleBar | undefined;
  let phase: Phase | undefined;
  const payload = (p: Phase) => ({
    blobsDone: p.done,
    blobs: p.blobs,
    moved: formatBytes(p.value),
    rate: p.rateText(clock.now()),
    etaText: p.etaText(),
  });
  return {
    start(label, blobs, bytes) {
      if (blobs === 0) return;
      phase = new Phase(label, blobs, bytes, clock.now());
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: `${label} [{bar}] {blobsDone}/{blobs} files | {moved} | {rate} | ETA {etaText}`,
          hideCursor: true,
          clearOnComplete: true,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.max(1, bytes), 0, payload(phase));
    },
    bytes(n) {
      if (!phase) return;
      phase.value += n;
      bar?.update(phase.value, payload(phase));
    },
    blobDone() {
      if (!phase) return;
      phase.done++;
      bar?.update(phase.value, payload(phase));
    },
    stop() {
      bar?.stop();
      bar = undefined;
      phase = undefined;
    },
  };
}

export type ProgressMode = 'auto' | 'bar' | 'plain' | 'off';

export interface CreateProgressOptions {
  /** --json: no progress unless asked for by HOARD_PROGRESS=plain. */
  json?: boolean;
  env?: NodeJS.ProcessEnv;
  stream?: NodeJS.WriteStream;
  clock?: Clock;
}

export function progressMode(env: NodeJS.ProcessEnv = process.env): ProgressMode {
  const v = (env.HOARD_PROGRESS ?? 'auto').toLowerCase();
  if (v === 'auto' || v === 'bar' || v === 'plain' || v === 'off') return v;
  throw new HoardError('HOARD_EUSAGE', `HOARD_PROGRESS=${JSON.stringify(v)} is not a progress mode`, {
    hint: 'use auto, bar, plain or off',
  });
}

/** The progress sink for a push or pull (see the module header). */
export async function createProgress(opts: CreateProgressOptions = {}): Promise<ProgressSink> {
  const stream = opts.stream ?? process.stderr;
  const clock = opts.clock ?? unrefClock;
  const env = opts.env ?? process.env;
  const mode = progressMode(env);
  const iv = env.HOARD_PROGRESS_INTERVAL_MS;
  const intervalMs = iv === undefined || iv === '' ? undefined : Number(iv);
  if (intervalMs !== undefined && !(Number.isSafeInteger(intervalMs) && intervalMs >= 1))
    throw new HoardError(
      'HOARD_EUSAGE',
      `HOARD_PROGRESS_INTERVAL_MS=${JSON.stringify(iv)} is not a whole number of ms ≥ 1`,
    );
  const plain = () => plainProgress({ write: (l) => stream.write(l), clock, intervalMs });
  if (mode === 'off') return noProgress;
  if (mode === 'plain') return plain();
  if (opts.json) return noProgress;
  if (stream.isTTY) return barProgress(stream, clock);
  if (mode === 'bar') return noProgress;
  return plain();
}

/**
 * The command's progress as a listener of the library's events: push and
 * pull commands call the library, which reports through events only.
 */
export async function createProgressListener(
  opts: CreateProgressOptions = {},
): Promise<ProgressListener | undefined> {
  const sink = await createProgress(opts);
  if (sink === noProgress) return undefined;
  return (e) => {
    if (e.type === 'start') sink.start(e.operation, e.blobs, e.bytes);
    else if (e.type === 'bytes') sink.bytes(e.bytes);
    else if (e.type === 'blob') sink.blobDone(e);
    else sink.stop();
  };
}
