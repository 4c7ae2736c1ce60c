// The sync suite (real `hoard` processes) against an s3:// remote on the test
// RGW. The CLI subprocesses inherit process.env, so the AWS_* variables are
// set by the fixture from the test environment.

import { syncSuite } from '../sync/sync-suite.ts';
import { s3RemoteFixture } from './s3-env.ts';

syncSuite('s3:// (rgw)', async () => s3RemoteFixture('sync'));
