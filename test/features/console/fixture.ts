// A real `hoard serve` with something to show, for the web console's tests
// and scripts/console-screenshot.ts: a tokens file, two git upstreams
// mirrored by cloning through the server (one of them twice) plus one that
// does not exist (a failing mirror), a snapshot, a synced folder pushed
// three times by the real CLI (history; one file path and one message carry
// HTML), a Turborepo artifact stored and read, and blob API hits and misses.

import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sha256 } from '../../../src/core/digest.ts';
import { git, makeUpstream, type ServerProcess, startServer, tempDir } from '../../git/helpers/harness.ts';
import { writeTokensFile } from '../../support/tokens.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const HOARD = join(ROOT, 'bin', 'hoard.js');

export const TOKENS = {
  read: 'console-read-token-5f2c',
  write: 'console-write-token-91ab',
  /** Writes, but only under team/other/. */
  other: 'console-other-token-3d7e',
} as const;

/** A string that runs script if a page ever renders it as markup. */
export const XSS = '<img src=x onerror="window.__xss=1">';
export const SYNC_REF = 'team/app/main';
export const TURBO_HASH = 'abc123def4567890';

export interface ConsoleFixture {
  url: string;
  server: ServerProcess;
  /** The three versions pushed, oldest first (their messages). */
  messages: string[];
  /** Blobs stored through the API (the first one read 16 times). */
  blobs: string[];
  stop(): Promise<void>;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function ok(res: Response, what: string): Promise<Buffer> {
  const body = Buffer.from(await res.arrayBuffer());
  if (!res.ok) throw new Error(`${what}: ${res.status} ${body.toString()}`);
  return body;
}

export async function startConsoleFixture(
  opts: { sampleInterval?: string; args?: string[] } = {},
): Promise<ConsoleFixture> {
  const dir = tempDir('hoard-console-');
  const up = join(dir.path, 'up');
  makeUpstream(up, 'app', 4);
  makeUpstream(up, 'lib', 2);
  const tokens = await writeTokensFile(dir.path, [
    { name: 'viewer', token: TOKENS.read, scopes: ['read'] },
    { name: 'ci', token: TOKENS.write, scopes: ['read', 'write'] },
    { name: 'other-team', token: TOKENS.other, scopes: ['read', 'write'], refs: ['team/other/'] },
  ]);
  const server = await startServer(join(dir.path, 'data'), [
    '--tokens',
    tokens,
    '--git-upstream',
    `up=file://${up}`,
    '--max-disk',
    '1GiB',
    '--cache-ref-ttl',
    '168h',
    '--console-sample-interval',
    opts.sampleInterval ?? '250ms',
    ...(opts.args ?? []),
  ]);
  const url = server.url;
  try {
    // git: app cloned twice, lib once, and a repository the upstream lacks.
    const auth = (path: string) => `http://ci:${TOKENS.write}@${url.slice('http://'.length)}/git/${path}`;
    await git(['clone', '--quiet', auth('up/app.git'), join(dir.path, 'clone-1')]);
    await git(['clone', '--quiet', auth('up/app.git'), join(dir.path, 'clone-2')]);
    await git(['clone', '--quiet', auth('up/lib.git'), join(dir.path, 'clone-3')]);
    await git(['clone', '--quiet', auth('up/missing.git'), join(dir.path, 'clone-4')]).catch(() => {});
    await ok(
      await fetch(`${url}/git/up/app.git/snapshot.tar.zst`, { headers: bearer(TOKENS.read) }),
      'snapshot',
    );

    // A synced folder, pushed three times by the CLI.
    const work = join(dir.path, 'work');
    await mkdir(join(work, 'src'), { recursive: true });
    await writeFile(join(work, 'README.md'), '# app\n');
    await writeFile(join(work, 'src', 'main.ts'), 'console.log("v1");\n');
    await writeFile(join(work, 'first-only.txt'), 'only in the first version\n');
    const messages = ['first version', `second ${XSS}`, 'third version'];
    const push = async (message: string) =>
      run(NODE, [HOARD, 'push', work, url, '--ref', SYNC_REF, '--message', message], {
        env: { ...process.env, HOARD_TOKEN: TOKENS.write, HOARD_CONFIG: '' },
      });
    await push(messages[0]);
    await writeFile(join(work, 'src', 'main.ts'), 'console.log("v2");\n');
    await writeFile(join(work, 'src', `${XSS}.txt`), 'a file whose name is markup\n');
    await rm(join(work, 'first-only.txt'));
    await push(messages[1]);
    await writeFile(join(work, 'src', 'util.ts'), `export const big = "${'x'.repeat(5000)}";\n`);
    await push(messages[2]);

    // Turborepo: one artifact stored, read twice, one miss.
    const turbo = `${url}/turbo/v8/artifacts/${TURBO_HASH}?slug=acme`;
    await ok(
      await fetch(turbo, {
        method: 'PUT',
        headers: { ...bearer(TOKENS.write), 'content-type': 'application/octet-stream' },
        body: Buffer.from('turbo artifact bytes'),
      }),
      'turbo put',
    );
    for (let i = 0; i < 2; i++) await ok(await fetch(turbo, { headers: bearer(TOKENS.read) }), 'turbo get');
    await (
      await fetch(`${url}/turbo/v8/artifacts/ffff0000?slug=acme`, { headers: bearer(TOKENS.read) })
    ).arrayBuffer();

    // Blob API: three blobs stored, the first read 16 times (the most-read tally samples 1 read in 8); one miss.
    const blobs: string[] = [];
    for (const [i, size] of [100_000, 20_000, 3_000].entries()) {
      const bytes = Buffer.alloc(size, 97 + i);
      const d = sha256(bytes);
      blobs.push(d);
      await ok(
        await fetch(`${url}/v1/blobs/sha256/${d.slice(7)}`, {
          method: 'PUT',
          headers: bearer(TOKENS.write),
          body: bytes,
        }),
        'blob put',
      );
    }
    for (let i = 0; i < 16; i++)
      await ok(
        await fetch(`${url}/v1/blobs/sha256/${blobs[0].slice(7)}`, { headers: bearer(TOKENS.read) }),
        'blob get',
      );
    await (
      await fetch(`${url}/v1/blobs/sha256/${'0'.repeat(64)}`, { headers: bearer(TOKENS.read) })
    ).arrayBuffer();

    return {
      url,
      server,
      messages,
      blobs,
      async stop() {
        await server.stop();
        dir.cleanup();
      },
    };
  } catch (err) {
    await server.stop();
    dir.cleanup();
    throw err;
  }
}
