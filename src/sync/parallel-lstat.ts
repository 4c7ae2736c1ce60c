// The lstat of every file of a scan, shared between the main thread and one
// worker thread.
//
// Why: a no-op push or a warm cache restore is one lstat per file (50,000
// of them: ~0.33 s of one core, the system call and Node's binding), and
// Node has no batched stat. A second thread halves that part of the wall
// clock on a machine with a second core. The files are cut into chunks that
// both threads claim from one shared counter (Atomics), so whichever thread
// is faster (the worker needs ~30 ms to start) does more; each writes its
// chunk's figures into one shared Float64Array (no Stats object per file on
// the main thread for the worker's half, and no message per file). The main
// thread then waits (Atomics.wait) for the chunks the worker claimed.
//
// Start: a worker needs ~30-50 ms to boot, during which the main thread
// does every chunk alone. A caller that expects many files (a scan whose
// stat cache had many entries) starts it before its folder walk
// (startLstatWorker), so it boots while the main thread reads folders and
// takes half the chunks from the first; it waits for its job as a message.
// A CLI push that expects a large folder starts it even earlier
// (prestartLstatWorker, before loading the push's modules and opening the
// remote): ~0.1 s of start-up on the main thread hides the boot entirely.
//
// Failure: the worker catches everything per file (ENOENT becomes "gone",
// anything else "error", which the main thread repeats itself to throw the
// real error). If the worker dies or stalls, the main thread redoes the
// chunks it did not finish after STALL_MS: a chunk is idempotent (the same
// lstat of the same paths), so nothing waits forever.

import { lstatSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { isErrno } from '../store/fs-atomic.ts';

/** Per file: mode, size, ino, mtimeMs, ctimeMs. */
export const LSTAT_FIELDS = 5;
/** mode value of a path that no longer exists. */
export const LSTAT_GONE = -1;
/** mode value of a path the worker could not lstat (the caller repeats it to get the error). */
export const LSTAT_ERROR = -2;

/** Files per claimed chunk: small enough to balance, large enough that claiming is free. */
const CHUNK = 256;
/** A chunk the worker claimed but did not finish in this long is redone by the main thread. */
const STALL_MS = 5_000;

// Plain JavaScript (eval), so the worker loads no module and strips no types.
// Its job (paths and shared buffers) comes as its one message.
const WORKER_SOURCE = `
const { lstatSync } = require('node:fs');
const { parentPort } = require('node:worker_threads');
parentPort.once('message', ({ base, joined, count: n, out, ctl, done }) => {
// Where each path starts in the joined list: no string per path kept alive
// (50,000 of them were most of this isolate's scavenges), one made per lstat.
const starts = new Int32Array(n + 1);
for (let i = 1, at = 0; i <= n; i++) {
  at = i < n ? joined.indexOf('\\0', at) + 1 : joined.length + 1;
  starts[i] = at;
}
const next = new Int32Array(ctl);
const flags = new Int32Array(done);
const values = new Float64Array(out);
const chunks = flags.length;
for (;;) {
    const c = Atomics.add(next, 0, 1);
    if (c >= chunks) break;
    const end = Math.min(n, (c + 1) * ${CHUNK});
    for (let i = c * ${CHUNK}; i < end; i++) {
      const o = i * ${LSTAT_FIELDS};
      try {
        const st = lstatSync(base + joined.slice(starts[i], starts[i + 1] - 1), { throwIfNoEntry: false });
        if (st === undefined) { values[o] = ${LSTAT_GONE}; continue; }
        values[o] = st.mode; values[o + 1] = st.size; values[o + 2] = st.ino;
        values[o + 3] = st.mtimeMs; values[o + 4] = st.ctimeMs;
      } catch {
        values[o] = ${LSTAT_ERROR};
      }
    }
  Atomics.store(flags, c, 1);
  Atomics.notify(flags, c);
}
});
`;

export interface ParallelLstatOptions {
  /** Use the worker from this many files on (below, the main thread does all). */
  minFiles: number;
  /** Tests: the main thread claims no chunk, so the worker does every one. */
  workerOnly?: boolean;
  /**
   * A worker started earlier (startLstatWorker): used from minFiles files on,
   * else stopped. Either way it is the call's to stop.
   */
  worker?: LstatWorker;
}

/** A worker thread booting (or waiting) for one parallelLstat job. */
export interface LstatWorker {
  readonly worker: Worker;
}

/** A worker prestartLstatWorker started and no scan took yet. */
let prestarted: LstatWorker | undefined;

/**
 * Starts the worker of a scan to come in this process (a CLI command that
 * expects many files), so it boots while the process loads: the next
 * startLstatWorker takes it. Unreferenced: it never keeps the process alive.
 */
export function prestartLstatWorker(): void {
  prestarted ??= startLstatWorker();
}

/** A prestarted worker no scan will take (a scan of few files): stopped. */
export function dropPrestartedLstatWorker(): void {
  stopLstatWorker(prestarted);
  prestarted = undefined;
}

/**
 * Starts the worker for a parallelLstat call to come (or takes the
 * prestarted one), or undefined on a machine with one core. It waits for
 * its job; the caller passes it to parallelLstat (which stops it) or stops
 * it with stopLstatWorker.
 */
export function startLstatWorker(evenOnOneCore = false): LstatWorker | undefined {
  if (prestarted !== undefined) {
    const w = prestarted;
    prestarted = undefined;
    return w;
  }
  if (!evenOnOneCore && availableParallelism() <= 1) return undefined;
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    // A small isolate: the worker holds the path list and nothing else.
    resourceLimits: { maxYoungGenerationSizeMb: 8 },
    stdout: false,
    stderr: false,
  });
  worker.unref();
  // An error of the worker itself (not of a file) only means the main thread does more.
  worker.on('error', () => {});
  return { worker };
}

