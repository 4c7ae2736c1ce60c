// A file's stat as the stat cache keys it (size, mtime ns, ctime ns, inode),
// and the two ways of comparing it: exactly (BigIntStats, as entries are
// stored), or against a number-valued lstat.
//
// A scan compares number-valued lstat results (fs.Stats, no BigInt: at
// 50,000 files the BigIntStats of each lstat were most of a no-op push's
// garbage) with lookupStats: size and inode exactly, mtime and ctime to
// within a microsecond (a double holds today's times in ms to ~0.2 µs).
// That is as safe as comparing nanoseconds: a trusted entry's ctime is at
// least the racy window (100 ms) older than when it was observed, so any
// change after that moves the ctime by more than the window, and the
// kernel stamps times from a clock that ticks in milliseconds anyway.
// Entries are always stored with exact nanoseconds (from BigIntStats).

import type { BigIntStats } from 'node:fs';

export interface StatKey {
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

/** The fields of a number-valued lstat (fs.Stats) that lookupStats compares. */
export interface LooseStat {
  size: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** How far apart two times (ms) may be and still be the same stamp read through a double. */
export const SAME_TIME_MS = 0.001;

/** Whether a number-valued stat is the exact stat `key` (times to within SAME_TIME_MS). */
export function sameLooseStat(st: LooseStat, key: StatKey): boolean {
  return (
    st.size === key.size &&
    st.ino === Number(key.ino) &&
    Math.abs(st.mtimeMs - Number(key.mtimeNs) / 1e6) < SAME_TIME_MS &&
    Math.abs(st.ctimeMs - Number(key.ctimeNs) / 1e6) < SAME_TIME_MS
  );
}

export function statKeyOf(st: BigIntStats): StatKey {
  return { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
}

export function sameStat(a: StatKey, b: StatKey): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}
