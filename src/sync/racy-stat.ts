// The racy-entry rule of the stat cache (git's "racily clean"): a file
// observed within a timestamp tick of its last change could change again
// without its stat changing. Such entries are stored but never trusted, so
// the next scan hashes them. Times that are whole seconds (a coarse file
// system) get the wider window (syncRacyWindowCoarseMs).

import { DEFAULTS } from '../core/defaults.ts';
import type { StatKey } from './stat-key.ts';

/** Whether a file with this stat, observed at `observedAtMs`, may still change without its stat changing. */
export function isRacy(key: StatKey, observedAtMs: number): boolean {
  const coarse = key.mtimeNs % 1_000_000_000n === 0n && key.ctimeNs % 1_000_000_000n === 0n;
  const windowMs = coarse ? DEFAULTS.syncRacyWindowCoarseMs : DEFAULTS.syncRacyWindowMs;
  const limit = BigInt(Math.floor(observedAtMs - windowMs)) * 1_000_000n;
  return key.mtimeNs >= limit || key.ctimeNs >= limit;
}
