// A Remote bound to an AbortSignal, so a whole push or pull is cancellable
// without threading the signal through every call site: once the signal
// aborts, no new operation starts, and streams in flight (downloads being
// read, uploads being sent) are destroyed, which fails the transfer waiting
// on them. Every backend gets the same behaviour because it is done here,
// over the Remote interface.
//
// Ref writes are the exception: a compare-and-set (or delete) that has
// started is let finish. Cutting its request off could leave the caller not
// knowing whether the ref moved; letting one small request complete keeps
// "cancelled" meaning "the ref did not move" (checked before it starts).

import { addAbortSignal, Readable } from 'node:stream';
import type { BlobWant } from '../core/blob-batch-frame.ts';
import type { Digest } from '../core/digest.ts';
import { isUploadBatching, type UploadBatchingBlobStore } from '../store/blob-batch.ts';
import type {
  BlobStore,
  ByteRange,
  ByteSource,
  ListOptions,
  ReadManyOptions,
  ReadManyRecord,
  WriteOptions,
} from '../store/blob-store.ts';
import type { RefStore } from '../store/ref-store.ts';
import type { Remote } from './remote-types.ts';

/** The caller's own signal (if any) and ours: whichever aborts first. */
function both(signal: AbortSignal, own: AbortSignal | undefined): AbortSignal {
  return own ? AbortSignal.any([signal, own]) : signal;
}

function abortableBlobs(inner: BlobStore, signal: AbortSignal): BlobStore & Partial<UploadBatchingBlobStore> {
  return {
    description: inner.description,
    stat(digest: Digest, own?: AbortSignal) {
      signal.throwIfAborted();
      return inner.stat(digest, both(signal, own));
    },
    has(digest: Digest, own?: AbortSignal) {
      signal.throwIfAborted();
      return inner.has(digest, both(signal, own));
    },
    async read(digest: Digest, range?: ByteRange, own?: AbortSignal) {
      signal.throwIfAborted();
      const s = both(signal, own);
      // addAbortSignal destroys the stream (with an AbortError) when the signal aborts.
      return addAbortSignal(s, await inner.read(digest, range, s));
    },
    write(digest: Digest, source: ByteSource, opts: WriteOptions = {}) {
      signal.throwIfAborted();
      const s = both(signal, opts.signal);
      const body = source instanceof Readable ? source : Readable.from(source, { objectMode: false });
      return inner.write(digest, addAbortSignal(s, body), { ...opts, signal: s });
    },
    delete(digest: Digest) {
      signal.throwIfAborted();
      return inner.delete(digest);
    },
    list(opts: ListOptions = {}) {
      signal.throwIfAborted();
      return inner.list({ ...opts, signal: both(signal, opts.signal) });
    },
    missing(digests: readonly Digest[], own?: AbortSignal) {
      signal.throwIfAborted();
      return inner.missing(digests, both(signal, own));
    },
    // Only where the backend has it: readMany() falls back to `read` (abortable above) otherwise.
    readMany: inner.readMany
      ? (
          wants: readonly BlobWant[],
          each: (record: ReadManyRecord) => void | Promise<void>,
          opts: ReadManyOptions = {},
        ) => {
          signal.throwIfAborted();
          return inner.readMany!(wants, each, { ...opts, signal: both(signal, opts.signal) });
        }
      : undefined,
    // Only where the backend has it (uploadMissing writes blob by blob otherwise).
    uploadBatch: isUploadBatching(inner)
      ? (opts: { signal?: AbortSignal } = {}) => {
          signal.throwIfAborted();
          return inner.uploadBatch({ signal: both(signal, opts.signal) });
        }
      : undefined,
    close: inner.close ? () => inner.close!() : undefined,
  };
}

function abortableRefs(inner: RefStore, signal: AbortSignal): RefStore {
  return {
    description: inner.description,
    get(name: string, own?: AbortSignal) {
      signal.throwIfAborted();
      return inner.get(name, both(signal, own));
    },
    // Started writes run to the end (see the header); only the caller's own signal cuts them.
    set(name: string, target: Digest, expected: string | null, own?: AbortSignal) {
      signal.throwIfAborted();
      return inner.set(name, target, expected, own);
    },
    delete(name: string, expected: string, own?: AbortSignal) {
      signal.throwIfAborted();
      return inner.delete(name, expected, own);
    },
    list(prefix?: string, own?: AbortSignal) {
      signal.throwIfAborted();
      return inner.list(prefix, both(signal, own));
    },
    close: inner.close ? () => inner.close!() : undefined,
  };
}

/** Remotes made here, with their signal: binding one again to the same signal is a no-op. */
const boundTo = new WeakMap<Remote, AbortSignal>();

/** `remote` stopping at `signal` (see the header); `remote` itself when there is no signal. */
export function abortableRemote(remote: Remote, signal: AbortSignal | undefined): Remote {
  if (!signal || boundTo.get(remote) === signal) return remote;
  const bound: Remote = {
    url: remote.url,
    blobs: abortableBlobs(remote.blobs, signal),
    refs: abortableRefs(remote.refs, signal),
    close: () => remote.close(),
  };
  boundTo.set(bound, signal);
  return bound;
}
