// The client of a hoard server's HTTP API v1 for tools: `connect` opens an
// http(s):// remote and asks the server's /healthz once, so a wrong address
// fails here with a clear error instead of at the first blob. The Remote it
// returns is the API: `blobs` (stat/has/read/write/missing/list/delete,
// streamed and verified) and `refs` (get, compare-and-set, delete, list).

import { HoardError, toHoardError } from '../core/errors.ts';
import { openRemote, parseRemoteUrl, type Remote } from '../remote/remote.ts';

export interface ConnectOptions {
  /** Bearer token (default: HOARD_TOKEN, else the URL's password). */
  token?: string;
  signal?: AbortSignal;
}

/** Opens a hoard server's API (http:// or https:// only) after checking it answers. */
export async function connect(url: string | URL, opts: ConnectOptions = {}): Promise<Remote> {
  const parsed = parseRemoteUrl(typeof url === 'string' ? url : url.href);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new HoardError(
      'HOARD_EREMOTE_URL',
      `connect needs a hoard server's http(s):// URL, got ${parsed.protocol}//`,
      {
        hint: 'openRemote opens folders and buckets',
      },
    );
  const remote = await openRemote(parsed.href, { token: opts.token });
  try {
    // The http client's module is loaded only here, like the http remote itself.
    const { HoardHttpClient, discard } = await import('../remote/http-client.ts');
    const res = await new HoardHttpClient(parsed, opts.token).request('GET', 'healthz', {
      signal: opts.signal,
      retries: 0,
    });
    discard(res);
  } catch (err) {
    await remote.close();
    throw toHoardError(err, 'HOARD_EREMOTE', `connecting to ${remote.url}`);
  }
  return remote;
}
