import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';
import { MemoryRefStore } from '../../src/store/memory-ref-store.ts';
import { blobStoreConformance } from './blob-store-conformance.ts';
import { refStoreConformance } from './ref-store-conformance.ts';

blobStoreConformance('memory', async () => ({ store: new MemoryBlobStore({ maxBytes: 64 * 1024 * 1024 }) }));
refStoreConformance('memory', async () => ({ store: new MemoryRefStore() }));

it('memory tier evicts the least recently used blob first', async () => {
  const store = new MemoryBlobStore({ maxBytes: 3000 });
  const blobs = ['a', 'b', 'c'].map((s) => {
    const data = Buffer.alloc(1000, s);
    return { data, digest: sha256(data) };
  });
  for (const b of blobs) await store.write(b.digest, Readable.from([b.data]));
  await store.read(blobs[0].digest); // a is now more recent than b
  const d = Buffer.alloc(1000, 'd');
  await store.write(sha256(d), Readable.from([d]));
  assert.equal(await store.has(blobs[0].digest), true);
  assert.equal(await store.has(blobs[1].digest), false);
  assert.equal(await store.has(blobs[2].digest), true);
  assert.equal(store.bytes, 3000);
  assert.equal(store.evictions, 1);
});

it('memory tier reservations: resident + reserved bytes stay within the bound', async () => {
  const store = new MemoryBlobStore({ maxBytes: 3000 });
  const a = Buffer.alloc(1000, 'a');
  await store.write(sha256(a), Readable.from([a]));
  assert.equal(store.reserve(1500), true);
  assert.equal(store.reserve(1500), true); // evicts a: 3000 reserved
  assert.equal(await store.has(sha256(a)), false);
  assert.equal(store.reserve(1), false, 'no room beside the other reservations');
  assert.equal(store.bytes + store.reservedBytes, 3000);
  // One reservation lands, the other is abandoned.
  const b = Buffer.alloc(1500, 'b');
  store.put(sha256(b), b, { reserved: true });
  store.unreserve(1500);
  assert.equal(store.bytes, 1500);
  assert.equal(store.reservedBytes, 0);
  // A blob over maxBlobBytes never gets a reservation.
  const small = new MemoryBlobStore({ maxBytes: 3000, maxBlobBytes: 1000 });
  assert.equal(small.reserve(1001), false);
  assert.equal(small.reservedBytes, 0);
});
