// The failed-token lockout (src/server/auth-failures.ts): an address that
// presents too many invalid tokens is refused — valid token or not — until the
// window passes; loopback is exempt; IPv6 counts per /64; memory is bounded.
// Requests come through fastify's inject with a chosen remote address (test
// servers listen on loopback only, which the lockout exempts), and the
// lockout's clock is a ManualClock: the minute passes without waiting.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { consoleFeature } from '../../src/features/console/console-feature.ts';
import { apiFeature } from '../../src/server/api-feature.ts';
import { AuthFailureLimiter } from '../../src/server/auth-failures.ts';
import { withSettings } from '../../src/server/feature.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { startTestServer, type TestServer } from './helpers.ts';

const READ = 'read-token-0123456789';
const WINDOW = DEFAULTS.authFailureWindowMs;

describe('AuthFailureLimiter', () => {
  it('locks an address out after `limit` invalid tokens, for one window, then forgets', () => {
    const clock = new ManualClock();
    const locked: string[] = [];
    const l = new AuthFailureLimiter({ limit: 3, windowMs: WINDOW, clock, onLockout: (k) => locked.push(k) });
    for (let i = 0; i < 3; i++) l.failed('203.0.113.5');
    assert.equal(l.lockedFor('203.0.113.5'), 0, 'at the limit: not yet');
    l.failed('203.0.113.5');
    assert.equal(l.lockedFor('203.0.113.5'), WINDOW);
    assert.deepEqual(locked, ['203.0.113.5']);
    assert.equal(l.lockedFor('203.0.113.6'), 0, 'other addresses unaffected');
    clock.advance(WINDOW - 1);
    assert.equal(l.lockedFor('203.0.113.5'), 1);
    clock.advance(1);
    assert.equal(l.lockedFor('203.0.113.5'), 0);
    // A new window: three more failures are allowed again.
    for (let i = 0; i < 3; i++) l.failed('203.0.113.5');
    assert.equal(l.lockedFor('203.0.113.5'), 0);
  });

  it('failures spread over windows never lock', () => {
    const clock = new ManualClock();
    const l = new AuthFailureLimiter({ limit: 3, windowMs: WINDOW, clock });
    for (let i = 0; i < 20; i++) {
      l.failed('198.51.100.7');
      l.failed('198.51.100.7');
      clock.advance(WINDOW);
    }
    assert.equal(l.lockedFor('198.51.100.7'), 0);
  });

  it('loopback is exempt; IPv4-mapped addresses are their IPv4; IPv6 counts per /64', () => {
    const l = new AuthFailureLimiter({ limit: 1, windowMs: WINDOW, clock: new ManualClock() });
    for (let i = 0; i < 10; i++) l.failed('127.0.0.1');
    for (let i = 0; i < 10; i++) l.failed('::1');
    assert.equal(l.lockedFor('127.0.0.1') + l.lockedFor('::1'), 0);
    assert.equal(l.size, 0);
    l.failed('::ffff:192.0.2.1');
    l.failed('192.0.2.1');
    assert.ok(l.lockedFor('192.0.2.1') > 0);
    // Rotating through one /64 does not escape it.
    l.failed('2001:db8:1:2::1');
    l.failed('2001:db8:1:2:ffff:0:0:9');
    assert.ok(l.lockedFor('2001:0db8:0001:0002:dead:beef:0:1') > 0);
    assert.equal(l.lockedFor('2001:db8:1:3::1'), 0, 'another /64');
  });

  it('tracks a bounded number of addresses however many send bad tokens', () => {
    const l = new AuthFailureLimiter({ limit: 5, windowMs: WINDOW, clock: new ManualClock() });
    for (let i = 0; i < 25_000; i++) l.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    assert.ok(l.size <= 10_000, `tracked ${l.size}`);
  });

  it('limit 0 turns the lockout off', () => {
    const l = new AuthFailureLimiter({ limit: 0, windowMs: WINDOW, clock: new ManualClock() });
    for (let i = 0; i < 100; i++) l.failed('203.0.113.9');
    assert.equal(l.lockedFor('203.0.113.9'), 0);
  });
});

