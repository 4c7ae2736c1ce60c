// Every git child process of hoard goes through here: a timeout, its own
// process group (`detached: true`) and a group kill on timeout, on abort
// (client disconnect) and when hoard itself exits, so no git (or its
// children: index-pack, pack-objects, remote helpers) outlives its purpose.

import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import type { PassThrough } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError, redactSecrets } from '../core/errors.ts';

export interface GitSpawnOptions {
  cwd?: string;
  /** Extra environment (merged over process.env; `undefined` removes a variable). */
  env?: Record<string, string | undefined>;
  /** Kills the process group after this long (default DEFAULTS.gitProcessTimeoutMs). */
  timeoutMs?: number;
  /** Kills the process group when aborted (e.g. the client went away). */
  signal?: AbortSignal;
  /** Whether stdin is a pipe (default: ignored); or an open file descriptor to read (the caller closes it). */
  stdin?: boolean | number;
  /**
   * A lower CPU priority (nice value, 1–19) for work nobody is waiting on
   * directly. See lowerPriority: the nice value alone does nothing here.
   */
  nice?: number;
}

export interface GitExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last few KiB of stderr. */
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
  /** Spawn failure (git missing), if any. */
  error?: Error;
}

export interface GitChild {
  child: ChildProcess;
  done: Promise<GitExit>;
  /** Kills the whole process group. */
  kill(): void;
}

const STDERR_KEEP = 8 * 1024;
const live = new Set<number>();
let spawned = 0;

/**
 * Git children of this process: spawned so far and still running. For tests
 * and diagnostics: "no git child was started" and "no child was left behind"
 * are properties of the security boundary, not of timing.
 */
export function gitChildren(): { spawned: number; live: number } {
  return { spawned, live: live.size };
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

process.once('exit', () => {
  for (const pid of live) killGroup(pid);
});

/**
 * Variables of the caller's environment that git children keep: transport
 * and diagnostics only (CAs, proxies, ssh, tracing). Every other GIT_* is
 * dropped, so no GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE, GIT_CONFIG_*,
 * GIT_ALTERNATE_OBJECT_DIRECTORIES… of whoever started hoard redirects a git
 * step to another repository or injects configuration.
 */
const KEPT_GIT_VARS =
  /^GIT_(SSL_|HTTP_|CURL_|TRACE|SSH$|SSH_COMMAND$|SSH_VARIANT$|EXEC_PATH$|REDACT_COOKIES$)/;

/** The environment every git child gets: never prompt, never read the user's or system config. */
export function gitEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('GIT_') || KEPT_GIT_VARS.test(k)) env[k] = v;
  Object.assign(env, {
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'true',
    SSH_ASKPASS: 'true',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
  });
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return env;
}

/**
 * Configuration passed through the environment (GIT_CONFIG_COUNT/KEY_n/VALUE_n,
 * git >= 2.31) rather than `-c` arguments: the values never show in the
 * process list (`ps`), which is where a bearer token must not appear.
 */
export function configEnv(pairs: [string, string][]): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(pairs.length) };
  pairs.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return env;
}

