// Child process for the crash test: writes large random blobs into a
// filesystem store, forever, printing each digest once it is stored, until
// the parent kills it with SIGKILL.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Hasher } from '../../../src/core/digest.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';

const [root, mibText] = process.argv.slice(2);
const store = await FsBlobStore.open(root);
const chunk = 1024 * 1024;
for (;;) {
  // Deterministic content per blob so the digest is known before writing.
  const seed = randomBytes(32);
  const make = function* () {
    for (let j = 0; j < Number(mibText); j++) {
      const b = Buffer.alloc(chunk, seed[j % 32]);
      b.writeUInt32BE(j, 0);
      seed.copy(b, 4);
      yield b;
    }
  };
  const h = new Hasher();
  for (const b of make()) h.update(b);
  const digest = h.digest();
  await store.write(digest, Readable.from(make()));
  process.stdout.write(`${digest}\n`);
}
