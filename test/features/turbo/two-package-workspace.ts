// The workspace the real-client tests build (Turborepo, Nx): packages `a`
// and `b` (b depends on a), each with a build that writes random bytes to
// dist/ and logs its execution outside the outputs, so only a cache restore
// reproduces dist/ without a new log line.

import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const BUILD_JS = `
const fs = require('node:fs');
const crypto = require('node:crypto');
const name = require('./src.json').name;
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/out.txt', name + ' ' + crypto.randomBytes(8).toString('hex'));
fs.writeFileSync('dist/blob.bin', crypto.randomBytes(200000));
fs.appendFileSync('../../executions.log', name + '\\n');
console.log('BUILT ' + name);
`;

export interface Workspace {
  readonly root: string;
  /** dist/ of both packages. */
  outputs(): Promise<Record<string, Buffer>>;
  /** The builds that really ran, in order (`a`, `b`, …). */
  executions(): Promise<string[]>;
  /** Changes package a's input, so its task (and b's) hash anew. */
  renameA(name: string): Promise<void>;
  /** Deletes these paths (relative to the root) and both dist/ folders. */
  wipe(paths: readonly string[]): Promise<void>;
}

/** Creates the workspace at `root` with `rootFiles` (JSON) and the client's node_modules linked in. */
export async function twoPackageWorkspace(
  root: string,
  nodeModules: string,
  rootFiles: Record<string, unknown>,
): Promise<Workspace> {
  for (const [file, value] of Object.entries(rootFiles)) await writeJson(join(root, file), value);
  for (const p of ['a', 'b']) {
    const pkg = join(root, 'packages', p);
    await writeJson(join(pkg, 'package.json'), {
      name: p,
      version: '1.0.0',
      scripts: { build: 'node build.js' },
      ...(p === 'b' ? { dependencies: { a: '*' } } : {}),
    });
    await writeJson(join(pkg, 'src.json'), { name: p });
    await writeFile(join(pkg, 'build.js'), BUILD_JS);
  }
  await symlink(nodeModules, join(root, 'node_modules'));
  await run('git', ['init', '-q', root]);
  return {
    root,
    async outputs() {
      const out: Record<string, Buffer> = {};
      for (const p of ['a', 'b'])
        for (const f of ['out.txt', 'blob.bin'])
          out[`${p}/${f}`] = await readFile(join(root, 'packages', p, 'dist', f));
      return out;
    },
    async executions() {
      const log = await readFile(join(root, 'executions.log'), 'utf8').catch(() => '');
      return log.split('\n').filter(Boolean);
    },
    renameA: (name) => writeJson(join(root, 'packages', 'a', 'src.json'), { name }),
    async wipe(paths) {
      for (const p of [...paths, 'packages/a/dist', 'packages/b/dist'])
        await rm(join(root, p), { recursive: true, force: true });
    },
  };
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}