describe('failed-token lockout on the server', () => {
  let srv: TestServer;
  let dir: string;
  const clock = new ManualClock();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-lockout-'));
    const tokens = await writeTokensFile(dir, [{ name: 'reader', token: READ, scopes: ['read'] }]);
    srv = await startTestServer(
      { tokens, authFailureLimit: 3 },
      { clock, features: [withSettings(apiFeature), withSettings(consoleFeature)] },
    );
  });
  after(async () => {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  });

  const get = (remoteAddress: string, token?: string) =>
    srv.server.app.inject({
      method: 'GET',
      url: '/v1/refs?prefix=',
      remoteAddress,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });

  it('refuses every credentialed request of a locked-out address until the window passes', async () => {
    const bad = '203.0.113.50';
    assert.equal((await get(bad, READ)).statusCode, 200);
    for (let i = 0; i < 4; i++) assert.equal((await get(bad, `guess-${i}`)).statusCode, 401);
    const locked = await get(bad, READ);
    assert.equal(locked.statusCode, 429, 'the right token is refused too: no oracle');
    assert.equal(locked.json().error.code, 'HOARD_EAUTH_LOCKED');
    assert.equal(locked.headers['retry-after'], String(WINDOW / 1000));
    assert.equal((await get(bad, 'guess-again')).statusCode, 429);
    // Basic auth with the token as the password is the same credential.
    const basic = await srv.server.app.inject({
      method: 'GET',
      url: '/v1/refs?prefix=',
      remoteAddress: bad,
      headers: { authorization: `Basic ${Buffer.from(`ci:${READ}`).toString('base64')}` },
    });
    assert.equal(basic.statusCode, 429);
    // No credentials: the ordinary answer (the lockout is about guessing tokens).
    assert.equal((await get(bad)).statusCode, 401);
    // Another client is unaffected; loopback never locks.
    assert.equal((await get('203.0.113.51', READ)).statusCode, 200);
    for (let i = 0; i < 10; i++) assert.equal((await get('127.0.0.1', `nope-${i}`)).statusCode, 401);
    assert.equal((await get('127.0.0.1', READ)).statusCode, 200);
    const metrics = await srv.server.app.inject({
      method: 'GET',
      url: '/metrics',
      remoteAddress: '127.0.0.1',
      headers: { authorization: `Bearer ${READ}` },
    });
    assert.match(metrics.body, /^hoard_auth_lockouts_total 1$/m);
    clock.advance(WINDOW);
    assert.equal((await get(bad, READ)).statusCode, 200);
  });

  it('the console sign-in form counts failures and answers a locked-out address with 429', async () => {
    const who = '198.51.100.20';
    const form = await srv.server.app.inject({ method: 'GET', url: '/ui/sign-in', remoteAddress: who });
    const csrf = /name="csrf" value="([^"]+)"/.exec(form.body)?.[1];
    assert.ok(csrf);
    const post = (token: string) =>
      srv.server.app.inject({
        method: 'POST',
        url: '/ui/sign-in',
        remoteAddress: who,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `hoard_csrf=${csrf}`,
          host: 'hoard.test',
        },
        payload: new URLSearchParams({ token, csrf, next: '/ui/' }).toString(),
      });
    for (let i = 0; i < 3; i++) assert.equal((await post(`wrong-${i}`)).statusCode, 401);
    // An oversized token counts too (it is never hashed).
    assert.equal((await post('x'.repeat(5000))).statusCode, 401);
    const locked = await post(READ);
    assert.equal(locked.statusCode, 429);
    assert.match(locked.body, /Too many invalid tokens/);
    assert.equal(locked.headers['retry-after'], String(WINDOW / 1000));
    // The API shares the lockout.
    assert.equal((await get(who, READ)).statusCode, 429);
    clock.advance(WINDOW);
    assert.equal((await post(READ)).statusCode, 303);
  });
});
