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
