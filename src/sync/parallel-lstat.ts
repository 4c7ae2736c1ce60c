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
import { resolve, sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import { MAX_PATH_BYTES } from '../core/tree-path.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { IGNORE_FILE, STATE_DIR, TEMP_PREFIX, TEMP_SUFFIX } from './ignore-rules.ts';

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
// Its job (paths and shared buffers) comes as its one message; or, started
// with a folder to walk (walkOf), it lists the folder itself, posts the list
// with the shared buffers, and starts on the lstats at once.
const WORKER_SOURCE = `
const { lstatSync, readdirSync } = require('node:fs');
const { join } = require('node:path');
const { parentPort, workerData } = require('node:worker_threads');

function lstats(base, pathAt, n, out, ctl, done) {
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
        const st = lstatSync(base + pathAt(i), { throwIfNoEntry: false });
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
}

// The scan's walk (scan.ts) for a folder where it is simple: every name plain
// ASCII, no ignore file, no temp file, only folders, files and symlinks.
// Anything else is ODD: the main thread walks instead (and warns, collects
// temps, applies rules). Same order as the main walk: readdir order, depth first.
const ODD = new Error('odd');
const PLAIN = /^[\\x20-\\x5b\\x5d-\\x7e]+$/;
const DRIVE = /^[A-Za-z]:/;
function walk(root, maxPathBytes) {
  const files = [];
  const dirs = [];
  const visit = (rel, relBytes) => {
    let dirents;
    try {
      dirents = readdirSync(join(root, rel), { withFileTypes: true });
    } catch (err) {
      if (rel !== '' && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return 0;
      throw ODD;
    }
    let kept = 0;
    for (const d of dirents) {
      const name = d.name;
      const isDir = d.isDirectory();
      if (name === '${IGNORE_FILE}') throw ODD;
      if (!isDir && name.startsWith('${TEMP_PREFIX}') && name.endsWith('${TEMP_SUFFIX}')) throw ODD;
      if (isDir && name === '${STATE_DIR}') continue;
      const bytes = relBytes + (rel === '' ? 0 : 1) + name.length;
      if (!PLAIN.test(name) || bytes > maxPathBytes || (rel === '' && DRIVE.test(name))) throw ODD;
      const child = rel === '' ? name : rel + '/' + name;
      if (isDir) {
        if (visit(child, bytes) === 0) dirs.push(child);
        kept++;
      } else if (d.isFile() || d.isSymbolicLink()) {
        files.push(child);
        kept++;
      } else throw ODD;
    }
    return kept;
  };
  visit('', 0);
  return { files, dirs };
}

function job({ base, joined, count: n, out, ctl, done }) {
  // Where each path starts in the joined list: no string per path kept alive
  // (50,000 of them were most of this isolate's scavenges), one made per lstat.
  const starts = new Int32Array(n + 1);
  for (let i = 1, at = 0; i <= n; i++) {
    at = i < n ? joined.indexOf('\\0', at) + 1 : joined.length + 1;
    starts[i] = at;
  }
  lstats(base, (i) => joined.slice(starts[i], starts[i + 1] - 1), n, out, ctl, done);
}

let listing;
if (workerData && typeof workerData.walk === 'string') {
  try {
    listing = walk(workerData.walk, workerData.maxPathBytes);
  } catch {
    listing = undefined;
  }
}
if (listing === undefined) {
  if (workerData && typeof workerData.walk === 'string') parentPort.postMessage({ odd: true });
  parentPort.once('message', job);
} else {
  const { files, dirs } = listing;
  const n = files.length;
  const out = new SharedArrayBuffer(n * ${LSTAT_FIELDS} * 8);
  const ctl = new SharedArrayBuffer(4);
  const done = new SharedArrayBuffer(Math.max(1, Math.ceil(n / ${CHUNK})) * 4);
  parentPort.postMessage({ joined: files.join('\\0'), dirs, count: n, out, ctl, done });
  const base = workerData.walk.endsWith(workerData.sep) ? workerData.walk : workerData.walk + workerData.sep;
  lstats(base, (i) => files[i], n, out, ctl, done);
  // A caller that did not take the listing sends an ordinary job (done here once this one is).
  parentPort.once('message', job);
}
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
  /** The shared buffers of a worker that walked the folder (walkOf): it is at work on them already. */
  job?: SharedJob;
}

/** The buffers a job's lstats are shared through (see the header). */
export interface SharedJob {
  out: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  done: SharedArrayBuffer;
}

/** A worker thread booting (or waiting) for one parallelLstat job. */
export interface LstatWorker {
  readonly worker: Worker;
  /** The folder it walks by itself (resolved), and its first message: the listing, or `{ odd: true }`. */
  readonly walk?: { root: string; message: Promise<unknown> };
}

/** What a worker's own walk found (the main thread's walk would have found the same). */
export interface WalkListing {
  files: string[];
  /** Empty folders. */
  dirs: string[];
  job: SharedJob;
}

/**
 * The listing of `root` by the worker that walked it itself, or undefined
 * when it did not (another folder, no walk) or could not (a folder the
 * scan's own walk must read: ignore files, temp files, names or types it
 * checks or warns about; see WORKER_SOURCE). Then the worker waits for an
 * ordinary job.
 */
export async function walkOf(w: LstatWorker, root: string): Promise<WalkListing | undefined> {
  if (w.walk === undefined || w.walk.root !== resolve(root)) return undefined;
  // Awaited with the worker referenced: an unreferenced worker's message would not keep the process alive.
  w.worker.ref();
  let m: unknown;
  try {
    m = await w.walk.message;
  } finally {
    w.worker.unref();
  }
  const l = m as {
    joined?: unknown;
    dirs?: unknown;
    count?: unknown;
    out?: unknown;
    ctl?: unknown;
    done?: unknown;
  };
  if (typeof l?.joined !== 'string' || !Array.isArray(l.dirs) || typeof l.count !== 'number')
    return undefined;
  const files = l.count === 0 ? [] : l.joined.split('\0');
  if (files.length !== l.count) return undefined;
  return {
    files,
    dirs: l.dirs as string[],
    job: {
      out: l.out as SharedArrayBuffer,
      ctl: l.ctl as SharedArrayBuffer,
      done: l.done as SharedArrayBuffer,
    },
  };
}

/** A worker prestartLstatWorker started and no scan took yet. */
let prestarted: LstatWorker | undefined;

/**
 * Starts the worker of a scan of `root` to come in this process (a CLI
 * command that expects many files), so it boots while the process loads,
 * and walks the folder itself (walkOf): the next startLstatWorker takes it.
 * Unreferenced: it never keeps the process alive.
 */
export function prestartLstatWorker(root: string): void {
  prestarted ??= startLstatWorker(false, resolve(root));
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
export function startLstatWorker(evenOnOneCore = false, walkRoot?: string): LstatWorker | undefined {
  if (prestarted !== undefined) {
    const w = prestarted;
    prestarted = undefined;
    return w;
  }
  if (!evenOnOneCore && availableParallelism() <= 1) return undefined;
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: walkRoot === undefined ? undefined : { walk: walkRoot, maxPathBytes: MAX_PATH_BYTES, sep },
    // A small isolate: the worker holds the path list and nothing else.
    resourceLimits: { maxYoungGenerationSizeMb: 8 },
    stdout: false,
    stderr: false,
  });
  worker.unref();
  // An error of the worker itself (not of a file) only means the main thread does more.
  worker.on('error', () => {});
  if (walkRoot === undefined) return { worker };
  // Listened to from the start: a message that comes before anyone listens is lost.
  const message = new Promise<unknown>((done) => {
    worker.once('message', done);
    worker.once('exit', () => done(undefined));
    worker.once('error', () => done(undefined));
  });
  return { worker, walk: { root: walkRoot, message } };
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
  let job = opts.job;
  if (job === undefined) {
    job = {
      out: new SharedArrayBuffer(n * LSTAT_FIELDS * 8),
      ctl: new SharedArrayBuffer(4),
      done: new SharedArrayBuffer(Math.max(1, chunks) * 4),
    };
    worker.postMessage({ base, joined: rels.join('\0'), count: n, ...job });
  }
  const values = new Float64Array(job.out);
  const next = new Int32Array(job.ctl);
  const flags = new Int32Array(job.done);
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
