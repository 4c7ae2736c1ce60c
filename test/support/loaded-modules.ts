// What a CLI process loads, for the start-up tests: the CLI is run with a
// preload that records every module URL it loads and the built-ins it
// brought up, written at exit. Pointed at a closed port, a command loads
// exactly what it loads up to its first request, and stops there.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '../../bin/hoard.js');

const PRELOAD = `
import module from 'node:module';
import { writeFileSync } from 'node:fs';
const urls = [];
module.registerHooks({ load(url, ctx, next) { urls.push(url); return next(url, ctx); } });
process.on('exit', () => writeFileSync(process.env.HOARD_TEST_MODULES, JSON.stringify({
  urls, builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)),
})));
`;

export interface LoadedModules {
  status: number | null;
  stderr: string;
  /** Module URLs loaded through the module loader (hoard's sources, node_modules). */
  urls: string[];
  /** Node built-ins brought up (node:http2, tls, …). */
  builtins: string[];
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Runs `hoard ...args` in `cwd` with the recording preload; `record` is the file it writes. */
export function runRecordingModules(args: string[], cwd: string, record: string): LoadedModules {
  const r = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(PRELOAD)}`, BIN, ...args],
    {
      cwd,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, HOARD_TEST_MODULES: record, HOARD_TOKEN: '', HOARD_REMOTE: '', HOARD_REF: '' },
    },
  );
  const { urls, builtins } = JSON.parse(readFileSync(record, 'utf8')) as {
    urls: string[];
    builtins: string[];
  };
  return { status: r.status, stderr: r.stderr, urls, builtins };
}
