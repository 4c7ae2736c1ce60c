// Helpers of the sync tests: temp directories, running the real CLI, and
// describing a directory (kinds, content digests, exec bits, symlink targets).

import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'hoard.js');

export async function tempDir(
  prefix = 'hoard-sync-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

/** Runs `hoard <args>` in a new process with the pinned Node. */
export function hoard(
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    nodeArgs?: string[];
    /** Runs the CLI under `nice -n 10` (every thread of it): it mostly yields to other processes wanting a core. */
    lowPriority?: boolean;
  } = {},
): Promise<CliResult> {
  const argv = [...(opts.nodeArgs ?? []), BIN, ...args];
  return new Promise((resolve) => {
    execFile(
      opts.lowPriority ? 'nice' : process.execPath,
      opts.lowPriority ? ['-n', '10', process.execPath, ...argv] : argv,
      { env: { ...process.env, ...opts.env }, cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

export function spawnHoard(args: string[]) {
  return spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const abs = join(root, rel);
    await mkdir(dirname(abs), { recursive: true });
    await writeFile(abs, content);
  }
}

export type Described = Record<string, string>;

/** path → "file:<sha>", "exec:<sha>", "symlink:<target>" or "dir", skipping `.hoard/`. */
export async function describeDir(root: string, rel = '', out: Described = {}): Promise<Described> {
  const names = await readdir(join(root, rel));
  if (names.length === 0 && rel !== '') out[rel] = 'dir';
  for (const name of names.sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    if (name === '.hoard') continue;
    const abs = join(root, r);
    const st = await lstat(abs);
    if (st.isSymbolicLink()) out[r] = `symlink:${await readlink(abs)}`;
    else if (st.isDirectory()) await describeDir(root, r, out);
    else
      out[r] = `${st.mode & 0o100 ? 'exec' : 'file'}:${createHash('sha256')
        .update(await readFile(abs))
        .digest('hex')}`;
  }
  return out;
}

/** Lists every path under root (including .hoard and temp files). */
export async function listAll(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of await readdir(join(root, rel))) {
      const r = rel === '' ? name : `${rel}/${name}`;
      out.push(r);
      const st = await lstat(join(root, r));
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out.sort();
}

/**
 * Wraps a remote, counting every call to its blob and ref stores (by
 * "blobs.read", "refs.get", …). `reads` lists every blob read, one by one
 * (`read`) or batched (each digest a `readMany` asked for).
 */
export function countingRemote<R extends { blobs: object; refs: object }>(
  remote: R,
): { remote: R; calls: Map<string, number>; reads: string[] } {
  const calls = new Map<string, number>();
  const reads: string[] = [];
  const wrap = <T extends object>(target: T, prefix: string): T =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const v = Reflect.get(t, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          const key = `${prefix}.${String(prop)}`;
          calls.set(key, (calls.get(key) ?? 0) + 1);
          if (key === 'blobs.read') reads.push(String(args[0]));
          if (key === 'blobs.readMany') for (const w of args[0] as { digest: string }[]) reads.push(w.digest);
          return v.apply(t, args);
        };
      },
    });
  const blobs = wrap(remote.blobs, 'blobs');
  const refs = wrap(remote.refs, 'refs');
  // A proxy (not a spread copy) so remotes that are class instances keep their getters (url).
  const wrapped = new Proxy(remote, {
    get(t, prop, receiver) {
      if (prop === 'blobs') return blobs;
      if (prop === 'refs') return refs;
      return Reflect.get(t, prop, receiver);
    },
  });
  return { remote: wrapped, calls, reads };
}
