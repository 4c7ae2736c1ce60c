// The young generation of a push or pull process kept at its initial size.
//
// A scan of 50,000 files allocates fast and keeps much of it (an entry per
// file), and V8 answers by growing the young generation to its maximum
// (two 32 MiB semi-spaces on a 64-bit machine with this much RAM): 64 MiB of
// a 50,000-file push's ~200 MiB peak RSS, while its live heap was ~60 MiB.
// The size limit (--max-semi-space-size) is fixed when the heap is set up,
// so a CLI cannot pass it to its own process; the growth factor is read each
// time V8 considers growing, so setting it to 1 here, before the command's
// work starts, keeps the young generation at its initial size. Scavenges
// become more frequent but each is small (what survives is promoted), and
// the heap grows in the old generation only as far as live data needs.
// Only the sync commands set it: `hoard serve` keeps V8's defaults.

import { setFlagsFromString } from 'node:v8';

export function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

/**
 * Scavenges done by the main thread alone, not shared with V8's helper
 * threads. On a two-core machine with other load a parallel scavenge often
 * waits for a helper that is not scheduled: traced pauses of 12 ms held
 * 1.4 ms of work. With the young generation kept small a no-op push at
 * 50,000 files scavenges ~25-30 times. Alternated at load ~4 (20 pairs,
 * measured when the scan still shared its lstats with a worker thread):
 * median 0.80 s against 0.92 s, CPU the same. Read at each scavenge, so it
 * can be set now.
 */
export function scavengeOnMainThread(): void {
  setFlagsFromString('--no-parallel-scavenge');
}
