// Per remote+ref sync state of a directory, in `<dir>/.hoard/sync/`:
//
// - snapshot, version, tree: the remote snapshot this directory last synced
//   with, the ref version it was read or written at (what push's
//   compare-and-set expects), and that snapshot's tree;
// - base: the tree the directory itself had at that moment. Local changes are
//   "scan vs base"; it differs from `tree` only after a push that merged in
//   someone else's changes (those are still to be pulled) or a pull that kept
//   un-pushed local edits.
//
// Trees named by the state are kept in `<dir>/.hoard/trees/` so a no-op push
// or pull never fetches a tree.

import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher, hexOf, isDigest, sha256 } from '../core/digest.ts';
import { type Tree, TreeDecoder } from '../core/tree.ts';
import {
  fsyncDir,
  isErrno,
  isPidAlive,
  pidOfTempName,
  tempName,
  writeFileAtomic,
} from '../store/fs-atomic.ts';
import { STATE_DIR } from './ignore-rules.ts';

export interface SyncState {
  remote: string;
  ref: string;
  snapshot: Digest;
  version: string;
  tree: Digest;
  base: Digest;
  syncedAt: string;
}

const FORMAT = 'hoard-sync-state/1';
/** Largest kept tree loadLocalTreeBytes reads whole (a tree of ~500,000 small files). */
const MAX_WHOLE_TREE_BYTES = 64 * 1024 * 1024;

function stateDir(dir: string): string {
  return join(dir, STATE_DIR, 'sync');
}

function treesDir(dir: string): string {
  return join(dir, STATE_DIR, 'trees');
}

function stateFile(dir: string, remote: string, ref: string): string {
  return join(stateDir(dir), `${hexOf(sha256(`${remote}\n${ref}`)).slice(0, 32)}.json`);
}

export async function loadState(dir: string, remote: string, ref: string): Promise<SyncState | undefined> {
  let v: unknown;
  try {
    v = JSON.parse(await readFile(stateFile(dir, remote, ref), 'utf8'));
  } catch (err) {
    if (isErrno(err, 'ENOENT') || err instanceof SyntaxError) return undefined;
    throw err;
  }
  const state = validState(v);
  return state?.remote === remote && state.ref === ref ? state : undefined;
}

/** A parsed state file as a SyncState, or undefined when it is not one (damaged, other format). */
function validState(v: unknown): SyncState | undefined {
  const o = v as Record<string, unknown> | null;
  if (
    o?.format !== FORMAT ||
    typeof o.remote !== 'string' ||
    typeof o.ref !== 'string' ||
    !isDigest(o.snapshot) ||
    !isDigest(o.tree) ||
    !isDigest(o.base) ||
    typeof o.version !== 'string'
  )
    return undefined;
  return o as unknown as SyncState;
}

/** The parsed contents of every readable state file of a directory (unreadable ones are skipped). */
async function readStateFiles(dir: string): Promise<unknown[]> {
  const sd = stateDir(dir);
  const out: unknown[] = [];
  for (const name of await readdir(sd).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(await readFile(join(sd, name), 'utf8')));
    } catch {
      // unreadable: as if absent
    }
  }
  return out;
}

export async function saveState(dir: string, state: SyncState): Promise<void> {
  const sd = stateDir(dir);
  await mkdir(sd, { recursive: true });
  await writeFileAtomic(
    stateFile(dir, state.remote, state.ref),
    `${JSON.stringify({ format: FORMAT, ...state })}\n`,
    sd,
  );
  await pruneTrees(dir);
}

/**
 * A tree kept locally, verified against its digest; undefined when absent or
 * damaged. Decoded while it is read (never the whole file in memory next to
 * its entries); the entries are used only once the digest verified.
 */
export async function loadLocalTree(dir: string, digest: Digest): Promise<Tree | undefined> {
  try {
    const decoder = new TreeDecoder();
    const hasher = new Hasher();
    for await (const chunk of createReadStream(join(treesDir(dir), hexOf(digest)), {
      highWaterMark: DEFAULTS.streamChunkBytes,
    })) {
      hasher.update(chunk as Buffer);
      decoder.push(chunk as Buffer);
    }
    if (hasher.digest() !== digest) return undefined;
    return decoder.end();
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    if (err instanceof Error && 'code' in err && String(err.code).startsWith('HOARD_')) return undefined;
    throw err;
  }
}

/**
 * The bytes of a tree kept locally, checked against its digest (not
 * decoded); undefined when absent or damaged. For callers that only read
 * what a tree they already trust references (push's fileDigestsOfTreeBytes).
 */
