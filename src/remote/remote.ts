// A remote is where a directory is synced to and where the server keeps its
// authoritative tier: a BlobStore plus a RefStore behind one URL. The scheme
// picks the backend; every backend passes the same conformance suites, so
// push, pull and the server never need to know which one they talk to.

import { isAbsolute, resolve } from 'node:path';
import { HoardError } from '../core/errors.ts';
import type { OpenRemoteOptions, Remote, RemoteOpener } from './remote-types.ts';

export type { OpenRemoteOptions, Remote, RemoteOpener } from './remote-types.ts';

async function openHttp(): Promise<RemoteOpener> {
  const { openHttpRemote } = await import('./http-remote.ts');
  return async (url, opts) => openHttpRemote(url, opts.token);
}

/**
 * The backends, by URL scheme (without the colon): one static table, each
 * loaded on first use, so a file:// sync never loads a cloud SDK (tens of MB
 * each) and no backend registers itself by being imported.
 */
const SCHEMES: Record<string, () => Promise<RemoteOpener>> = {
  file: async () => (await import('./file-remote.ts')).openFileRemote,
  s3: async () => {
    const { openS3Remote } = await import('./s3-remote.ts');
    return (url) => openS3Remote(url);
  },
  gs: async () => {
    const { openGcsRemote } = await import('./gcs-remote.ts');
    return (url) => openGcsRemote(url);
  },
  http: openHttp,
  https: openHttp,
};

const USAGE_HINT =
  'use file:///abs/path, ./dir, /abs/dir, s3://bucket/prefix, gs://bucket/prefix or http(s)://host:port';

/** `host:port` (or `[v6]:port`): what a typo of an http:// URL looks like. */
const HOST_PORT = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+):\d{1,5}(\/.*)?$/i;

/**
 * Parses a remote argument. A remote names its scheme, or is an explicit
 * path (`/abs`, `./rel`, `../rel`, `.`, `..`), taken as file://. Anything
 * else is refused: `127.0.0.1:7777` or `cache-dir` once silently became a
 * store in a folder of that name.
 */
export function parseRemoteUrl(text: string): URL {
  if (HOST_PORT.test(text))
    throw new HoardError('HOARD_EREMOTE_URL', `remote ${JSON.stringify(text)} has no scheme`, {
      hint: `did you mean http://${text}? (${USAGE_HINT})`,
    });
  if (!/^[a-z][a-z0-9+.-]*:/i.test(text)) {
    if (!isExplicitPath(text))
      throw new HoardError('HOARD_EREMOTE_URL', `remote ${JSON.stringify(text)} has no scheme`, {
        hint: `for a folder write ./${text} or file://${resolve(text)}; ${USAGE_HINT}`,
      });
    const u = new URL('file://');
    u.pathname = resolve(text);
    return u;
  }
  try {
    return new URL(text);
  } catch (err) {
    throw new HoardError('HOARD_EREMOTE_URL', `invalid remote URL ${JSON.stringify(text)}`, {
      cause: err,
      hint: USAGE_HINT,
    });
  }
}

function isExplicitPath(text: string): boolean {
  return isAbsolute(text) || text === '.' || text === '..' || text.startsWith('./') || text.startsWith('../');
}

/** Opens a remote by URL; see OpenRemoteOptions for `create` (default: read an existing one). */
export async function openRemote(text: string, opts: OpenRemoteOptions = {}): Promise<Remote> {
  const url = parseRemoteUrl(text);
  const scheme = url.protocol.slice(0, -1);
  const load = Object.hasOwn(SCHEMES, scheme) ? SCHEMES[scheme] : undefined;
  if (!load)
    throw new HoardError('HOARD_EREMOTE_URL', `unsupported remote scheme ${scheme}://`, {
      hint: USAGE_HINT,
    });
  return (await load())(url, opts);
}
