// The synchronous zstd decoder of the extractor: the same bytes as zlib's
// own decoder whatever the input slicing and output size, slices of one
// reused buffer, and every failure (corrupt data, a frame cut short, a
// window above the bound) an error, never a silent short output.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { createZstdDecoder } from '../../src/archive/zstd-decoder.ts';

function decoder(outputBytes = 4096, windowLogMax = 27) {
  const d = createZstdDecoder({ windowLogMax, outputBytes });
  assert.ok(d, 'this Node has the internals the decoder needs (else the extractor falls back to the stream)');
  return d;
}

/** Decodes `input` fed in pieces of `piece` bytes; returns the output and the distinct buffers seen. */
function decode(input: Buffer, piece: number, outputBytes = 4096) {
  const d = decoder(outputBytes);
  const parts: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  const onOutput = (c: Buffer) => {
    assert.ok(c.byteLength <= outputBytes);
    buffers.add(c.buffer);
    parts.push(Buffer.from(c));
  };
  try {
    for (let at = 0; at < input.byteLength; at += piece) d.write(input.subarray(at, at + piece), onOutput);
    d.end(onOutput);
  } finally {
    d.close();
  }
  return { out: Buffer.concat(parts), buffers };
}

describe('synchronous zstd decoder', () => {
  // Half random (incompressible), half repetitive (expands a lot per input byte).
  const plain = Buffer.concat([randomBytes(300_000), Buffer.alloc(700_000, 'hoard ')]);
  const packed = zlib.zstdCompressSync(plain);

  it('decodes like zlib whatever the input pieces, into one reused output buffer', () => {
    for (const piece of [1, 7, 4096, packed.byteLength]) {
      const { out, buffers } = decode(packed, piece);
      assert.ok(out.equals(plain), `pieces of ${piece}`);
      assert.equal(buffers.size, 1, 'every slice is of the same buffer');
    }
  });

  it('decodes concatenated frames', () => {
    const two = Buffer.concat([packed, zlib.zstdCompressSync(Buffer.from('tail'))]);
    assert.ok(decode(two, 10_000).out.equals(Buffer.concat([plain, Buffer.from('tail')])));
  });

  it('refuses corrupt data, a frame cut short and a window above the bound', () => {
    assert.throws(() => decode(Buffer.from('not zstd at all'), 100));
    assert.throws(() => decode(packed.subarray(0, packed.byteLength >> 1), 1000), /unexpected end/i);
    // A flipped byte in a frame with a checksum (without one, zstd cannot tell
    // changed literals; the archive's SHA-256 does).
    const flipped = zlib.zstdCompressSync(plain, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } });
    flipped[flipped.byteLength >> 1] ^= 0xff;
    assert.throws(() => decode(flipped, 1000));
    // A frame that declares a 2^20 window, against a bound of 2^15.
    const wide = zlib.zstdCompressSync(randomBytes(1 << 20), {
      params: { [zlib.constants.ZSTD_c_windowLog]: 20 },
    });
    const d = decoder(4096, 15);
    assert.throws(() => {
      d.write(wide, () => {});
      d.end(() => {});
    });
    d.close();
  });

  it('is unusable after close', () => {
    const d = decoder();
    d.close();
    assert.throws(() => d.write(packed, () => {}), /after close/);
  });
});
