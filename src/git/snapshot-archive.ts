// Deterministic repository snapshots: `tar.zst` of one commit of a bare (or
// mirror) repository, byte-identical on every server that generates it from
// the same commit with the same Node (zstd) and git (zlib) versions.
//
// The archive holds a checkout of the commit plus a minimal, usable `.git`:
//   .git/HEAD      the commit, detached (`<sha>\n`): the archive depends on
//                  the commit only, never on which branch pointed at it
//   .git/config    core settings and `origin` = the URL given by the caller
//   .git/objects/pack/pack-<h>.{pack,idx}
//                  ONE pack of everything reachable from the commit, built by
//                  `git pack-objects` with one thread, no reuse of the
//                  mirror's deltas or objects and no bitmaps, so its bytes do
//                  not depend on how the mirror's own packs happen to look;
//                  with `anchors` and a history longer than their step, two
//                  or three such packs: the anchor's (shared by the next
//                  `step` commits, built once), the sub-anchor's (the next
//                  `subStep`) and the rest (snapshot-anchor.ts)
//   .git/objects/info/commit-graph
//                  the history's commit-graph, written from those packs
//                  alone (snapshot-commit-graph.ts): a restore's fetch walks
//                  the history without parsing commits
//   .git/refs/{heads,tags}/   (empty directories)
// There is no index (it holds stat data, which is not deterministic): after
// extracting, run `git reset -q` once (hoard git restore does).
//
// Format: POSIX ustar (pax `x` headers only for long/non-ASCII names and
// link targets), entries sorted by path bytes, directories included, every
// mtime the committer time of the commit, uid/gid 0, no user/group names,
// modes 0644 / 0755 (executables, directories) / 0777 (symlinks), then the
// end-of-archive marker. The tar stream is fed to zstd in fixed 128 KiB
// pieces, one frame, at DEFAULTS.snapshotZstdLevel, one thread, checksum on.
//
// Submodules (gitlinks) become empty directories, as a plain `git clone`
// leaves them. Paths that are not valid UTF-8, or that contain a `.git`
// segment, are refused (HOARD_EGIT). No smudge filters or eol conversion are
// applied: files hold the committed bytes.
//
// Memory: the entry list (paths and object names, not contents) is held;
// file contents stream from `git cat-file --batch` one chunk at a time.

import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough, pipeline, type Readable, Readable as ReadableStream } from 'node:stream';
import zlib from 'node:zlib';
import { ByteReader } from '../archive/byte-reader.ts';
import { END_OF_ARCHIVE, encodeHeader, padding, type TarEntryType } from '../archive/tar-format.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';
import { comparePathBytes, validateTreePath } from '../core/tree-path.ts';
import { gitFailure, runGit, spawnGit } from './git-process.ts';
import { isObjectId } from './object-id.ts';
import { type AnchorPacks, anchorsOf, deterministicPack } from './snapshot-anchor.ts';
import { COMMIT_GRAPH_PATH, writeSnapshotCommitGraph } from './snapshot-commit-graph.ts';
import { snapshotGitConfig } from './snapshot-git-config.ts';

/** Size of the pieces fed to the zstd compressor (part of the format). */
export const ZSTD_FEED_BYTES = 128 * 1024;
/** Largest symlink target accepted from a repository. */
const MAX_SYMLINK_BYTES = 4096;

export interface SnapshotArchiveOptions {
  /** A bare or mirror repository holding the commit. */
  repoDir: string;
  /** Commit (or anything `rev-parse` resolves to one). */
  commit: string;
  /** URL written as `remote.origin.url` in the archive's `.git/config`. */
  originUrl: string;
  /** Parent directory of the temporary work directory (removed afterwards). */
  tmpDir: string;
  zstdLevel?: number;
  signal?: AbortSignal;
  /** Anchor packs of this server, and the repo key they are filed under: long histories in two packs. */
  anchors?: { packs: AnchorPacks; key: string };
}

export interface SnapshotPlanEntry {
  path: string;
  type: TarEntryType;
  mode: number;
  size: number;
  /** Git object of a checkout file or symlink. */
  oid?: string;
  /** Local file with the body (the generated pack and index). */
  file?: string;
  /** Inline body (small .git files). */
  data?: Buffer;
}

