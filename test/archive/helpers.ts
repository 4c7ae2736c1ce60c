// Test helpers for snapshot archives: building upstream repositories with
// awkward content, mirrors with different pack layouts, tars built in memory,
// and hashing streams.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { isHoardError } from '../../src/core/errors.ts';
import { GIT_ENV } from '../git/helpers/harness.ts';

const execFileP = promisify(execFile);

export { GIT_ENV };

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileP('git', args, { cwd, env: GIT_ENV, maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

let tick = 1_700_000_000;

/** Commits everything in `dir` with a fixed, increasing date. */
export async function commitAll(dir: string, message: string, add = true): Promise<string> {
  tick += 60;
  const date = `${tick} +0000`;
  if (add) await git(dir, 'add', '-A');
  await execFileP('git', ['commit', '-q', '--allow-empty', '-m', message], {
    cwd: dir,
    env: { ...GIT_ENV, GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
  });
  return git(dir, 'rev-parse', 'HEAD');
}

async function put(root: string, path: string, data: string | Buffer): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), data);
}

/**
 * A work repository with history and awkward content: executables, symlinks,
 * long and non-ASCII paths, an empty file, a file of several zstd feed
 * pieces, a submodule gitlink. Returns the path of the work repository.
 */
export async function makeUpstream(root: string, commits = 5): Promise<string> {
  const dir = join(root, 'upstream');
  await mkdir(dir, { recursive: true });
  await git(dir, 'init', '-q', '-b', 'main');
  for (let i = 0; i < commits; i++) {
    await put(dir, 'README.md', `# project\nrevision ${i}\n`);
    await put(dir, `src/file-${i}.txt`, `content ${i}\n`.repeat(50 + i));
    await commitAll(dir, `commit ${i}`);
  }
  await put(dir, 'bin/run.sh', '#!/bin/sh\necho run\n');
  await chmod(join(dir, 'bin/run.sh'), 0o755);
  await symlink('../README.md', join(dir, 'bin/readme-link')).catch(() => {});
  await symlink('src', join(dir, 'src-link'));
  await put(dir, 'empty', '');
  await put(dir, `${'deep/'.repeat(30)}leaf.txt`, 'deep\n');
  await put(dir, `long-${'n'.repeat(120)}.txt`, 'long name\n');
  await put(dir, 'unicodé/naïve 文件.txt', 'unicode\n');
  const big = Buffer.alloc(700 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  await put(dir, 'data/big.bin', big);
  await commitAll(dir, 'awkward content');
  // A gitlink (submodule) entry without a .gitmodules checkout of it.
  await git(
    dir,
    'update-index',
    '--add',
    '--cacheinfo',
    '160000,1111111111111111111111111111111111111111,vendor/sub',
  );
  await commitAll(dir, 'submodule', false);
  return dir;
}

/** A mirror of `upstream` under `root`, as the git proxy keeps them. */
export async function makeMirror(upstream: string, dest: string, layout: 'packed' | 'loose'): Promise<void> {
  if (layout === 'packed') {
    await git(dirname(dest), 'clone', '-q', '--mirror', upstream, dest);
    // Like a served mirror: one pack with other delta choices, bitmaps, a commit-graph.
    await git(dest, 'repack', '-a', '-d', '-b', '-q', '--window=50', '--depth=10');
    await git(dest, 'commit-graph', 'write', '--reachable');
  } else {
    // Objects arrive loose and in a different order of packs.
    await mkdir(dest, { recursive: true });
    await git(dest, 'init', '-q', '--bare');
    await git(dest, 'config', 'fetch.unpackLimit', '1000000');
    await git(dest, 'config', 'transfer.unpackLimit', '1000000');
    await git(dest, 'fetch', '-q', `file://${upstream}`, '+refs/heads/*:refs/heads/*');
  }
}

export async function sha256Of(stream: Readable, saveTo?: string): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  const out = saveTo ? createWriteStream(saveTo) : undefined;
  await pipeline(stream, async function* (src: AsyncIterable<Buffer>) {
    for await (const c of src) {
      h.update(c);
      size += c.byteLength;
      if (out && !out.write(c)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
  });
  if (out) await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
  return { hex: h.digest('hex'), size };
}

export type Entry = Partial<tar.Header> & { name: string; body?: string | Buffer };

/** Builds a tar in memory with tar-stream (which writes any name it is given). */
export async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const { body, ...h } of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ mtime: new Date(1_700_000_000_000), ...h }, body ?? '', (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function zst(buf: Buffer): Buffer {
  return zlib.zstdCompressSync(buf);
}

let cases = 0;

/** A fresh `<root>/case-<n>/staging` pair: anything written outside staging shows up in outer. */
export async function stage(root: string): Promise<{ outer: string; staging: string }> {
  const outer = join(root, `case-${cases++}`);
  const staging = join(outer, 'staging');
  await mkdir(staging, { recursive: true });
  return { outer, staging };
}

/** Asserts that an extraction into `outer`/staging is refused as unsafe and wrote nothing next to staging. */
export async function assertRefused(run: Promise<unknown>, outer: string, pattern: RegExp): Promise<void> {
  await assert.rejects(run, (e) => {
    assert.ok(isHoardError(e, 'HOARD_EARCHIVE_UNSAFE'), String(e));
    assert.match(e.message, pattern);
    return true;
  });
  assert.deepEqual(await readdir(outer), ['staging'], 'nothing written next to the staging dir');
}
