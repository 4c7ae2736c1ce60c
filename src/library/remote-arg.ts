// How library functions take a remote: a URL string (opened for the call and
// closed after it, whatever happens) or a Remote the caller opened with
// openRemote (used as is and left open, so a tool syncing many folders
// keeps one set of connections).

import { type OpenRemoteOptions, openRemote, type Remote } from '../remote/remote.ts';

/** A remote URL (`file:///abs`, `./dir`, `s3://bucket/prefix`, `gs://…`, `http(s)://host:port`) or an open Remote. */
export type RemoteArg = string | URL | Remote;

export async function usingRemote<T>(
  arg: RemoteArg,
  opts: OpenRemoteOptions,
  fn: (remote: Remote) => Promise<T>,
): Promise<T> {
  if (typeof arg !== 'string' && !(arg instanceof URL)) return fn(arg);
  const remote = await openRemote(typeof arg === 'string' ? arg : arg.href, opts);
  try {
    return await fn(remote);
  } finally {
    await remote.close();
  }
}
