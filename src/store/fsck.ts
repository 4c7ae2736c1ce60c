// Integrity check of a filesystem store: re-hashes every blob against its
// name, reports stray temp files and refs whose target is missing, and with
// `repair` moves bad blobs to `<root>/quarantine/` (never deletes: a human
// may want to look at them). Read-only otherwise, so it is safe on the data
// directory of a live server.

import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { digestOf, hexOf } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { cleanStaleTemps, isErrno, isPidAlive, pidOfTempName } from './fs-atomic.ts';
import { FsBlobStore } from './fs-blob-store.ts';
import { FsRefStore } from './fs-ref-store.ts';

export interface FsckReport {
  blobsChecked: number;
  bytesChecked: number;
  corrupt: { digest: Digest; actual: string; quarantined: boolean }[];
  strayTempFiles: string[];
  danglingRefs: { name: string; target: Digest }[];
  clean: boolean;
}

export async function fsck(root: string, opts: { repair?: boolean } = {}): Promise<FsckReport> {
  const st = await stat(join(root, 'blobs')).catch(() => undefined);
  if (!st?.isDirectory())
    throw new HoardError('HOARD_EUSAGE', `no hoard store at ${root} (it has no blobs/ folder)`, {
      hint: 'pass the data directory of a server or the path of a file:// remote',
    });
  const blobs = await FsBlobStore.openReadOnly(root);
  const report: FsckReport = {
    blobsChecked: 0,
    bytesChecked: 0,
    corrupt: [],
    strayTempFiles: [],
    danglingRefs: [],
    clean: true,
  };
  for await (const { digest, size } of blobs.list()) {
    const path = blobs.pathOf(digest);
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
      if (opts.repair) {
        const qdir = join(root, 'quarantine');
        await mkdir(qdir, { recursive: true });
        await rename(path, join(qdir, `${hexOf(digest)}.${Date.now()}`));
        quarantined = true;
      }
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
  const refs = await FsRefStore.open(root, { create: false });
  for await (const ref of refs.list()) {
    if (!(await blobs.has(ref.target))) report.danglingRefs.push({ name: ref.name, target: ref.target });
  }
  // Stray temp files are leftovers, not damage: no reader can see them and
  // the next open of the store removes them. They are reported, not failed.
  report.clean = report.corrupt.length === 0 && report.danglingRefs.length === 0;
  return report;
}
