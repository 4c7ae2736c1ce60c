// Drives the real @actions/cache package (pinned in ../turbo/npm-client.ts)
// against a hoard server: each saveCache / restoreCache runs in a child Node
// process (toolkit-child.mjs) with the environment a runner would give it.
// Used by the feature's tests and by benchmarks: a bench script starts a
// real `hoard serve` with serveForToolkit() and times runToolkit() against it
// (pass `azureAlias: true` for the toolkit's parallel segmented download).

import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type ServeChild, serveChild } from '../../support/serve-child.ts';
import { writeTokensFile } from '../../support/tokens.ts';
import { installClient } from '../turbo/npm-client.ts';

const run = promisify(execFile);
const CHILD = join(import.meta.dirname, 'toolkit-child.mjs');

export interface ToolkitRun {
  /** v2: Twirp at ACTIONS_RESULTS_URL; v1: _apis/artifactcache at ACTIONS_CACHE_URL. */
  service: 'v1' | 'v2';
  /** The hoard server's root URL (`http://127.0.0.1:port`). */
  url: string;
  /** ACTIONS_RUNTIME_TOKEN (a hoard token; '' for a tokens-less loopback server). */
  token: string;
  op: 'save' | 'restore';
  /** Working directory of the toolkit (paths are relative to it). */
  cwd: string;
  paths: string[];
  key: string;
  restoreKeys?: string[];
  lookupOnly?: boolean;
  /**
   * Reach the server as `hoard.blob.core.windows.net:<port>` (resolved to
   * 127.0.0.1 in the child): the toolkit then downloads in parallel
   * segments, as from Azure, instead of one GET.
   */
  azureAlias?: boolean;
  /** RUNNER_TEMP: where the toolkit writes its archive. */
  tempDir: string;
  extraEnv?: Record<string, string>;
}

export interface ToolkitResult {
  /** saveCache: the cache id (-1: not saved); restoreCache: the matched key or null. */
  result: number | string | null;
  stdout: string;
  stderr: string;
  /** `::warning::` / `::error::` lines the toolkit printed. */
  warnings: string[];
}

/** Runs one saveCache / restoreCache of the real toolkit against hoard. */
export async function runToolkit(o: ToolkitRun): Promise<ToolkitResult> {
  const client = await installClient('actionsCache');
  await mkdir(o.tempDir, { recursive: true });
  const base = new URL(o.url);
  if (o.azureAlias) base.hostname = 'hoard.blob.core.windows.net';
  const root = base.href.endsWith('/') ? base.href : `${base.href}/`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: o.tempDir,
    RUNNER_TEMP: o.tempDir,
    ACTIONS_RUNTIME_TOKEN: o.token,
    ...(o.service === 'v2'
      ? { ACTIONS_CACHE_SERVICE_V2: 'true', ACTIONS_RESULTS_URL: root }
      : { ACTIONS_CACHE_URL: root }),
    ...o.extraEnv,
  };
  const req = {
    module: client.bin,
    op: o.op,
    paths: o.paths,
    key: o.key,
    restoreKeys: o.restoreKeys,
    lookupOnly: o.lookupOnly,
    azureAlias: o.azureAlias,
  };
  const { stdout, stderr } = await run(process.execPath, [CHILD, JSON.stringify(req)], {
    cwd: o.cwd,
    env,
    timeout: 5 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  }).catch((err: Error & { stdout?: string; stderr?: string }) => {
    throw new Error(`the toolkit failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  });
  const line = stdout.split('\n').find((l) => l.startsWith('@@RESULT '));
  if (!line) throw new Error(`the toolkit printed no result:\n${stdout}\n${stderr}`);
  const warnings = stdout.split('\n').filter((l) => /^::(warning|error)/.test(l));
  return { result: JSON.parse(line.slice('@@RESULT '.length)).result, stdout, stderr, warnings };
}

/**
 * A real `hoard serve` (child process) under `dir` with one read-write token
 * for the Actions namespace `namespace`; `extra`: more serve flags. Stop it
 * with `child.kill()` and await `exited`.
 */
export async function serveForToolkit(
  dir: string,
  opts: { token?: string; namespace?: string; extra?: readonly string[] } = {},
): Promise<ServeChild & { token: string }> {
  const token = opts.token ?? 'toolkit-bench-token';
  await mkdir(dir, { recursive: true });
  const tokens = await writeTokensFile(dir, [
    {
      name: 'toolkit',
      token,
      scopes: ['read', 'write'],
      refs: [`cache/actions/${opts.namespace ?? 'bench/app'}`, 'cache/'],
    },
  ]);
  const served = await serveChild(join(dir, 'data'), ['--tokens', tokens, ...(opts.extra ?? [])]);
  return { ...served, token };
}