export function stopLstatWorker(w: LstatWorker | undefined): void {
  if (w !== undefined) void w.worker.terminate();
}

export interface ParallelLstatResult {
  /** LSTAT_FIELDS numbers per file, in the order of `rels`. */
  values: Float64Array;
  /** Files whose lstat the worker did (0 without a worker). */
  byWorker: number;
}

/**
 * lstat of `base + rels[i]` for every i. Errors other than ENOENT are
 * thrown (the first one met, as a loop of lstatSync would).
 */
export function parallelLstat(
  base: string,
  rels: readonly string[],
  opts: ParallelLstatOptions,
): ParallelLstatResult {
  const n = rels.length;
  const chunks = Math.ceil(n / CHUNK);
  const useWorker = opts.workerOnly || n >= opts.minFiles;
  const w = useWorker ? (opts.worker ?? startLstatWorker(opts.workerOnly)) : undefined;
  if (w === undefined) {
    stopLstatWorker(opts.worker);
    const values = new Float64Array(n * LSTAT_FIELDS);
    for (let i = 0; i < n; i++) lstatInto(base, rels[i], values, i);
    return { values, byWorker: 0 };
  }
  const { worker } = w;
  const out = new SharedArrayBuffer(n * LSTAT_FIELDS * 8);
  const ctl = new SharedArrayBuffer(4);
  const done = new SharedArrayBuffer(Math.max(1, chunks) * 4);
  const values = new Float64Array(out);
  const next = new Int32Array(ctl);
  const flags = new Int32Array(done);
  worker.postMessage({ base, joined: rels.join('\0'), count: n, out, ctl, done });
  /** Chunks the main thread did itself. */
  const mine = new Uint8Array(Math.max(1, chunks));
  try {
    if (!opts.workerOnly) {
      for (;;) {
        const c = Atomics.add(next, 0, 1);
        if (c >= chunks) break;
        const end = Math.min(n, (c + 1) * CHUNK);
        for (let i = c * CHUNK; i < end; i++) lstatInto(base, rels[i], values, i);
        mine[c] = 1;
      }
    }
    let byWorker = 0;
    for (let c = 0; c < chunks; c++) {
      if (mine[c]) continue;
      if (Atomics.wait(flags, c, 0, STALL_MS) === 'timed-out' && Atomics.load(flags, c) === 0) {
        // The worker is gone or stuck: this chunk (and any it has not reached) done here.
        Atomics.store(next, 0, chunks); // it claims nothing more
        const end = Math.min(n, (c + 1) * CHUNK);
        for (let i = c * CHUNK; i < end; i++) lstatInto(base, rels[i], values, i);
        continue;
      }
      byWorker += Math.min(n, (c + 1) * CHUNK) - c * CHUNK;
    }
    // What the worker could not lstat is repeated here: the real error is thrown, or the path has gone since.
    for (let i = 0; i < n; i++)
      if (values[i * LSTAT_FIELDS] === LSTAT_ERROR) lstatInto(base, rels[i], values, i);
    return { values, byWorker };
  } finally {
    void worker.terminate();
  }
}

function lstatInto(base: string, rel: string, values: Float64Array, i: number): void {
  const o = i * LSTAT_FIELDS;
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(base + rel);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    values[o] = LSTAT_GONE;
    return;
  }
  values[o] = st.mode;
  values[o + 1] = st.size;
  values[o + 2] = st.ino;
  values[o + 3] = st.mtimeMs;
  values[o + 4] = st.ctimeMs;
}
