// The npm package as a user gets it: `npm pack` (whose `prepack` builds
// dist/), then `npm install <tarball>` into a fresh project that has no
// TypeScript, run by plain Node 24. Packed and installed once per content of
// what goes into the package (sources, bin, docs, package.json, the build
// config), under the repository's ignored `tmp/test-clients/`: the test files
// that need it share one install, serialized by a lock file, since two packs
// at once would rebuild the same dist/ under each other.

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { HoardError } from '../../src/core/errors.ts';
import { withLockFile } from '../../src/store/lock-file.ts';
import { ROOT } from '../sync/helpers.ts';

const run = promisify(execFile);
const CACHE = join(ROOT, 'tmp', 'test-clients');

/** Plain Node 24 (the pinned one running the tests) first on PATH, for npm and its scripts. */
export const NODE_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
};

export interface PackedInstall {
  /** What the tarball holds (paths inside the package). */
  files: string[];
  /** The consumer project: `hoard` is in its node_modules. */
  project: string;
  /** The package's `hoard` executable in the project. */
  bin: string;
}

/** Everything `npm pack` reads: a change in any of it is a new package. */
const INPUTS = [
  'src',
  'bin',
  'docs',
  'scripts/build.ts',
  'package.json',
  'README.md',
  'tsconfig.json',
  'tsconfig.build.json',
];

async function inputsHash(): Promise<string> {
  const h = createHash('sha256');
  const add = async (rel: string): Promise<void> => {
    const abs = join(ROOT, rel);
    const st = await stat(abs);
    if (st.isDirectory()) {
      for (const name of (await readdir(abs)).sort()) await add(join(rel, name));
      return;
    }
    h.update(`${rel}\0`);
    h.update(await readFile(abs));
  };
  for (const rel of INPUTS) await add(rel);
  return h.digest('hex').slice(0, 16);
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

async function npm(args: string[], cwd: string): Promise<string> {
  try {
    return (await run('npm', args, { cwd, env: NODE_ENV, timeout: 10 * 60_000, maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`npm ${args[0]} failed: ${e.stderr || e.message}`);
  }
}

/** Packs and installs the package (once per content); returns the install. */
export async function packedInstall(): Promise<PackedInstall> {
  const dir = join(CACHE, `hoard-pack-${await inputsHash()}`);
  const result = (files: string[]): PackedInstall => ({
    files,
    project: join(dir, 'project'),
    bin: join(dir, 'project', 'node_modules', '.bin', 'hoard'),
  });
  const manifest = join(dir, 'files.json');
  await mkdir(CACHE, { recursive: true });
  return withLockFile(
    join(CACHE, 'hoard-pack.lock'),
    async () => {
      if (await exists(manifest)) return result(JSON.parse(await readFile(manifest, 'utf8')) as string[]);
      const staging = await mkdtemp(join(CACHE, '.hoard-pack-'));
      try {
        const packed = JSON.parse(await npm(['pack', '--json', '--pack-destination', staging], ROOT)) as {
          filename: string;
          files: { path: string }[];
        }[];
        const tarball = join(staging, packed[0].filename);
        const project = join(staging, 'project');
        await mkdir(project);
        await writeFile(
          join(project, 'package.json'),
          `${JSON.stringify({ name: 'hoard-consumer', private: true, type: 'module' })}\n`,
        );
        // From the npm cache when it can: the dependencies are the repository's own.
        await npm(['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], project);
        await writeFile(join(staging, 'files.json'), JSON.stringify(packed[0].files.map((f) => f.path)));
        // Installs of older contents are of no further use.
        for (const old of await readdir(CACHE))
          if (old.startsWith('hoard-pack-')) await rm(join(CACHE, old), { recursive: true, force: true });
        await rename(staging, dir);
      } finally {
        await rm(staging, { recursive: true, force: true });
      }
      return result(JSON.parse(await readFile(manifest, 'utf8')) as string[]);
    },
    {
      timeoutMs: 15 * 60_000,
      onTimeout: (owner) => new HoardError('HOARD_ELOCK_TIMEOUT', `packing hoard: lock held by ${owner}`),
    },
  );
}

/** A fresh folder inside the consumer project (so its scripts resolve `hoard`); removed by cleanup. */
export async function scratch(
  install: PackedInstall,
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = join(install.project, `t-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Runs a script of the consumer project with plain Node; resolves with its output, rejects with it. */
export async function runScript(
  file: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(process.execPath, [file], {
      cwd: dirname(file),
      env: { ...NODE_ENV, ...env },
      timeout: 5 * 60_000,
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${relative(ROOT, file)} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/**
 * Type-checks `files` (name → TypeScript) in a consumer folder `dir` of the
 * project, as a user's strict project would: `tsc --strict`, Node's module
 * resolution, the package's own declarations (not skipped). Resolves with
 * tsc's diagnostics, '' when there are none.
 */
export async function typeCheck(dir: string, files: Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  const tsconfig = {
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: 'es2024',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      skipLibCheck: false,
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules', '@types')],
    },
    include: ['*.ts'],
  };
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  try {
    await run(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', dir], { env: NODE_ENV, maxBuffer: 16 << 20 });
    return '';
  } catch (err) {
    const e = err as Error & { stdout?: string };
    if (!e.stdout) throw err;
    return e.stdout;
  }
}
