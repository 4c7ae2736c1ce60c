// Integrity check of a store. For a filesystem store (a data directory or a
// file:// remote): re-hashes every blob against its name, reports stray temp
// files, and with `repair` moves bad blobs to `<root>/quarantine/` (never
// deletes: a human may want to look at them). For every store, any remote
// included: the reachability check (reachability.ts), so a blob that a ref
// needs and that is missing or was just quarantined is reported with the
// refs and paths needing it. Read-only otherwise, so it is safe on the data
// directory of a live server.

import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { digestOf } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import type { BlobStore } from './blob-store.ts';
import { cleanStaleTemps, isErrno, isPidAlive, pidOfTempName } from './fs-atomic.ts';
import { FsBlobStore } from './fs-blob-store.ts';
import { FsRefStore } from './fs-ref-store.ts';
import { checkReachability, type ReachabilityReport } from './reachability.ts';
import type { RefStore } from './ref-store.ts';

export interface FsckReport extends ReachabilityReport {
  /** Whether blob contents were re-hashed (filesystem stores); otherwise only presence was checked. */
  contentChecked: boolean;
  blobsChecked: number;
  bytesChecked: number;
  corrupt: { digest: Digest; actual: string; quarantined: boolean }[];
  strayTempFiles: string[];
  /** Refs whose target blob is missing (also listed in `missing` with kind "target"). */
  danglingRefs: { name: string; target: Digest }[];
  /** No corrupt blob left in place, nothing missing, nothing unreadable. */
  clean: boolean;
}

function finish(
  base: Omit<FsckReport, keyof ReachabilityReport | 'danglingRefs' | 'clean'>,
  reach: ReachabilityReport,
): FsckReport {
  const danglingRefs = reach.missing
    .filter((m) => m.kind === 'target')
    .flatMap((m) => m.neededBy.map((n) => ({ name: n.ref, target: m.digest })));
  const clean = base.corrupt.length === 0 && reach.missing.length === 0 && reach.unreadable.length === 0;
  return { ...base, ...reach, danglingRefs, clean };
}

/** Reachability only: for remotes whose blobs are not files here (buckets, servers). */
export async function fsckStores(blobs: BlobStore, refs: RefStore): Promise<FsckReport> {
  const reach = await checkReachability(blobs, refs);
  return finish(
    { contentChecked: false, blobsChecked: 0, bytesChecked: 0, corrupt: [], strayTempFiles: [] },
    reach,
  );
}

/** Whether problems remain: a report after `repair` passes when every corrupt blob was quarantined and nothing a ref needs is missing. */
export function fsckProblemsRemain(report: FsckReport, repaired: boolean): boolean {
  if (report.missing.length > 0 || report.unreadable.length > 0) return true;
  return repaired ? !report.corrupt.every((c) => c.quarantined) : report.corrupt.length > 0;
}

export async function fsck(root: string, opts: { repair?: boolean } = {}): Promise<FsckReport> {
  const st = await stat(join(root, 'blobs')).catch(() => undefined);
  if (!st?.isDirectory())
    throw new HoardError('HOARD_EUSAGE', `no hoard store at ${root} (it has no blobs/ folder)`, {
      hint: 'pass the data directory of a server or the path of a file:// remote',
    });
  const blobs = await FsBlobStore.openReadOnly(root);
  const report = {
    contentChecked: true,
    blobsChecked: 0,
    bytesChecked: 0,
    corrupt: [] as FsckReport['corrupt'],
    strayTempFiles: [] as string[],
  };
  for await (const { digest, size } of blobs.list()) {
    const path = blobs.fileOf(digest);
    let actual: string;
    try {
      actual = (await digestOf(createReadStream(path, { highWaterMark: DEFAULTS.streamChunkBytes }))).digest;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) continue; // evicted while we looked
      throw err;
    }
    report.blobsChecked++;
    report.bytesChecked += size;
    if (actual !== digest) {
      let quarantined = false;
      if (opts.repair) quarantined = (await blobs.quarantine(digest)) !== undefined;
      report.corrupt.push({ digest, actual, quarantined });
    }
  }
  if (opts.repair) await cleanStaleTemps(blobs.tmpDir, DEFAULTS.staleTempMs);
  // Temp files of live writers are expected on a live server; only those of
  // dead writers are stray (the next open of the store removes them).
  for (const name of await readdir(blobs.tmpDir).catch(() => [] as string[])) {
    const pid = pidOfTempName(name);
    if (pid === undefined || !isPidAlive(pid)) report.strayTempFiles.push(name);
  }
  // After quarantine, so a quarantined blob that a ref needs shows as missing.
  const reach = await checkReachability(blobs, await FsRefStore.open(root, { create: false }));
  // Stray temp files are leftovers, not damage: no reader can see them and
  // the next open of the store removes them. They are reported, not failed.
  return finish(report, reach);
}
