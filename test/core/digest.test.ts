import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import {
  digestFromHex,
  digestOf,
  isDigest,
  parseDigest,
  sha256,
  VerifyingStream,
} from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { drain } from '../../src/core/streams.ts';

const EMPTY = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('digest', () => {
  it('hashes in the sha256:<hex> form', () => {
    assert.equal(sha256(''), EMPTY);
    assert.equal(isDigest(EMPTY), true);
  });

  it('rejects malformed digests with a clear error', () => {
    for (const bad of [
      '',
      'sha256:',
      EMPTY.toUpperCase(),
      `${EMPTY}0`,
      'md5:abc',
      `sha512:${'0'.repeat(64)}`,
      42,
    ]) {
      assert.throws(
        () => parseDigest(bad),
        (e) => isHoardError(e, 'HOARD_EDIGEST_INVALID') && /sha256/.test(e.hint ?? ''),
      );
    }
    assert.throws(
      () => digestFromHex('zz'),
      (e) => isHoardError(e, 'HOARD_EDIGEST_INVALID'),
    );
    assert.equal(digestFromHex(EMPTY.slice(7)), EMPTY);
  });

  it('hashes a stream without buffering it', async () => {
    const chunks = [Buffer.from('hello '), Buffer.from('world')];
    assert.deepEqual(await digestOf(Readable.from(chunks)), { digest: sha256('hello world'), size: 11 });
  });

  it('VerifyingStream fails at the end on a mismatch or a short body', async () => {
    const ok = new VerifyingStream(sha256('abc'), 3);
    await pipeline(Readable.from([Buffer.from('abc')]), ok, drainSink());
    assert.equal(ok.result, sha256('abc'));
    await assert.rejects(
      pipeline(Readable.from([Buffer.from('abd')]), new VerifyingStream(sha256('abc')), drainSink()),
      (e) => isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
    );
    await assert.rejects(
      pipeline(Readable.from([Buffer.from('ab')]), new VerifyingStream(sha256('abc'), 3), drainSink()),
      (e) => isHoardError(e, 'HOARD_ETRUNCATED'),
    );
  });
});

function drainSink() {
  return async (src: AsyncIterable<Uint8Array>) => drain(src);
}
