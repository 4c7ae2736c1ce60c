// Child process for the batched-push crash test: pushes a folder to a
// file:// remote through the batched blob writer and stops for good at one
// point, announcing it on stdout, so the parent can SIGKILL it there:
//   mid-batch   after the 200th blob handed to the batch (later ones still
//               being written, fsynced and linked in the background)
//   before-ref  after every blob and the tree are stored, just before the
//               ref's compare-and-set
// With `syncfs` as the fifth argument the store makes the batch durable with
// syncfs rounds (FsBlobStoreOptions.syncFilesystem, what the CLI's push uses).
// Usage: node batched-push.ts <remoteUrl> <dir> <ref> <mid-batch|before-ref> [syncfs]
import type { Digest } from '../../../src/core/digest.ts';
import { openRemote } from '../../../src/remote/remote.ts';
import { type BlobBatch, isBatching } from '../../../src/store/blob-batch.ts';
import { push } from '../../../src/sync/push.ts';

const [remoteUrl, dir, ref, mode, durability] = process.argv.slice(2);
const remote = await openRemote(remoteUrl, {
  create: true,
  blockingReads: true,
  syncFilesystem: durability === 'syncfs',
});
const blobs = remote.blobs;
if (!isBatching(blobs)) throw new Error(`${remoteUrl} does not batch`);

const stop = async (label: string): Promise<never> => {
  process.stdout.write(`${label}\n`);
  setInterval(() => {}, 60_000); // stay alive (and stopped) until killed
  return new Promise<never>(() => {});
};

const batch = blobs.batch.bind(blobs);
let added = 0;
blobs.batch = (): BlobBatch => {
  const b = batch();
  const add = b.add.bind(b);
  b.add = async (digest: Digest, bytes: Uint8Array) => {
    const r = await add(digest, bytes);
    if (++added === 200 && mode === 'mid-batch') await stop('mid-batch');
    return r;
  };
  return b;
};
const set = remote.refs.set.bind(remote.refs);
remote.refs.set = async (...args: Parameters<typeof set>) => {
  if (mode === 'before-ref') await stop('before-ref');
  return set(...args);
};
await push({ dir, remote, ref });
process.stdout.write('done\n');
