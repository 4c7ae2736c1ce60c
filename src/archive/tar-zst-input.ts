// How the safe extractor (safe-extract.ts) gets tar bytes out of a tar.zst:
// by default zstd is decoded synchronously into one reused buffer
// (zstd-decoder.ts), each slice handed to the parser before the next is
// decoded: no garbage per decoded chunk, no thread hand-off (a restore's
// peak RSS and its decoding time, issue 16). Between input slices the event
// loop runs, so a download feeding the extraction keeps reading its sockets.
// zlib's stream remains the fallback (a Node without the decoder's
// internals, or ExtractOptions.zstdStream). Either way the window, the
// decoder's memory, is bounded whatever the frame declares.

import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { createZstdDecoder } from './zstd-decoder.ts';

/** Decompressed chunk size (the one reused output buffer; the fallback stream's chunks). */
const ZSTD_CHUNK_BYTES = 256 * 1024;
/** Compressed bytes decoded between two turns of the event loop. */
const ZSTD_INPUT_SLICE_BYTES = 1024 * 1024;
/** Largest zstd window accepted: 2^27 = 128 MiB of decoder memory (zstd's own default limit). */
const ZSTD_MAX_WINDOW_LOG = 27;

/** What takes the tar bytes, in order (TarStreamParser). */
export interface TarByteSink {
  push(chunk: Buffer): void;
}

/** Hands `to` every tar byte of `src`, the last stage of the pipeline, in order. */
export type TarFeed = (src: AsyncIterable<Uint8Array>, to: TarByteSink) => Promise<void>;

/** The pipeline's stages before the feed, the feed, and what to release once it is done. */
export interface TarInput {
  stages: (Readable | AsyncIterable<Uint8Array> | NodeJS.ReadWriteStream)[];
  feed: TarFeed;
  close(): void;
}

function asBuffer(c: Uint8Array): Buffer {
  return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

/** An uncompressed tar: its chunks as they come. */
export const feedTar: TarFeed = async (src, to) => {
  for await (const c of src) to.push(asBuffer(c));
};

/** The input of a tar.zst `source`: the synchronous decoder, or zlib's stream when `zstdStream` or when it is unavailable. */
export function tarZstInput(source: Readable | AsyncIterable<Uint8Array>, zstdStream: boolean): TarInput {
  const decoder = zstdStream
    ? null
    : createZstdDecoder({ windowLogMax: ZSTD_MAX_WINDOW_LOG, outputBytes: ZSTD_CHUNK_BYTES });
  if (!decoder) {
    const zstd = zlib.createZstdDecompress({
      chunkSize: ZSTD_CHUNK_BYTES,
      params: { [zlib.constants.ZSTD_d_windowLogMax]: ZSTD_MAX_WINDOW_LOG },
    });
    return { stages: [source, zstd], feed: feedTar, close() {} };
  }
  return {
    stages: [source],
    feed: async (src, to) => {
      const push = (c: Buffer) => to.push(c);
      for await (const c of src) {
        const buf = asBuffer(c);
        for (let at = 0; at < buf.byteLength; at += ZSTD_INPUT_SLICE_BYTES) {
          if (at > 0) await new Promise(setImmediate);
          decoder.write(buf.subarray(at, at + ZSTD_INPUT_SLICE_BYTES), push);
        }
      }
      decoder.end(push);
    },
    close: () => decoder.close(),
  };
}
