// The BlobStore and RefStore conformance suites for the http:// remote,
// against a live in-process hoard server (fresh server and data per test).
//
// The server refuses a ref whose target blob it does not hold (409, API v1),
// while the ref suite points refs at sha256 of small strings without
// uploading them; the ref fixture therefore stores those blobs first. The
// suite itself runs unchanged.

import { Readable } from 'node:stream';
import { sha256 } from '../../src/core/digest.ts';
import { openHttpRemote } from '../../src/remote/http-remote.ts';
import { startTestServer } from '../server/helpers.ts';
import { blobStoreConformance } from '../store/blob-store-conformance.ts';
import { refStoreConformance } from '../store/ref-store-conformance.ts';

blobStoreConformance('http (hoard server)', async () => {
  const srv = await startTestServer();
  const remote = openHttpRemote(new URL(srv.url));
  return { store: remote.blobs, cleanup: () => srv.close() };
});

/** Every string whose digest the ref suite uses as a target. */
const REF_TARGETS = [
  'one',
  'two',
  'three',
  ...Array.from({ length: 16 }, (_, i) => `w${i}`),
  ...Array.from({ length: 40 }, (_, i) => String(i)),
];

refStoreConformance('http (hoard server)', async () => {
  const srv = await startTestServer();
  const remote = openHttpRemote(new URL(srv.url));
  await Promise.all(REF_TARGETS.map((s) => remote.blobs.write(sha256(s), Readable.from([Buffer.from(s)]))));
  return { store: remote.refs, cleanup: () => srv.close() };
});
