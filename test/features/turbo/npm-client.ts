// The real build-tool clients for the feature tests, installed by the tests
// themselves with npm at a pinned version into the repository's ignored
// `tmp/test-clients/<pkg>@<version>/` (never committed). A finished install is
// published by one rename, so concurrent test files never see half of one and
// a run installs each client at most once (later runs reuse it).

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const ROOT = resolve(import.meta.dirname, '../../../tmp/test-clients');

/**
 * The pinned clients (their linux-x64 binary packages install and run here).
 * A library (`bin: undefined`) is imported by a child script instead.
 */
export const CLIENTS = {
  turbo: { pkg: 'turbo', version: '2.11.11', bin: 'turbo' },
  nx: { pkg: 'nx', version: '24.0.6', bin: 'nx' },
  actionsCache: { pkg: '@actions/cache', version: '6.3.0', bin: undefined },
} as const;

export interface InstalledClient {
  /** The install's node_modules (a workspace links to it). */
  nodeModules: string;
  /** The client's executable; for a library, its package directory. */
  bin: string;
  version: string;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Installs (once) and returns the pinned client. Throws with npm's output when npm cannot. */
export async function installClient(name: keyof typeof CLIENTS): Promise<InstalledClient> {
  const { pkg, version, bin } = CLIENTS[name];
  const dir = join(ROOT, `${pkg.replace('/', '+')}@${version}`);
  const result = {
    nodeModules: join(dir, 'node_modules'),
    bin: bin === undefined ? join(dir, 'node_modules', pkg) : join(dir, 'node_modules', '.bin', bin),
    version,
  };
  if (await exists(result.bin)) return result;
  await mkdir(ROOT, { recursive: true });
  const staging = await mkdtemp(join(ROOT, `.${pkg.replace('/', '+')}-`));
  try {
    await run(
      'npm',
      [
        'install',
        '--prefix',
        staging,
        '--no-save',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        `${pkg}@${version}`,
      ],
      { timeout: 10 * 60_000, maxBuffer: 16 * 1024 * 1024 },
    ).catch((err: Error & { stderr?: string }) => {
      throw new Error(`npm could not install ${pkg}@${version} (offline?): ${err.stderr || err.message}`);
    });
    // Another test file may have won the race: its install is as good as ours.
    await rename(staging, dir).catch(async (err: NodeJS.ErrnoException) => {
      if (!(await exists(result.bin))) throw err;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return result;
}
