// Prompt collection of transfer garbage. Every socket read of a download
// and every file read of an upload is a new ArrayBuffer that is garbage a
// moment later, but V8 frees it only at its next GC, and the JS objects of a
// stream allocate so little that with Node's default young generation that
// GC comes tens of MB of chunks later: that much more peak RSS for every
// large transfer (an S3 push or pull, a snapshot restore's download).

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DEFAULTS } from './defaults.ts';

type GcFunction = (opts?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;
let gcFunction: GcFunction | null | undefined;

/**
 * V8's `gc()`: the global one when Node runs with `--expose-gc`, else
 * obtained by setting that flag only while one throwaway context is created
 * (which then has a `gc` global) and clearing it again, so no other context
 * sees it. null when this V8 refuses (then transfers simply do without).
 */
function v8Gc(): GcFunction | null {
  if (gcFunction !== undefined) return gcFunction;
  const global = (globalThis as { gc?: unknown }).gc;
  if (typeof global === 'function') return (gcFunction = global as GcFunction);
  try {
    setFlagsFromString('--expose-gc');
    try {
      gcFunction = runInNewContext('gc') as GcFunction;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  } catch {
    gcFunction = null;
  }
  if (typeof gcFunction !== 'function') gcFunction = null;
  return gcFunction;
}

let bytesSinceGc = 0;

/**
 * Counts bytes a transfer has moved (all transfers of the process
 * together) and asks V8 for a young-generation GC (a scavenge) every
 * DEFAULTS.transferGcEveryBytes (see the header): without it, 40–60 MB of
 * a 1 GiB S3 push's or pull's peak RSS, and ~70 MB of a snapshot restore's.
 * A scavenge of a young generation this small takes well under a
 * millisecond. The effect is that of `--max-semi-space-size=1`, which only
 * works on the command line (v8.setFlagsFromString of it is ignored in
 * Node 24: measured). docs/benchmarks.md, "S3 large blob".
 */
export function gcNudge(bytes: number): void {
  const every = DEFAULTS.transferGcEveryBytes;
  if (every <= 0) return;
  bytesSinceGc += bytes;
  if (bytesSinceGc < every) return;
  bytesSinceGc = 0;
  v8Gc()?.({ type: 'minor' });
}
