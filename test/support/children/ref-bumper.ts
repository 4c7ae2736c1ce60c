// Child process for the cross-process ref test: performs `rounds`
// read-modify-write increments of a counter kept in a ref's target, via
// compare-and-set on a filesystem RefStore shared with sibling processes.
import { Readable } from 'node:stream';
import { sha256 } from '../../../src/core/digest.ts';
import { isHoardError } from '../../../src/core/errors.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../../src/store/fs-ref-store.ts';
import { readAll } from '../streams.ts';

const [root, refName, roundsText] = process.argv.slice(2);
const refs = await FsRefStore.open(root);
const blobs = await FsBlobStore.open(root);
let conflicts = 0;
for (let i = 0; i < Number(roundsText); i++) {
  for (;;) {
    const cur = await refs.get(refName);
    const n = cur ? Number((await readAll(await blobs.read(cur.target))).toString()) : 0;
    const next = Buffer.from(String(n + 1));
    await blobs.write(sha256(next), Readable.from([next]));
    try {
      await refs.set(refName, sha256(next), cur?.version ?? null);
      break;
    } catch (err) {
      if (!isHoardError(err, 'HOARD_EREF_CONFLICT')) throw err;
      conflicts++;
    }
  }
}
process.stdout.write(JSON.stringify({ conflicts }));
