// The `hoard cache` suite (real `hoard` processes) against an s3:// remote
// on the test RGW, as test/remote/s3-sync.test.ts runs the sync suite.

import { cacheSuite } from '../sync/cache-suite.ts';
import { s3RemoteFixture } from './s3-env.ts';

cacheSuite('s3:// (rgw)', async () => s3RemoteFixture('cache'));
