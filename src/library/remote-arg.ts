// How library functions take a remote: a URL string (opened for the call and
// closed after it, whatever happens) or a Remote the caller opened with
// openRemote (used as is and left open, so a tool syncing many folders
// keeps one set of connections).

import { abortableRemote } from '../remote/abortable-remote.ts';
import { type OpenRemoteOptions, openRemote, type Remote } from '../remote/remote.ts';
import { cancellable } from '../sync/common.ts';

/** A remote URL (`file:///abs`, `./dir`, `s3://bucket/prefix`, `gs://…`, `http(s)://host:port`) or an open Remote. */
export type RemoteArg = string | URL | Remote;

export interface UsingRemoteOptions extends OpenRemoteOptions {
  /** What the call is, for the HOARD_EABORTED message (`push`, `log`, …). */
  what: string;
  /** Binds the remote to it, and turns whatever its abort made fail into one HOARD_EABORTED. */
  signal?: AbortSignal;
}

/** Runs `fn` with the remote `arg` names (opened and closed here when it is a URL), cancellable by `opts.signal`. */
export function usingRemote<T>(
  arg: RemoteArg,
  opts: UsingRemoteOptions,
  fn: (remote: Remote) => Promise<T>,
): Promise<T> {
  const { what, signal, ...open } = opts;
  return cancellable(what, signal, async () => {
    if (typeof arg !== 'string' && !(arg instanceof URL)) return fn(abortableRemote(arg, signal));
    const remote = await openRemote(typeof arg === 'string' ? arg : arg.href, open);
    try {
      return await fn(abortableRemote(remote, signal));
    } finally {
      await remote.close();
    }
  });
}
