// readAllBounded: the bound, and that the result owns its memory.

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { readAllBounded } from '../../src/core/streams.ts';

async function* chunksOf(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield part;
}

test('readAllBounded joins Buffers and plain Uint8Array views (with offsets) in order', async () => {
  const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
  const view = backing.subarray(2, 5);
  const out = await readAllBounded(chunksOf(Buffer.from('ab'), view, Buffer.from('c')), 100);
  assert.deepEqual([...out], [0x61, 0x62, 1, 2, 3, 0x63]);
});

test('readAllBounded returns a buffer of its own, even for a single chunk', async () => {
  const socketBuffer = Buffer.alloc(64 * 1024, 7);
  const chunk = socketBuffer.subarray(100, 110);
  const out = await readAllBounded(chunksOf(chunk), 100);
  assert.equal(out.length, 10);
  // A view into the 64 KiB buffer would keep it alive and change with it.
  assert.notEqual(out.buffer, socketBuffer.buffer);
  socketBuffer.fill(0);
  assert.deepEqual([...out], Array(10).fill(7));
});

test('readAllBounded refuses more than the limit and destroys a Readable source', async () => {
  const source = Readable.from([Buffer.alloc(6), Buffer.alloc(6)], { objectMode: false });
  await assert.rejects(readAllBounded(source, 10), { code: 'HOARD_ETOO_LARGE' });
  assert.equal(source.destroyed, true);
  assert.equal((await readAllBounded(chunksOf(Buffer.alloc(10)), 10)).length, 10);
});

test('readAllBounded of an empty source is an empty buffer', async () => {
  assert.equal((await readAllBounded(chunksOf(), 0)).length, 0);
});
