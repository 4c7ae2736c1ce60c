// A remote is where a directory is synced to and where the server keeps its
// authoritative tier: a BlobStore plus a RefStore behind one URL. The scheme
// picks the backend; every backend passes the same conformance suites, so
// push, pull and the server never need to know which one they talk to.

import { resolve } from 'node:path';
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

export type RemoteOpener = (url: URL) => Promise<Remote>;

/** Backends by URL scheme (without the colon). Other modules register theirs. */
const openers = new Map<string, RemoteOpener>();

export function registerRemoteScheme(scheme: string, opener: RemoteOpener): void {
  openers.set(scheme, opener);
}

registerRemoteScheme('file', async (url) => {
  if (url.host !== '' && url.host !== 'localhost')
    throw new HoardError('HOARD_EREMOTE_URL', `file:// remotes must be local paths, got host ${url.host}`);
  const root = fileURLToPath(url);
  return {
    url: url.href,
    blobs: await FsBlobStore.open(root),
    refs: await FsRefStore.open(root),
    close: async () => {},
  };
});

/** Parses a remote argument; a bare absolute or relative path is taken as a file:// remote. */
export function parseRemoteUrl(text: string): URL {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(text)) {
    const u = new URL('file://');
    u.pathname = resolve(text);
    return u;
  }
  try {
    return new URL(text);
  } catch (err) {
    throw new HoardError('HOARD_EREMOTE_URL', `invalid remote URL ${JSON.stringify(text)}`, { cause: err });
  }
}

export async function openRemote(text: string): Promise<Remote> {
  const url = parseRemoteUrl(text);
  const scheme = url.protocol.slice(0, -1);
  if (!openers.has(scheme)) await import('./schemes.ts');
  const opener = openers.get(scheme);
  if (!opener)
    throw new HoardError('HOARD_EREMOTE_URL', `unsupported remote scheme ${scheme}://`, {
      hint: 'use file:///abs/path, s3://bucket/prefix, gs://bucket/prefix or http(s)://host:port',
    });
  return opener(url);
}
