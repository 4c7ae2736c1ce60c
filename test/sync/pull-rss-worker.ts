// Child process of pull-memory.test.ts: pulls <ref> from the file:// store
// <url> into <dir> with the library (the CLI's own code path) and prints its
// peak RSS, so the test measures one pull alone, not the test runner.

import { openRemote } from '../../src/remote/remote.ts';
import { pull } from '../../src/sync/pull.ts';

const [url, ref, dir] = process.argv.slice(2);
const remote = await openRemote(url);
try {
  const before = process.memoryUsage().rss;
  const r = await pull({ dir, remote, ref });
  process.stdout.write(
    `${JSON.stringify({ rssBefore: before, maxRss: process.resourceUsage().maxRSS * 1024, filesTotal: r.filesTotal })}\n`,
  );
} finally {
  await remote.close();
}
