// The REAPI decoding of the action cache: which blobs an ActionResult and a
// Tree reference, and what is refused as not being one.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { sha256 } from '../../../src/core/digest.ts';
import {
  decodeActionResult,
  EMPTY_DIGEST,
  encodeActionResult,
  encodeTree,
  treeFileDigests,
} from '../../../src/features/bazel/action-result.ts';

const hex = (s: string) => sha256(s).slice(7);
const d = (s: string) => ({ hash: hex(s), sizeBytes: s.length });

test('an ActionResult lists its output files, directory trees and roots, stdout and stderr', () => {
  const bytes = encodeActionResult({
    outputFiles: [
      { path: 'out/a', digest: d('a') },
      { path: 'out/a-copy', digest: d('a') },
      { path: 'out/empty', digest: { hash: EMPTY_DIGEST.slice(7), sizeBytes: 0 } },
    ],
    outputDirectories: [{ path: 'out/dir', treeDigest: d('tree'), rootDirectoryDigest: d('root') }],
    outputSymlinks: [{ path: 'out/link', target: 'a' }],
    exitCode: 0,
    stdoutDigest: d('stdout'),
    stderrRaw: Buffer.from('inline'),
  });
  const refs = decodeActionResult(bytes);
  // Duplicates once; the empty blob (never uploaded by Bazel) left out.
  assert.deepEqual(new Set(refs.blobs), new Set([sha256('a'), sha256('root'), sha256('stdout')]));
  assert.deepEqual(refs.trees, [sha256('tree')]);
});

test('an empty body is the empty ActionResult (a valid message that references nothing)', () => {
  assert.deepEqual(decodeActionResult(new Uint8Array()), { blobs: [], trees: [] });
});

test('bytes that are not an ActionResult are HOARD_EBAD_REQUEST', () => {
  for (const body of ['not a protobuf', '{"exit_code": 0}', 'hello world'])
    assert.throws(
      () => decodeActionResult(Buffer.from(body)),
      (err: Error & { code?: string }) =>
        err.code === 'HOARD_EBAD_REQUEST' && /ActionResult/.test(err.message),
      body,
    );
  // Fixed noise (no flaky randomness): 64-byte chunks of a hash chain.
  for (let i = 0; i < 50; i++) {
    const noise = Buffer.concat([
      createHash('sha256').update(`a${i}`).digest(),
      createHash('sha256').update(`b${i}`).digest(),
    ]);
    assert.throws(() => decodeActionResult(noise), /not a valid ActionResult/);
  }
});

test('a digest that is not SHA-256 hex is refused', () => {
  for (const digest of [
    { hash: 'abc', sizeBytes: 3 },
    { hash: 'A'.repeat(64), sizeBytes: 1 },
    { hash: hex('x'), sizeBytes: -1 },
  ])
    assert.throws(
      () => decodeActionResult(encodeActionResult({ outputFiles: [{ path: 'f', digest }] })),
      /output_files\[0\]\.digest is not a SHA-256 digest/,
    );
});

test('a Tree lists the files of its root and of every child directory', () => {
  const bytes = encodeTree({
    root: { files: [{ name: 'f', digest: d('f') }], directories: [{ name: 'sub', digest: d('subdir') }] },
    children: [
      {
        files: [
          { name: 'g', digest: d('g') },
          { name: 'f2', digest: d('f') },
        ],
      },
    ],
  });
  assert.deepEqual(new Set(treeFileDigests(bytes)), new Set([sha256('f'), sha256('g')]));
  assert.throws(() => treeFileDigests(Buffer.from('not a tree')), /not a valid Tree/);
});
