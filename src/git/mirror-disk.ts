// One mirror directory on disk, below the policy of mirror.ts: the git
// config a serving mirror gets, its persisted metadata (hoard.json), the
// identity that reveals a replaced directory, and stale lock removal.
// (Queries to git about the mirror's refs and objects are in git-queries.ts.)

import { statSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';

export interface MirrorMeta {
  /** The repo path the mirror was created for (the upstream URL is built from it). */
  path: string;
  createdAt?: number;
  lastFetchAt?: number;
  lastUsedAt?: number;
}

/** Config written into every mirror at clone time (`git clone -c`), tuning it for serving. */
export const MIRROR_CONFIG: Record<string, string> = {
  'uploadpack.allowFilter': 'true',
  'uploadpack.allowAnySHA1InWant': 'true',
  'uploadpack.allowReachableSHA1InWant': 'true',
  'uploadpack.allowTipSHA1InWant': 'true',
  'repack.writeBitmaps': 'true',
  'pack.writeBitmapHashCache': 'true',
  'core.commitGraph': 'true',
  'fetch.writeCommitGraph': 'true',
  'gc.auto': '0',
  'maintenance.auto': 'false',
  'core.logAllRefUpdates': 'false',
};

/** MIRROR_CONFIG as git config file text, for repositories made with `git init` (two-level keys). */
export function mirrorConfigText(): string {
  const sections = new Map<string, string[]>();
  for (const [k, v] of Object.entries(MIRROR_CONFIG)) {
    const dot = k.indexOf('.');
    const s = k.slice(0, dot);
    sections.set(s, [...(sections.get(s) ?? []), `\t${k.slice(dot + 1)} = ${v}\n`]);
  }
  return [...sections].map(([s, lines]) => `[${s}]\n${lines.join('')}`).join('');
}

/** Bounds on git's memory during maintenance (`git -c`). */
export const MAINTENANCE_CONFIG = [
  '-c',
  `pack.threads=${DEFAULTS.gitMaintenanceThreads}`,
  '-c',
  `pack.windowMemory=${DEFAULTS.gitMaintenanceWindowMemory}`,
  '-c',
  `pack.deltaCacheSize=${DEFAULTS.gitMaintenanceDeltaCacheSize}`,
];

/**
 * Identity of a directory: device, inode and birth time. A directory removed
 * and replaced by a copy may get the same inode number back, never the same
 * birth time (where the file system records one: ext4, xfs, btrfs, tmpfs).
 */
/**
 * Which version of the file at `path` this is (null when it cannot be
 * stat'ed): git replaces the files it rewrites (`config`, `packed-refs`) by
 * rename, so a new content has a new inode; size and mtime catch the rest.
 */
export async function fileIdentity(path: string): Promise<string | null> {
  try {
    const st = await stat(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return null;
  }
}

export function dirIdentity(dir: string): string | null {
  try {
    const st = statSync(dir, { bigint: true });
    return `${st.dev}:${st.ino}:${st.birthtimeNs}`;
  } catch {
    return null;
  }
}

export async function readMeta(dir: string): Promise<MirrorMeta | null> {
  try {
    const meta = JSON.parse(await readFile(join(dir, 'hoard.json'), 'utf8')) as MirrorMeta;
    return typeof meta === 'object' && meta !== null ? meta : null;
  } catch {
    return null;
  }
}

/**
 * Removes `*.lock` files (and temporary packs) that a killed git left in a
 * mirror. Only called when no git of this process works on the mirror (under
 * its lock, before its first use).
 */
export async function removeStaleLocks(dir: string): Promise<string[]> {
  const removed: string[] = [];
  const scan = async (d: string, recurse: boolean, tmpPacks: boolean): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (recurse) await scan(p, true, false);
        continue;
      }
      if (
        e.name.endsWith('.lock') ||
        (tmpPacks && (e.name.startsWith('tmp_') || e.name.startsWith('.tmp-')))
      ) {
        await rm(p, { force: true });
        removed.push(relative(dir, p));
      } else if (tmpPacks && e.name.endsWith('.keep')) {
        // index-pack's temporary keep ("fetch-pack <pid> on <host>"), not a user's keep.
        const text = await readFile(p, 'utf8').catch(() => '');
        if (/^(fetch-pack|receive-pack) /.test(text)) {
          await rm(p, { force: true });
          removed.push(relative(dir, p));
        }
      }
    }
  };
  await scan(dir, false, false);
  await scan(join(dir, 'refs'), true, false);
  await scan(join(dir, 'objects', 'info'), true, false);
  await scan(join(dir, 'objects', 'pack'), false, true);
  return removed;
}
