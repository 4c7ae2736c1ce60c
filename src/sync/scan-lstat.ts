// The lstat of every file a scan listed, on the main thread, into one
// Float64Array (no Stats object kept per file, no BigInt).
//
// Why not shared with a worker thread (as sessions 6-7 did): on this
// project's 2-core machine a no-op push at 50,000 files took the same wall
// time with the worker as without it (0.20-0.22 s against 0.21-0.23 s,
// quiet machine) while costing ~0.09 s more CPU (the worker's boot, and two
// threads resolving paths in the same folders slow each other), ~9 MiB more
// peak RSS, and with one other busy process on the machine it was slower
// (0.31 s against 0.26 s): a no-op push's wall clock on a shared machine is
// its CPU time. See docs/benchmarks.md, "Session 8: sync".

import { lstatSync } from 'node:fs';
import { isErrno } from '../store/fs-atomic.ts';

/** Per file: mode, size, ino, mtimeMs, ctimeMs. */
export const LSTAT_FIELDS = 5;
/** mode value of a path that no longer exists. */
export const LSTAT_GONE = -1;

/**
 * lstat of `base + rels[i]` for every i, LSTAT_FIELDS numbers each. A path
 * that is gone gets LSTAT_GONE; any other error is thrown.
 */
export function lstatAll(base: string, rels: readonly string[]): Float64Array {
  const values = new Float64Array(rels.length * LSTAT_FIELDS);
  for (let i = 0, o = 0; i < rels.length; i++, o += LSTAT_FIELDS) {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(base + rels[i]);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      values[o] = LSTAT_GONE;
      continue;
    }
    values[o] = st.mode;
    values[o + 1] = st.size;
    values[o + 2] = st.ino;
    values[o + 3] = st.mtimeMs;
    values[o + 4] = st.ctimeMs;
  }
  return values;
}
