// Test harness of the git proxy: upstream repositories as local bare repos,
// a live hoard server as a subprocess, and the real git client.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');

/** Environment for git in tests: no user or system config, fixed identity. */
export const GIT_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
};

export function tempDir(name = 'hoard-git-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), name));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export function gitSync(args: string[], cwd?: string, input?: string): string {
  return execFileSync('git', args, {
    cwd,
    env: GIT_ENV,
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  }).trim();
}

export async function git(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ stdout: string; stderr: string }> {
  const r = await execFileP('git', args, {
    cwd: opts.cwd,
    env: { ...GIT_ENV, ...opts.env },
    maxBuffer: 64 << 20,
  });
  return { stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

/** A bare upstream repository with an initial commit on `main`; returns its path. */
export function makeUpstream(dir: string, name: string, commits = 1): string {
  const bare = join(dir, `${name}.git`);
  gitSync(['init', '--bare', '--quiet', '-b', 'main', bare]);
  for (let i = 0; i < commits; i++) commitUpstream(bare, `commit ${i} of ${name}`);
  return bare;
}

/** Adds a commit on `branch` of a bare repo directly (no work tree); returns its id. */
export function commitUpstream(bare: string, message: string, branch = 'main'): string {
  const blob = gitSync(['hash-object', '-w', '--stdin'], bare, `${message}\n${Math.random()}\n`);
  const tree = gitSync(
    ['mktree'],
    bare,
    `100644 blob ${blob}\tfile-${Date.now()}-${Math.random().toString(36).slice(2)}.txt\n`,
  );
  let parent: string | null = null;
  try {
    parent = gitSync(['rev-parse', '--verify', '-q', `refs/heads/${branch}`], bare);
  } catch {
    parent = null;
  }
  // Carry the parent's tree forward so the history is a real one.
  let fullTree = tree;
  if (parent) {
    const entries = gitSync(['ls-tree', parent], bare);
    fullTree = gitSync(['mktree'], bare, `${entries}\n${gitSync(['ls-tree', tree], bare)}\n`);
  }
  const args = ['commit-tree', fullTree, '-m', message];
  if (parent) args.push('-p', parent);
  const commit = gitSync(args, bare);
  gitSync(['update-ref', `refs/heads/${branch}`, commit], bare);
  return commit;
}

export interface ServerProcess {
  url: string;
  proc: ChildProcess;
  /** Parsed log lines so far. */
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/**
 * Starts `hoard serve` on a free port; resolves once it logs "hoard serving".
 * `env`: variables set for the server over the test's own (e.g. a PATH with a git wrapper first).
 */
export async function startServer(
  data: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<ServerProcess> {
  const entry = [join(ROOT, 'bin', 'hoard.js'), 'serve'];
  const proc = spawn(
    NODE,
    [...entry, '--listen', '127.0.0.1:0', '--data', data, '--log-level', 'debug', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOARD_CONFIG: '', ...env },
    },
  );
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.on('line', (line) => {
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(obj);
      if (obj.msg === 'hoard serving' && typeof obj.url === 'string') resolve(obj.url);
    });
    proc.once('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${stderr}`)));
  });
  return {
    url,
    proc,
    logs,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
    async kill() {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** Clones through the server with the given protocol version; returns the clone's path. */
export async function cloneVia(url: string, dest: string, protocol: 0 | 1 | 2 = 2): Promise<string> {
  await git(['-c', `protocol.version=${protocol}`, 'clone', '--quiet', url, dest]);
  return dest;
}

export function head(repo: string, ref = 'HEAD'): string {
  return gitSync(['rev-parse', ref], repo);
}
