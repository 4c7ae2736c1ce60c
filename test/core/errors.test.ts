import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorFromWire, HoardError, httpStatusOf, redactSecrets } from '../../src/core/errors.ts';

describe('redactSecrets', () => {
  it('hides URL credentials, presigned signatures, bearer tokens and token parameters', () => {
    assert.equal(redactSecrets('GET https://bob:hunter2@host/x failed'), 'GET https://***@host/x failed');
    assert.equal(
      redactSecrets('/actions-cache/uploads/ab?se=17&sig=Zm9v-_x&comp=block'),
      '/actions-cache/uploads/ab?se=17&sig=***&comp=block',
    );
    assert.equal(
      redactSecrets('/actions-cache/t/s3cr3t/_apis/artifactcache/caches/1'),
      '/actions-cache/t/***/_apis/artifactcache/caches/1',
    );
    assert.equal(
      redactSecrets('s3 ?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA/x&y=1'),
      's3 ?X-Amz-Signature=***&X-Amz-Credential=***&y=1',
    );
    assert.equal(redactSecrets('header Bearer tok.en-123 sent'), 'header Bearer *** sent');
    assert.equal(redactSecrets('url ?access_token=s3cr3t&password=pw'), 'url ?access_token=***&password=***');
  });

  it('leaves messages without secret-shaped parts unchanged', () => {
    const plain = 'no artifact 0123abcd in cache/turbo/team';
    assert.equal(redactSecrets(plain), plain);
  });

  it('applies to every HoardError message', () => {
    const e = new HoardError('HOARD_EREMOTE', 'fetch https://u:p@mirror/repo.git failed');
    assert.equal(e.message, 'fetch https://***@mirror/repo.git failed');
  });
});

describe('the wire mapping', () => {
  it('maps codes to statuses and back', () => {
    assert.equal(httpStatusOf(new HoardError('HOARD_EBLOB_NOT_FOUND', 'x')), 404);
    const back = errorFromWire(404, { error: { code: 'HOARD_EBLOB_NOT_FOUND', message: 'gone' } }, 'GET x');
    assert.equal(back.code, 'HOARD_EBLOB_NOT_FOUND');
  });
});