export function spawnGit(args: string[], opts: GitSpawnOptions = {}): GitChild {
  const child = spawn('git', args, {
    cwd: opts.cwd,
    env: gitEnv(opts.env),
    stdio: [typeof opts.stdin === 'number' ? opts.stdin : opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pid = child.pid;
  if (opts.nice && pid !== undefined) lowerPriority(pid, opts.nice);
  spawned++;
  if (pid !== undefined) live.add(pid);
  let timedOut = false;
  let aborted = false;
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
    if (stderr.length > STDERR_KEEP * 2) stderr = stderr.slice(-STDERR_KEEP);
  });
  const kill = () => {
    killGroup(pid);
    // Nobody will read what is left: release the pipes so 'close' (and `done`) can fire
    // even when a consumer stopped reading (a client that went away).
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.stdin?.destroy();
  };
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.gitProcessTimeoutMs;
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  timer.unref();
  const onAbort = () => {
    aborted = true;
    kill();
  };
  if (opts.signal) {
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }
  // A write to stdin after the child died must not crash hoard.
  child.stdin?.on('error', () => {});
  const done = new Promise<GitExit>((resolve) => {
    let error: Error | undefined;
    child.once('error', (err) => {
      error = err;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (pid !== undefined) live.delete(pid);
      // Grandchildren may still hold the group; make sure none survive a kill.
      if (timedOut || aborted) killGroup(pid);
      resolve({ code, signal, stderr: stderr.slice(-STDERR_KEEP), timedOut, aborted, error });
    });
  });
  return { child, done, kill };
}

/**
 * Gives the child `pid` (a session leader: spawned `detached`) the nice value
 * `nice`, for its session's autogroup too. With autogroup scheduling (Linux's
 * default, `kernel.sched_autogroup_enabled`), CPU is shared first between
 * sessions and a nice value only orders threads within one: every git child
 * is its own session (setsid, for the group kill), so a niced child alone
 * still got a full share against a client's git in another session (measured:
 * as much CPU as two normal busy loops; with its autogroup at 19, ~6 %).
 * Threads started later (index-pack's delta workers) inherit both. Best
 * effort: where either is not permitted or absent, the child runs at normal
 * priority. (The child runs a moment at normal priority before this.)
 */
function lowerPriority(pid: number, nice: number): void {
  try {
    setPriority(pid, nice);
  } catch {}
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  } catch {}
}

/**
 * Pipes git's stdout into `out`, which ends only when git exited 0 after its
 * last byte; otherwise `out` is destroyed with `onFailure(exit)`'s error. (A
 * reader must never take a cut-off answer for a complete one.)
 */
export function pipeCompleted(g: GitChild, out: PassThrough, onFailure: (exit: GitExit) => Error): void {
  const stdout = g.child.stdout!;
  stdout.pipe(out, { end: false });
  let ended = false;
  stdout.on('end', () => {
    ended = true;
  });
  void g.done.then((exit) => {
    if (exit.code === 0 && ended) out.end();
    else out.destroy(onFailure(exit));
  });
}

export interface RunGitOptions extends GitSpawnOptions {
  /** Written to stdin, which is then closed. */
  input?: string | Buffer;
  /** Non-zero exit codes that are not failures (e.g. 1 for `rev-parse --verify -q`). */
  okCodes?: number[];
}

export interface RunGitResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs git to completion; throws HOARD_EGIT (with git's own message) on failure. */
export async function runGit(args: string[], opts: RunGitOptions = {}): Promise<RunGitResult> {
  const g = spawnGit(args, { ...opts, stdin: opts.input !== undefined ? true : opts.stdin });
  const out: Buffer[] = [];
  g.child.stdout?.on('data', (c: Buffer) => out.push(c));
  if (opts.input !== undefined) g.child.stdin?.end(opts.input);
  const exit = await g.done;
  const stdout = Buffer.concat(out).toString('utf8');
  if (exit.code === 0 || (exit.code !== null && opts.okCodes?.includes(exit.code)))
    return { stdout, stderr: exit.stderr, code: exit.code };
  throw gitFailure(args, exit);
}

/** A HoardError describing a failed git run. */
export function gitFailure(args: string[], exit: GitExit): HoardError {
  const what = `git ${args.find((a) => !a.startsWith('-') && !a.includes('=')) ?? args[0]}`;
  const msg = lastLines(exit.stderr);
  let reason: string;
  if (exit.error) reason = exit.error.message;
  else if (exit.timedOut) reason = 'timed out';
  else if (exit.aborted) reason = 'aborted';
  else reason = `exit ${exit.code ?? exit.signal}${msg ? `: ${msg}` : ''}`;
  return new HoardError('HOARD_EGIT', redactSecrets(`${what} failed: ${reason}`), {
    details: { timedOut: exit.timedOut, aborted: exit.aborted },
  });
}

function lastLines(text: string, n = 3): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');
}
