// The `hoard cache` suite against a file:// remote.

import { pathToFileURL } from 'node:url';
import { cacheSuite } from './cache-suite.ts';
import { tempDir } from './helpers.ts';

cacheSuite('file://', async () => {
  const { dir, cleanup } = await tempDir('hoard-cache-remote-');
  return { url: pathToFileURL(dir).href, cleanup };
});
