// A real `hoard serve` as a child process, for the tests that need the
// process itself (its descriptors, RSS, signals, a full disk under it):
// listening on a free 127.0.0.1 port, its stdout (JSON log lines) kept,
// resolved once it prints the URL it serves (servingUrl, never a sleep).

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { servingUrl } from './serving-url.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'hoard.js');

export interface ServeChild {
  child: ChildProcess;
  url: string;
  /** stdout so far (JSON log lines). */
  log: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `hoard serve --data dataDir` plus `extra` flags; `wrapper` runs it under
 * another command (e.g. `['prlimit', '--nofile=256:256', '--']`).
 */
export async function serveChild(
  dataDir: string,
  extra: readonly string[] = [],
  wrapper: readonly string[] = [],
): Promise<ServeChild> {
  const argv = [process.execPath, BIN, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...extra];
  const [command, ...args] = [...wrapper, ...argv];
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const url = await servingUrl(child);
  return { child, url, log: () => out, exited };
}
