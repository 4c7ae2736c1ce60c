// A remote is where a directory is synced to and where the server keeps its
// authoritative tier: a BlobStore plus a RefStore behind one URL. The scheme
// picks the backend; every backend passes the same conformance suites, so
// push, pull and the server never need to know which one they talk to.

import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HoardError } from '../core/errors.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';
import { FsRefStore } from '../store/fs-ref-store.ts';
import type { RefStore } from '../store/ref-store.ts';

export interface Remote {
  /** The URL, with any credentials removed. */
  readonly url: string;
  readonly blobs: BlobStore;
  readonly refs: RefStore;
  close(): Promise<void>;
}

export interface OpenRemoteOptions {
  /**
   * May the remote be created? Only writers (push, a server's shared tier)
   * pass true: a read of a mistyped `file://` path must fail, not leave an
   * empty store behind. Buckets and servers are never created either way.
   */
  create?: boolean;
}

export type RemoteOpener = (url: URL, opts: OpenRemoteOptions) => Promise<Remote>;

/** Backends by URL scheme (without the colon). Other modules register theirs. */
const openers = new Map<string, RemoteOpener>();

export function registerRemoteScheme(scheme: string, opener: RemoteOpener): void {
  openers.set(scheme, opener);
}

registerRemoteScheme('file', async (url, opts) => {
  if (url.host !== '' && url.host !== 'localhost')
    throw new HoardError('HOARD_EREMOTE_URL', `file:// remotes must be local paths, got host ${url.host}`);
  const root = fileURLToPath(url);
  if (opts.create) {
    return {
      url: url.href,
      blobs: await FsBlobStore.open(root),
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
    blobs: await FsBlobStore.openReadOnly(root),
    refs: await FsRefStore.open(root, { create: false }),
    close: async () => {},
  };
});

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
  if (!openers.has(scheme)) await import('./schemes.ts');
  const opener = openers.get(scheme);
  if (!opener)
    throw new HoardError('HOARD_EREMOTE_URL', `unsupported remote scheme ${scheme}://`, {
      hint: USAGE_HINT,
    });
  return opener(url, opts);
}
