// Synchronous streaming zstd decoding into one reused output buffer, for the
// extractor (safe-extract.ts), which writes every decoded byte synchronously
// before it asks for more.
//
// Why not zlib.createZstdDecompress(): the stream hands every chunk to the
// thread pool and back, and allocates a new output buffer per chunk, which
// is garbage as soon as the extractor wrote it. V8 collects such external
// memory late (after tens of MiB), so a restore of a 31 MiB archive peaked
// at ~190 MiB RSS, and the hand-offs made decoding ~3.5× slower than a loop
// on the decoder (measured on the eslint snapshot: 570 ms and 105 MiB for
// the stream to nowhere, 157 ms and 50 MiB for this loop).
//
// The loop drives the native handle of a ZstdDecompress object the way
// Node's own zlib*Sync functions do (`_handle.writeSync` and `_writeState`,
// [availOut, availIn] after each call). Those are Node internals: when they
// are missing (another Node), createZstdDecoder returns null and the caller
// keeps the stream. Errors of the decoder (corrupt data, a window above the
// bound) reach the object through its public `errored`; a frame cut short
// is reported at end().

import zlib from 'node:zlib';

export interface ZstdDecoderOptions {
  /** Largest window accepted (log2): the decoder's memory bound whatever the frame declares. */
  windowLogMax: number;
  /** Size of the one output buffer reused for every call of `onOutput`. */
  outputBytes: number;
}

export interface ZstdDecoder {
  /**
   * Decodes all of `input`, calling `onOutput` with slices of the one output
   * buffer: a slice is valid only during its call (the next one overwrites it).
   */
  write(input: Uint8Array, onOutput: (chunk: Buffer) => void): void;
  /** The input is complete: flushes, and throws if the last frame was cut short. */
  end(onOutput: (chunk: Buffer) => void): void;
  /** Frees the native decoder (idempotent; after an error too). */
  close(): void;
}

interface ZstdHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
}

interface ZstdInternals {
  _handle?: ZstdHandle | null;
  _writeState?: Uint32Array;
}

const EMPTY = Buffer.alloc(0);

/** A synchronous decoder, or null when this Node lacks the internals it needs. */
export function createZstdDecoder(opts: ZstdDecoderOptions): ZstdDecoder | null {
  const stream = zlib.createZstdDecompress({
    params: { [zlib.constants.ZSTD_d_windowLogMax]: opts.windowLogMax },
  });
  const { _handle: handle, _writeState: state } = stream as unknown as ZstdInternals;
  if (typeof handle?.writeSync !== 'function' || !(state instanceof Uint32Array) || state.length < 2) {
    stream.destroy();
    return null;
  }
  // A decoder error destroys the stream (which emits 'error' later): observed here, thrown by run().
  stream.on('error', () => {});
  const out = Buffer.allocUnsafe(opts.outputBytes);
  let closed = false;

  function run(flush: number, input: Uint8Array, onOutput: (chunk: Buffer) => void): void {
    if (closed) throw new Error('zstd decoder used after close');
    let off = 0;
    let avail = input.byteLength;
    for (;;) {
      handle!.writeSync(flush, input, off, avail, out, 0, out.byteLength);
      if (stream.destroyed) {
        closed = true;
        throw stream.errored ?? new Error('zstd decoding failed');
      }
      const availOut = state![0];
      const availIn = state![1];
      const produced = out.byteLength - availOut;
      off += avail - availIn;
      avail = availIn;
      if (produced > 0) onOutput(out.subarray(0, produced));
      // Done with this input once it is consumed and the output was not full
      // (a full output may hide more decoded bytes still inside the decoder).
      if (availIn === 0 && availOut !== 0) return;
    }
  }

  return {
    write: (input, onOutput) => run(zlib.constants.ZSTD_e_continue, input, onOutput),
    end: (onOutput) => run(zlib.constants.ZSTD_e_end, EMPTY, onOutput),
    close: () => {
      closed = true;
      stream.destroy();
    },
  };
}
