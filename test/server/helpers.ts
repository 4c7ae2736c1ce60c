// Test helpers: an in-process hoard server on a free port with a temp data
// directory, optionally in front of a shared tier.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Remote } from '../../src/remote/remote.ts';
import { buildServer, type HoardServer, type ServerDeps } from '../../src/server/app.ts';
import { type RawSettings, resolveConfig } from '../../src/server/config.ts';

export interface TestServer {
  url: string;
  server: HoardServer;
  dataDir: string;
  close(): Promise<void>;
}

export async function startTestServer(
  settings: RawSettings = {},
  deps: ServerDeps & { shared?: Remote } = {},
): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hoard-srv-'));
  const config = resolveConfig({ listen: '127.0.0.1:0', data: dataDir, logLevel: 'silent', ...settings });
  const server = await buildServer(config, { logger: false, ...deps });
  const url = await server.listen();
  return {
    url,
    server,
    dataDir,
    async close() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---- a shared tier that counts and can be slowed or broken -------------------

import { Readable as NodeReadable } from 'node:stream';
import type { Digest } from '../../src/core/digest.ts';
import type { BlobInfo, BlobStore, ByteRange, ByteSource, WriteOptions } from '../../src/store/blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../src/store/fs-ref-store.ts';

export interface ReadCall {
  digest: Digest;
  range: ByteRange | undefined;
}

/** Wraps a BlobStore: records read() calls; `hold` delays streams after their first chunk until released; `fail` breaks reads midway. */
export class CountingStore implements BlobStore {
  readonly inner: BlobStore;
  readonly description = 'counting';
  reads: ReadCall[] = [];
  stats = 0;
  /** Blobs yielded by list() so far (a listing that rescans from the start yields more). */
  listed = 0;
  /** When set, each read stream pauses after its first chunk until this resolves. */
  hold: Promise<void> | undefined;
  /** When set, each read stream fails after its first chunk. */
  failMidway = false;

  constructor(inner: BlobStore) {
    this.inner = inner;
  }

  stat(d: Digest): Promise<BlobInfo | undefined> {
    this.stats++;
    return this.inner.stat(d);
  }
  has(d: Digest): Promise<boolean> {
    return this.inner.has(d);
  }
  async read(d: Digest, range?: ByteRange): Promise<NodeReadable> {
    this.reads.push({ digest: d, range });
    const src = await this.inner.read(d, range);
    const hold = this.hold;
    const fail = this.failMidway;
    if (!hold && !fail) return src;
    return NodeReadable.from(
      (async function* () {
        let first = true;
        for await (const chunk of src as AsyncIterable<Buffer>) {
          // Small chunks so that "first chunk" is a small part of the blob.
          for (let off = 0; off < chunk.length; off += 16 * 1024) {
            yield chunk.subarray(off, off + 16 * 1024);
            if (first) {
              first = false;
              if (hold) await hold;
              if (fail) throw new Error('shared tier broke midway');
            }
          }
        }
      })(),
    );
  }
  write(d: Digest, s: ByteSource, o?: WriteOptions) {
    return this.inner.write(d, s, o);
  }
  delete(d: Digest) {
    return this.inner.delete(d);
  }
  async *list(...args: Parameters<BlobStore['list']>): AsyncIterable<BlobInfo> {
    for await (const b of this.inner.list(...args)) {
      this.listed++;
      yield b;
    }
  }
  missing(ds: readonly Digest[]) {
    return this.inner.missing(ds);
  }
}

/** A file:// shared tier wrapped in a CountingStore, plus a server in front of it. */
export async function startWithCountingShared(settings: RawSettings = {}) {
  const sharedDir = await mkdtemp(join(tmpdir(), 'hoard-shared-'));
  const counting = new CountingStore(await FsBlobStore.open(sharedDir));
  const refs = await FsRefStore.open(sharedDir);
  const srv = await startTestServer(settings, {
    shared: { url: `file://${sharedDir}`, blobs: counting, refs, close: async () => {} },
  });
  return {
    ...srv,
    shared: counting,
    async close() {
      await srv.close();
      await rm(sharedDir, { recursive: true, force: true });
    },
  };
}
