// push and pull for library callers: the same functions `hoard push` and
// `hoard pull` run (the CLI calls these), taking a remote URL or an open
// Remote, an AbortSignal, a progress listener and a warning callback, and
// resolving to the very object `--json` prints.

// pull and status are loaded when called: `hoard push` does not pay for
// pull's writers (materialize, the writer thread) at start-up, nor pull for push.
import type { PullResult } from '../sync/pull.ts';
import type { PushResult } from '../sync/push.ts';
import type { StatusResult } from '../sync/status.ts';
import { type ProgressListener, progressSink } from './progress-events.ts';
import { type RemoteArg, usingRemote } from './remote-arg.ts';

export type { PullResult } from '../sync/pull.ts';
export type { PushResult, VerifyResult } from '../sync/push.ts';
export type { StatusResult, SyncSummary } from '../sync/status.ts';

/** What every library operation on a remote accepts. */
export interface RemoteCallOptions {
  /** A remote URL (opened and closed by the call) or a Remote from openRemote (left open). */
  remote: RemoteArg;
  /** Bearer token for an http(s):// remote (default: HOARD_TOKEN, else the URL's password). */
  token?: string;
  /** Cancels the call: it rejects with a HoardError whose code is HOARD_EABORTED. */
  signal?: AbortSignal;
}

interface SyncCallOptions extends RemoteCallOptions {
  /** The local directory. */
  dir: string;
  /** The ref, e.g. `team/app/main`. */
  ref: string;
  /** Progress events (see ProgressEvent): one `blob` event per blob moved. */
  onProgress?: ProgressListener;
  /** Non-fatal problems (a file skipped, blobs the remote lost); default: process.emitWarning. */
  onWarning?: (message: string) => void;
}

const defaultWarning = (message: string) => process.emitWarning(message, 'HoardWarning');

export interface PushOptions extends SyncCallOptions {
  /** On conflicts, the local versions win instead of failing with SyncConflictError. */
  force?: boolean;
  /** Stored in the snapshot record; `log` shows it. */
  message?: string;
  /** Ask the remote about every blob of the tree and re-upload what it lacks. */
  verify?: boolean;
  /**
   * A file that keeps changing while it is pushed is left out with a warning
   * (listed in `skipped`) instead of failing with HOARD_EFILE_CHANGING.
   */
  skipChanging?: boolean;
  /** Parallel uploads (default: DEFAULTS.transferConcurrency). */
  concurrency?: number;
}

/** Uploads `dir` to `ref`, sending only the blobs the remote lacks (`hoard push`). */
export function push(opts: PushOptions): Promise<PushResult> {
  return usingRemote(
    opts.remote,
    { what: 'push', create: true, token: opts.token, signal: opts.signal },
    async (remote) =>
      (await import('../sync/push.ts')).push({
        dir: opts.dir,
        remote,
        ref: opts.ref,
        force: opts.force,
        message: opts.message,
        verify: opts.verify,
        skipChanging: opts.skipChanging,
        concurrency: opts.concurrency,
        signal: opts.signal,
        progress: progressSink(opts.onProgress),
        warn: opts.onWarning ?? defaultWarning,
      }),
  );
}

export interface PullOptions extends SyncCallOptions {
  /** On conflicts, the remote versions win instead of failing with SyncConflictError. */
  force?: boolean;
  /** An older version instead of the ref's current one: a snapshot digest, `<ref>~N`, `~N` or an ISO time. */
  at?: string;
  /** Make the folder equal the version: local edits overwritten, files the version lacks deleted. */
  exact?: boolean;
  /** Parallel downloads (default: DEFAULTS.transferConcurrency). */
  concurrency?: number;
}

/** Brings `dir` to `ref`, downloading only what it lacks (`hoard pull`). */
export function pull(opts: PullOptions): Promise<PullResult> {
  return usingRemote(opts.remote, { what: 'pull', token: opts.token, signal: opts.signal }, async (remote) =>
    (await import('../sync/pull.ts')).pull({
      dir: opts.dir,
      remote,
      ref: opts.ref,
      force: opts.force,
      at: opts.at,
      exact: opts.exact,
      concurrency: opts.concurrency,
      signal: opts.signal,
      progress: progressSink(opts.onProgress),
      warn: opts.onWarning ?? defaultWarning,
    }),
  );
}

export interface StatusOptions extends RemoteCallOptions {
  dir: string;
  ref: string;
  /** Non-fatal problems; default: process.emitWarning. */
  onWarning?: (message: string) => void;
}

/**
 * What a push and a pull of `dir` would do, without transferring anything:
 * one ref read and one stat walk, nothing written (`hoard status`).
 */
export function status(opts: StatusOptions): Promise<StatusResult> {
  return usingRemote(
    opts.remote,
    { what: 'status', token: opts.token, signal: opts.signal },
    async (remote) =>
      (await import('../sync/status.ts')).status({
        dir: opts.dir,
        remote,
        ref: opts.ref,
        warn: opts.onWarning ?? defaultWarning,
      }),
  );
}
