// The S3 server the tests use: scripts/test.sh starts Ceph RGW and exports
// HOARD_TEST_S3_ENDPOINT and the AWS_* variables. A test that cannot reach it
// fails (it never skips).

import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { makeS3Client } from '../../src/remote/s3-remote.ts';

export function s3TestEnv(): { env: NodeJS.ProcessEnv; endpoint: string; bucket: string } {
  const endpoint = process.env.HOARD_TEST_S3_ENDPOINT || process.env.AWS_ENDPOINT_URL_S3;
  if (!endpoint)
    throw new Error(
      'no S3 test server: run the tests with `npm test` (starts Ceph RGW), or set HOARD_TEST_S3_ENDPOINT and the AWS_* variables (eval "$(bash scripts/rgw.sh env)")',
    );
  const bucket = process.env.HOARD_TEST_S3_BUCKET || 'hoard-test';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_REGION: process.env.AWS_REGION || 'us-east-1',
  };
  return { env, endpoint, bucket };
}

export function randomPrefix(tag: string): string {
  return `t/${tag}-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** Deletes every object under `prefix` (memstore keeps them in RAM). */
export async function deletePrefix(client: S3Client, bucket: string, prefix: string): Promise<void> {
  let token: string | undefined;
  do {
    const res = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    await Promise.all(
      (res.Contents ?? []).map((o) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }))),
    );
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
}

/**
 * A fresh, empty s3:// remote under a random prefix of the test bucket (for
 * the suites run against every backend); CLI subprocesses inherit the
 * endpoint and region through process.env, so they are set here.
 */
export function s3RemoteFixture(tag: string): { url: string; cleanup: () => Promise<void> } {
  const { env, bucket } = s3TestEnv();
  process.env.AWS_ENDPOINT_URL_S3 = env.AWS_ENDPOINT_URL_S3;
  process.env.AWS_REGION = env.AWS_REGION;
  const prefix = randomPrefix(tag);
  const client: S3Client = makeS3Client(env);
  return {
    url: `s3://${bucket}/${prefix}`,
    cleanup: async () => {
      await deletePrefix(client, bucket, `${prefix}/`);
      client.destroy();
    },
  };
}
