// The sync suite (real `hoard` processes) against an s3:// remote on the test
// RGW. The CLI subprocesses inherit process.env, so the AWS_* variables are
// set here from the test environment.

import type { S3Client } from '@aws-sdk/client-s3';
import { makeS3Client } from '../../src/remote/s3-remote.ts';
import { syncSuite } from '../sync/sync-suite.ts';
import { deletePrefix, randomPrefix, s3TestEnv } from './s3-env.ts';

syncSuite('s3:// (rgw)', async () => {
  const { env, bucket } = s3TestEnv();
  process.env.AWS_ENDPOINT_URL_S3 = env.AWS_ENDPOINT_URL_S3;
  process.env.AWS_REGION = env.AWS_REGION;
  const prefix = randomPrefix('sync');
  const client: S3Client = makeS3Client(env);
  return {
    url: `s3://${bucket}/${prefix}`,
    cleanup: async () => {
      await deletePrefix(client, bucket, `${prefix}/`);
      client.destroy();
    },
  };
});
