// A separate process that pushes `rounds` times to one ref, adding one file
// per round: used by the concurrent-writers test (two of these at once).
// Usage: node push-worker.ts <remoteUrl> <dir> <ref> <prefix> <rounds>

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openRemote } from '../../src/remote/remote.ts';
import { push } from '../../src/sync/push.ts';

const [remoteUrl, dir, ref, prefix, roundsText] = process.argv.slice(2);
const remote = await openRemote(remoteUrl, { create: true });
let failures = 0;
for (let i = 0; i < Number(roundsText); i++) {
  await writeFile(join(dir, `${prefix}-${i}.txt`), `${prefix} round ${i}\n`);
  try {
    await push({ dir, remote, ref, message: `${prefix} ${i}` });
  } catch (err) {
    failures++;
    process.stderr.write(`${prefix} round ${i}: ${(err as Error).message}\n`);
  }
}
await remote.close();
process.exit(failures === 0 ? 0 : 1);
