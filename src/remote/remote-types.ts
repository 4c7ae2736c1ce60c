// What every remote backend returns: a BlobStore and a RefStore behind one
// URL. Its own module so the backends (loaded lazily by remote.ts's scheme
// table) depend on the type and never on the table that loads them.

import type { BlobStore } from '../store/blob-store.ts';
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
  /**
   * Bearer token for an http(s):// remote (a hoard server); default:
   * HOARD_TOKEN, else the URL's password. Other schemes ignore it (buckets use
   * their SDK's credentials).
   */
  token?: string;
  /**
   * The caller is a CLI process whose event loop nothing else waits on:
   * a file:// remote may read small blobs with synchronous calls
   * (FsBlobStoreOptions.syncReads). Never for a server.
   */
  blockingReads?: boolean;
  /**
   * A file:// remote's batched writes (a push) are made durable with one
   * syncfs(2) per round instead of one fsync per blob
   * (FsBlobStoreOptions.syncFilesystem). For a CLI process; never a server.
   */
  syncFilesystem?: boolean;
}

export type RemoteOpener = (url: URL, opts: OpenRemoteOptions) => Promise<Remote>;
