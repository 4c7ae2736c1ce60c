// ServerMetrics (src/server/metrics.ts): requests and tier reads counted as
// plain numbers on the hot path are all in what /metrics and the console
// read, whenever they read it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { ServerMetrics } from '../../src/server/metrics.ts';

const ROUTE = '/v1/blobs/sha256/:hex';

function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('server metrics', () => {
  it('requests counted on the hot path are all in every read of the registry', async () => {
    const m = new ServerMetrics();
    for (let i = 0; i < 5; i++) m.observeRequest('GET', ROUTE, 200, 0.0004, 0, 4096);
    m.observeRequests('GET', ROUTE, 200, [0.002, 0.02, 2], 0, 3000);
    m.observeRequest('PUT', ROUTE, 201, 0.3, 100, 0);
    let text = await m.registry.metrics();
    const get200 = `method="GET",route="${ROUTE}",status="200"`;
    assert.equal(sample(text, 'hoard_http_requests_total', get200), 8);
    assert.equal(
      sample(text, 'hoard_http_response_bytes_total', `route="${ROUTE}",status="200"`),
      5 * 4096 + 3000,
    );
    assert.equal(
      sample(text, 'hoard_http_request_bytes_total', `route="${ROUTE}",status="200"`),
      0,
      'a series of 0 bytes is there, as inc(0) made it',
    );
    assert.equal(sample(text, 'hoard_http_request_bytes_total', `route="${ROUTE}",status="201"`), 100);
    assert.equal(sample(text, 'hoard_http_request_duration_seconds_count', `route="${ROUTE}"`), 9);
    assert.equal(
      sample(text, 'hoard_http_request_duration_seconds_bucket', `le="0.001",route="${ROUTE}"`),
      5,
    );
    assert.equal(
      sample(text, 'hoard_http_request_duration_seconds_bucket', `le="0.005",route="${ROUTE}"`),
      6,
    );

    // Later requests add to what was read; reading twice counts nothing twice.
    m.observeRequest('GET', ROUTE, 200, 0.0004, 0, 1);
    await m.registry.metrics();
    text = await m.registry.metrics();
    assert.equal(sample(text, 'hoard_http_requests_total', get200), 9);

    // The console reads single metrics: the same numbers.
    m.observeRequest('GET', ROUTE, 200, 0.0004, 0, 1);
    const values = (await m.requests.get()).values;
    assert.equal(values.find((v) => v.labels.status === '200' && v.labels.method === 'GET')?.value, 10);
  });

  it('tier hits and misses from the hooks are counted', async () => {
    const m = new ServerMetrics();
    const hooks = m.tierHooks();
    const d = sha256(Buffer.from('x'));
    for (let i = 0; i < 3; i++) {
      hooks.miss?.('memory');
      hooks.hit?.('disk', d);
    }
    hooks.hit?.('memory', d);
    const text = await m.registry.metrics();
    assert.equal(sample(text, 'hoard_tier_hits_total', 'tier="disk"'), 3);
    assert.equal(sample(text, 'hoard_tier_hits_total', 'tier="memory"'), 1);
    assert.equal(sample(text, 'hoard_tier_misses_total', 'tier="memory"'), 3);
  });
});