export interface SnapshotPlan {
  commit: string;
  commitTime: number;
  entries: SnapshotPlanEntry[];
  workDir: string;
}

function gitError(message: string, hint?: string): HoardError {
  return new HoardError('HOARD_EGIT', message, { hint });
}

/** Like runGit, but stdout as bytes (ls-tree paths need not be UTF-8). */
async function gitBytes(args: string[], cwd: string, signal?: AbortSignal): Promise<Buffer> {
  const g = spawnGit(args, { cwd, signal });
  const out: Buffer[] = [];
  g.child.stdout?.on('data', (c: Buffer) => out.push(c));
  const exit = await g.done;
  if (exit.code !== 0) throw gitFailure(args, exit);
  return Buffer.concat(out);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Resolves the commit, lists its tree and builds the pack; the caller removes `workDir`. */
export async function planSnapshot(opts: SnapshotArchiveOptions): Promise<SnapshotPlan> {
  const { repoDir, signal } = opts;
  const rev = await runGit(['rev-parse', '--verify', '-q', `${opts.commit}^{commit}`], {
    cwd: repoDir,
    signal,
    okCodes: [1, 128],
  });
  const commit = rev.stdout.trim();
  if (rev.code !== 0 || !isObjectId(commit))
    throw new HoardError('HOARD_EGIT', `commit ${opts.commit} not found in ${repoDir}`, {
      details: { commit: opts.commit },
    });
  const ct = (await runGit(['show', '-s', '--format=%ct', commit], { cwd: repoDir, signal })).stdout.trim();
  const commitTime = Number(ct);
  if (!Number.isSafeInteger(commitTime) || commitTime < 0)
    throw gitError(`commit ${commit} has an unusable committer time ${JSON.stringify(ct)}`);

  const listing = await gitBytes(['ls-tree', '-r', '-z', '-l', '--full-tree', commit], repoDir, signal);
  const entries: SnapshotPlanEntry[] = [];
  const dirs = new Set<string>();
  const addParents = (path: string) => {
    for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) dirs.add(path.slice(0, i));
  };
  let start = 0;
  while (start < listing.byteLength) {
    const end = listing.indexOf(0, start);
    const rec = listing.subarray(start, end < 0 ? listing.byteLength : end);
    start = end < 0 ? listing.byteLength : end + 1;
    const tab = rec.indexOf(0x09);
    if (tab < 0) throw gitError('unexpected git ls-tree output');
    const [mode, type, oid, size] = rec.subarray(0, tab).toString('ascii').split(/ +/);
    let path: string;
    try {
      path = utf8.decode(rec.subarray(tab + 1));
    } catch {
      throw gitError(
        `commit ${commit} has a path that is not valid UTF-8`,
        'snapshots support UTF-8 paths only; clone the repository instead',
      );
    }
    try {
      validateTreePath(path);
    } catch (err) {
      throw gitError(`commit ${commit} has an unsafe path: ${(err as Error).message}`);
    }
    if (path.split('/').some((s) => s.toLowerCase() === '.git'))
      throw gitError(`commit ${commit} has a path with a .git segment: ${JSON.stringify(path)}`);
    addParents(path);
    if (mode === '160000' && type === 'commit') {
      dirs.add(path); // submodule: an empty directory, as a clone without --recurse-submodules leaves it
      continue;
    }
    if (type !== 'blob') throw gitError(`unexpected ${type} entry ${JSON.stringify(path)} in ${commit}`);
    const n = Number(size);
    if (mode === '120000') {
      if (n > MAX_SYMLINK_BYTES) throw gitError(`symlink ${JSON.stringify(path)} has a target too long`);
      entries.push({ path, type: 'symlink', mode: 0o777, size: n, oid });
    } else if (mode === '100755' || mode === '100644') {
      entries.push({ path, type: 'file', mode: mode === '100755' ? 0o755 : 0o644, size: n, oid });
    } else throw gitError(`unexpected mode ${mode} of ${JSON.stringify(path)} in ${commit}`);
  }

  const workDir = await mkdtemp(join(opts.tmpDir, 'snapshot-'));
  try {
    const packDir = join(workDir, 'pack');
    await mkdir(packDir);
    const { anchor, sub } = opts.anchors
      ? await anchorsOf(repoDir, commit, opts.anchors.packs.step, opts.anchors.packs.subStep, signal)
      : { anchor: null, sub: null };
    // The anchor's pack (built once per `step` commits: the long part of a
    // repository's first snapshot) and the rest's are separate pack-objects
    // processes with no shared input or output, so they run at once: the
    // rest is packed on the other core while the anchor is (same bytes).
    const anchorFiles = async (): Promise<string[]> => {
      if (!anchor || !opts.anchors) return [];
      const anchorDir = join(workDir, 'anchor');
      await mkdir(anchorDir);
      const names = await opts.anchors.packs.linkInto(opts.anchors.key, repoDir, anchor, anchorDir, signal);
      return names.map((n) => join(anchorDir, n));
    };
    // The sub-anchor's (`sub ^anchor`, built once per subStep commits), likewise.
    const subFiles = async (): Promise<string[]> => {
      if (!sub || !anchor || !opts.anchors) return [];
      const subDir = join(workDir, 'sub');
      await mkdir(subDir);
      const names = await opts.anchors.packs.linkInto(opts.anchors.key, repoDir, sub, subDir, signal, anchor);
      return names.map((n) => join(subDir, n));
    };
    const restFiles = async (): Promise<string[]> => {
      const base = sub ?? anchor;
      const input = base ? `${commit}\n^${base}\n` : `${commit}\n`;
      return (await deterministicPack(repoDir, input, packDir, signal)).map((n) => join(packDir, n));
    };
    const packs = await Promise.allSettled([anchorFiles(), subFiles(), restFiles()]);
    const files: string[] = [];
    for (const p of packs) {
      if (p.status === 'rejected') throw p.reason;
      files.push(...p.value);
    }
    for (const file of files) {
      const name = basename(file);
      entries.push({
        path: `.git/objects/pack/${name}`,
        type: 'file',
        mode: 0o444,
        size: (await stat(file)).size,
        file,
      });
    }
    // The history's commit-graph, from those packs alone (snapshot-commit-graph.ts).
    const graph = await writeSnapshotCommitGraph(workDir, files, commit, signal);
    entries.push({
      path: COMMIT_GRAPH_PATH,
      type: 'file',
      mode: 0o444,
      size: (await stat(graph)).size,
      file: graph,
    });
    const small = (path: string, text: string) => {
      const data = Buffer.from(text, 'utf8');
      entries.push({ path, type: 'file', mode: 0o644, size: data.byteLength, data });
    };
    small('.git/HEAD', `${commit}\n`);
    small('.git/config', snapshotGitConfig(opts.originUrl));
    for (const d of ['.git', '.git/objects', '.git/objects/info', '.git/objects/pack', '.git/refs'])
      dirs.add(d);
    dirs.add('.git/refs/heads');
    dirs.add('.git/refs/tags');
    for (const d of dirs) entries.push({ path: d, type: 'directory', mode: 0o755, size: 0 });
    entries.sort((a, b) => comparePathBytes(a.path, b.path));
    for (let i = 1; i < entries.length; i++)
      if (entries[i].path === entries[i - 1].path)
        throw gitError(`commit ${commit} lists ${JSON.stringify(entries[i].path)} twice`);
    return { commit, commitTime, entries, workDir };
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
}

/** The uncompressed tar stream of a plan, as buffers. Removes `plan.workDir` when done. */
export async function* tarStream(
  plan: SnapshotPlan,
  repoDir: string,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  const cat = spawnGit(['cat-file', '--batch'], { cwd: repoDir, signal, stdin: true });
  try {
    const stdout = cat.child.stdout;
    const stdin = cat.child.stdin;
    if (!stdout || !stdin) throw gitError('git cat-file has no pipes');
    // Feed object names with backpressure while the bodies are read below.
    const feeding = (async () => {
      for (const e of plan.entries) {
        if (e.oid === undefined) continue;
        if (!stdin.write(`${e.oid}\n`))
          await new Promise<void>((resolve) => {
            const done = () => {
              stdin.off('drain', done);
              stdin.off('close', done);
              resolve();
            };
            stdin.on('drain', done);
            stdin.on('close', done);
          });
        if (stdin.destroyed) return;
      }
      stdin.end();
    })();
    // Through a pipe at once: Node discards an unread child stdout when the child exits.
    const reader = new ByteReader(stdout.pipe(new PassThrough()));
    const readObjectHeader = async (e: SnapshotPlanEntry) => {
      const line = await reader.readLine();
      if (line !== `${e.oid} blob ${e.size}`)
        throw gitError(`git cat-file answered ${JSON.stringify(line)} for ${e.oid} (${e.path})`);
    };
    const mtime = plan.commitTime;
    for (const e of plan.entries) {
      if (e.type === 'directory') {
        yield encodeHeader({ path: e.path, type: 'directory', mode: e.mode, mtime, size: 0 });
      } else if (e.type === 'symlink') {
        await readObjectHeader(e);
        const target = await reader.readBuffer(e.size);
        await reader.readBuffer(1);
        let linkname: string;
        try {
          linkname = utf8.decode(target);
        } catch {
          throw gitError(`symlink ${JSON.stringify(e.path)} has a target that is not valid UTF-8`);
        }
        if (linkname.includes('\0')) throw gitError(`symlink ${JSON.stringify(e.path)} has a NUL byte`);
        yield encodeHeader({ path: e.path, type: 'symlink', mode: e.mode, mtime, size: 0, linkname });
      } else {
        yield encodeHeader({ path: e.path, type: 'file', mode: e.mode, mtime, size: e.size });
        if (e.oid !== undefined) {
          await readObjectHeader(e);
          yield* reader.readExactly(e.size);
          await reader.readBuffer(1);
        } else if (e.data) {
          yield e.data;
        } else if (e.file) {
          let n = 0;
          for await (const chunk of createReadStream(e.file, { highWaterMark: DEFAULTS.streamChunkBytes })) {
            n += (chunk as Buffer).byteLength;
            yield chunk as Buffer;
          }
          if (n !== e.size) throw gitError(`${e.file} changed size while archiving`);
        }
        yield padding(e.size);
      }
    }
    yield END_OF_ARCHIVE;
    await feeding;
    const exit = await cat.done;
    if (exit.code !== 0) throw gitFailure(['cat-file', '--batch'], exit);
  } finally {
    cat.kill();
    await rm(plan.workDir, { recursive: true, force: true });
  }
}

/** Re-chunks a byte stream into pieces of exactly `size` bytes (the last one shorter). */
export async function* fixedChunks(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafe(size);
  let used = 0;
  for await (const chunk of source) {
    let off = 0;
    while (off < chunk.byteLength) {
      const n = Math.min(size - used, chunk.byteLength - off);
      chunk.copy(buf, used, off, off + n);
      used += n;
      off += n;
      if (used === size) {
        yield buf;
        buf = Buffer.allocUnsafe(size);
        used = 0;
      }
    }
  }
  if (used > 0) yield buf.subarray(0, used);
}

/** A zstd compressor with every parameter that affects the output fixed. */
export function deterministicZstd(level: number = DEFAULTS.snapshotZstdLevel): zlib.ZstdCompress {
  const c = zlib.constants;
  return zlib.createZstdCompress({
    params: {
      [c.ZSTD_c_compressionLevel]: level,
      [c.ZSTD_c_checksumFlag]: 1,
      [c.ZSTD_c_contentSizeFlag]: 0,
      [c.ZSTD_c_nbWorkers]: 0,
    },
  });
}

/**
 * The snapshot of a commit as a `tar.zst` stream. Planning (tree listing and
 * the pack) happens before this resolves; the archive streams after. The
 * temp directory is removed when the stream ends, fails or is destroyed.
 */
export async function snapshotArchive(opts: SnapshotArchiveOptions): Promise<{
  commit: string;
  commitTime: number;
  stream: Readable;
}> {
  const plan = await planSnapshot(opts);
  const source = ReadableStream.from(
    fixedChunks(tarStream(plan, opts.repoDir, opts.signal), ZSTD_FEED_BYTES),
    {
      objectMode: false,
      highWaterMark: ZSTD_FEED_BYTES,
    },
  );
  const zstd = deterministicZstd(opts.zstdLevel);
  // The generator removes the work dir itself; this covers a stream destroyed before it started.
  pipeline(source, zstd, () => {
    void rm(plan.workDir, { recursive: true, force: true });
  });
  return { commit: plan.commit, commitTime: plan.commitTime, stream: zstd };
}
