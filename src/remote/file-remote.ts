// The file:// remote: a folder in the bucket layout (blobs/, refs/), the
// same layout as a server's data directory.

import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { HoardError } from '../core/errors.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';
import { FsRefStore } from '../store/fs-ref-store.ts';
import type { OpenRemoteOptions, Remote } from './remote-types.ts';

export async function openFileRemote(url: URL, opts: OpenRemoteOptions): Promise<Remote> {
  if (url.host !== '' && url.host !== 'localhost')
    throw new HoardError('HOARD_EREMOTE_URL', `file:// remotes must be local paths, got host ${url.host}`);
  const root = fileURLToPath(url);
  if (opts.create) {
    return {
      url: url.href,
      blobs: await FsBlobStore.open(root, {
        syncReads: opts.blockingReads,
        syncFilesystem: opts.syncFilesystem,
      }),
      refs: await FsRefStore.open(root),
      close: async () => {},
    };
  }
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory())
    throw new HoardError(
      'HOARD_EREMOTE_URL',
      `no hoard store at ${url.href}: ${root} ${st ? 'is not a folder' : 'does not exist'}`,
      {
        hint: 'check the path; nothing was created (a push creates a file:// store)',
        details: { remote: url.href },
      },
    );
  return {
    url: url.href,
    blobs: await FsBlobStore.openReadOnly(root, { syncReads: opts.blockingReads }),
    refs: await FsRefStore.open(root, { create: false }),
    close: async () => {},
  };
}
