// The remote of a push or pull command: opened by the CLI itself (not per
// library call) so that it may read a file:// remote's small blobs with
// blocking calls — a CLI process has no other work waiting on its event loop
// (OpenRemoteOptions.blockingReads) and make a push's blobs durable with one
// syncfs per round instead of an fsync per blob (syncFilesystem: a CLI owns
// its writes) — and closed when the command's scope ends (`await using`).

import { type OpenRemoteOptions, openRemote, type Remote } from '../remote/remote.ts';

export async function openCliRemote(
  url: string,
  opts: Omit<OpenRemoteOptions, 'blockingReads' | 'syncFilesystem'> = {},
): Promise<Remote & AsyncDisposable> {
  const remote = await openRemote(url, { ...opts, blockingReads: true, syncFilesystem: true });
  return Object.assign(remote, { [Symbol.asyncDispose]: () => remote.close() });
}