export async function loadLocalTreeBytes(dir: string, digest: Digest): Promise<Buffer | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(join(treesDir(dir), hexOf(digest)), 'r');
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
    throw err;
  }
  try {
    // A tree too large to hold whole is left to the streaming loadLocalTree.
    if ((await fh.stat()).size > MAX_WHOLE_TREE_BYTES) return undefined;
    const bytes = await fh.readFile();
    return sha256(bytes) === digest ? bytes : undefined;
  } finally {
    await fh.close();
  }
}

export async function storeLocalTree(dir: string, digest: Digest, bytes: Uint8Array): Promise<void> {
  const td = treesDir(dir);
  await mkdir(td, { recursive: true });
  const path = join(td, hexOf(digest));
  const kept = await readFile(path).catch((err) => {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  });
  // Kept and intact: nothing to write; absent or damaged: (re)write it.
  if (kept !== undefined && sha256(kept) === digest) return;
  await writeFileAtomic(path, bytes, td);
}

/**
 * A kept tree written while it streams in: chunks go to a temp file in the
 * trees folder; commit() (after the caller verified the digest) publishes it
 * atomically, abort() removes what was not committed.
 */
export async function keptTreeWriter(
  dir: string,
  digest: Digest,
): Promise<{ write(chunk: Uint8Array): Promise<void>; commit(): Promise<void>; abort(): Promise<void> }> {
  const td = treesDir(dir);
  await mkdir(td, { recursive: true });
  const tmp = join(td, tempName());
  const fh = await open(tmp, 'wx');
  let open_ = true;
  let done = false;
  const close = async () => {
    if (!open_) return;
    open_ = false;
    await fh.close();
  };
  return {
    async write(chunk) {
      await fh.write(chunk);
    },
    async commit() {
      await fh.sync();
      await close();
      await rename(tmp, join(td, hexOf(digest)));
      done = true;
      await fsyncDir(td);
    },
    async abort() {
      await close().catch(() => {});
      if (!done) await unlink(tmp).catch(() => {});
    },
  };
}

/** Removes kept trees no state file names. */
async function pruneTrees(dir: string): Promise<void> {
  const keep = new Set<string>();
  for (const v of await readStateFiles(dir)) {
    const { tree, base } = (v ?? {}) as { tree?: unknown; base?: unknown };
    for (const d of [tree, base]) if (isDigest(d)) keep.add(hexOf(d));
  }
  const td = treesDir(dir);
  for (const name of await readdir(td).catch(() => [] as string[])) {
    if (/^[0-9a-f]{64}$/.test(name) && !keep.has(name)) await unlink(join(td, name)).catch(() => {});
    // A tree download interrupted by a crash (keptTreeWriter's temp file of a dead process).
    const pid = pidOfTempName(name);
    if (pid !== undefined && pid !== process.pid && !isPidAlive(pid))
      await unlink(join(td, name)).catch(() => {});
  }
}

/** Every valid sync state of a directory (one per remote+ref it synced with), most recent first. */
export async function listStates(dir: string): Promise<SyncState[]> {
  const out: SyncState[] = [];
  for (const v of await readStateFiles(dir)) {
    const s = validState(v);
    if (s) out.push(s);
  }
  return out.sort((a, b) => String(b.syncedAt ?? '').localeCompare(String(a.syncedAt ?? '')));
}

// "Verify on next push": a pull that found blobs missing on the remote leaves
// `<key>.verify` next to the state file, so the next push from this folder
// checks every blob of the tree (not only the changed ones) and re-uploads
// what it can, even when the ref is up to date. A separate file rather than
// a state field: the pull that fails has no new state to record.

function verifyFile(dir: string, remote: string, ref: string): string {
  return stateFile(dir, remote, ref).replace(/\.json$/, '.verify');
}

export async function markNeedsVerify(dir: string, remote: string, ref: string): Promise<void> {
  const sd = stateDir(dir);
  await mkdir(sd, { recursive: true });
  await writeFileAtomic(verifyFile(dir, remote, ref), `${JSON.stringify({ remote, ref })}\n`, sd);
}

export async function needsVerify(dir: string, remote: string, ref: string): Promise<boolean> {
  try {
    await readFile(verifyFile(dir, remote, ref));
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

export async function clearNeedsVerify(dir: string, remote: string, ref: string): Promise<void> {
  await unlink(verifyFile(dir, remote, ref)).catch((err) => {
    if (!isErrno(err, 'ENOENT')) throw err;
  });
}
