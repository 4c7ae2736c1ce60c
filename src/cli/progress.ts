// Progress display of push and pull: one bar on stderr, only on a terminal
// and never with --json. Value = bytes; the line also shows blobs done of
// total, speed and ETA. Drawn once per blob even when files share it.

import type cliProgressTypes from 'cli-progress';
import type { ProgressListener } from '../library/progress-events.ts';
import { noProgress, type ProgressSink } from '../sync/transfer.ts';
import { formatBytes } from './output.ts';

/** A progress sink for the terminal; cli-progress is only loaded when one is drawn. */
export async function createProgress(enabled: boolean): Promise<ProgressSink> {
  if (!enabled || !process.stderr.isTTY) return noProgress;
  const cliProgress = (await import('cli-progress')).default;
  let bar: cliProgressTypes.SingleBar | undefined;
  let started = 0;
  let done = 0;
  let blobs = 0;
  let value = 0;
  const payload = () => {
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    return { blobsDone: done, blobs, moved: formatBytes(value), rate: `${formatBytes(value / secs)}/s` };
  };
  return {
    start(label, nBlobs, bytes) {
      if (nBlobs === 0) return;
      started = Date.now();
      blobs = nBlobs;
      done = 0;
      value = 0;
      bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {blobsDone}/{blobs} files | {moved} | {rate} | ETA {eta_formatted}`,
          hideCursor: true,
          clearOnComplete: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.max(1, bytes), 0, payload());
    },
    bytes(n) {
      value += n;
      bar?.update(value, payload());
    },
    blobDone() {
      done++;
      bar?.update(value, payload());
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

/**
 * The terminal's progress as a listener of the library's events: push and
 * pull commands call the library, which reports through events only.
 */
export async function createProgressListener(enabled: boolean): Promise<ProgressListener | undefined> {
  const sink = await createProgress(enabled);
  if (sink === noProgress) return undefined;
  return (e) => {
    if (e.type === 'start') sink.start(e.operation, e.blobs, e.bytes);
    else if (e.type === 'bytes') sink.bytes(e.bytes);
    else if (e.type === 'blob') sink.blobDone(e);
    else sink.stop();
  };
}
