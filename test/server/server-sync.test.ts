// The sync suite (push/pull through the CLI and the library) against a live
// hoard server: the http:// remote end to end.

import { syncSuite } from '../sync/sync-suite.ts';
import { startTestServer } from './helpers.ts';

syncSuite('a hoard server (http://)', async () => {
  const srv = await startTestServer();
  return { url: srv.url, cleanup: () => srv.close() };
});
