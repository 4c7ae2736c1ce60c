// The history suite (test/cli/history-suite.ts) against a file:// remote and
// a live `hoard serve` child process.

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveChild } from '../support/serve-child.ts';
import { tempDir } from '../sync/helpers.ts';
import { historySuite } from './history-suite.ts';

historySuite('file://', async () => {
  const t = await tempDir('hoard-hist-remote-');
  return { url: pathToFileURL(join(t.dir, 'store')).href, cleanup: t.cleanup };
});

historySuite('a live hoard serve', async () => {
  const t = await tempDir('hoard-hist-serve-');
  const srv = await serveChild(join(t.dir, 'data'));
  return {
    url: srv.url,
    cleanup: async () => {
      srv.child.kill('SIGTERM');
      await srv.exited;
      await t.cleanup();
    },
  };
});
