// The web console at the HTTP level: the auth matrix of every endpoint
// (pages, JSON, downloads), sign-in with its CSRF and cookie rules, security
// headers, escaping of hostile strings, and bad input.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../../src/core/digest.ts';
import { consoleFeature } from '../../../src/features/console/console-feature.ts';
import { openHttpRemote } from '../../../src/remote/http-remote.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { push } from '../../../src/sync/push.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { writeTokensFile } from '../../support/tokens.ts';

const T = { read: 'http-read-token-aa11', write: 'http-write-token-bb22', other: 'http-other-token-cc33' };
const XSS = '<img src=x onerror="window.__xss=1">';
const features = [withSettings(apiFeature), withSettings(consoleFeature)];

async function authServer(extra: Record<string, unknown> = {}): Promise<{ srv: TestServer; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'hoard-console-http-'));
  const tokens = await writeTokensFile(dir, [
    { name: 'viewer', token: T.read, scopes: ['read'] },
    { name: 'ci', token: T.write, scopes: ['read', 'write'] },
    { name: 'other', token: T.other, scopes: ['read', 'write'], refs: ['team/other/'] },
  ]);
  return { srv: await startTestServer({ tokens, ...extra }, { features }), dir };
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

/** Set-Cookie values of a response, by cookie name. */
function setCookies(res: Response): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of res.headers.getSetCookie()) out.set(c.slice(0, c.indexOf('=')), c);
  return out;
}
const cookieValue = (setCookie: string) =>
  setCookie.slice(setCookie.indexOf('=') + 1, setCookie.indexOf(';'));

describe('web console over HTTP', () => {
  let srv: TestServer;
  let dir: string;
  let blob: string;
  before(async () => {
    ({ srv, dir } = await authServer());
    // A synced folder whose file path and message are markup.
    const work = join(dir, 'work');
    await mkdir(join(work, 'src'), { recursive: true });
    await writeFile(join(work, 'src', `${XSS}.txt`), 'markup in a name\n');
    await writeFile(join(work, 'plain.txt'), 'plain\n');
    await push({
      dir: work,
      remote: openHttpRemote(new URL(srv.url), T.write),
      ref: 'team/app/main',
      message: XSS,
    });
    const bytes = Buffer.from('a blob to download');
    blob = sha256(bytes);
    const put = await fetch(`${srv.url}/v1/blobs/sha256/${blob.slice(7)}`, {
      method: 'PUT',
      headers: bearer(T.write),
      body: bytes,
    });
    assert.equal(put.status, 201);
  });
  after(async () => {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  });

  const endpoints = () => [
    '/v1/status',
    '/v1/status/git',
    '/v1/status/refs?prefix=team/',
    '/v1/status/ref?name=team/app/main',
    `/v1/status/blobs?digest=${blob}`,
    '/ui/',
    '/ui/git',
    '/ui/refs',
    '/ui/ref?name=team/app/main',
    '/ui/blobs',
    `/ui/file/sha256/${blob.slice(7)}?name=x.bin`,
  ];

  it('auth matrix: no token, invalid token, read, write, a token scoped to another namespace', async () => {
    for (const path of endpoints()) {
      const page = path.startsWith('/ui/') && !path.startsWith('/ui/file/');
      const none = await fetch(srv.url + path, { redirect: 'manual' });
      if (page) {
        assert.equal(none.status, 303, path);
        assert.equal(none.headers.get('location'), `/ui/sign-in?next=${encodeURIComponent(path)}`);
      } else assert.equal(none.status, 401, path);
      await none.arrayBuffer();
      const bad = await fetch(srv.url + path, { headers: bearer('not-a-token'), redirect: 'manual' });
      assert.equal(bad.status, page ? 303 : 401, path);
      await bad.arrayBuffer();
      for (const t of [T.read, T.write, T.other]) {
        const res = await fetch(srv.url + path, { headers: bearer(t) });
        // A token bound to team/other/ may not see the ref team/app/main (auth.ts mayReadRef).
        const want = t === T.other && path.includes('ref?name=team/app/main') ? 403 : 200;
        assert.equal(res.status, want, `${path} with ${t}: ${await res.clone().text()}`);
        await res.arrayBuffer();
      }
    }
  });

  it('a token bound to other ref prefixes sees none of these refs: listing, JSON and pages, header or session', async () => {
    const list = (await (await fetch(`${srv.url}/v1/status/refs`, { headers: bearer(T.other) })).json()) as {
      refs: { name: string }[];
    };
    assert.deepEqual(list.refs, []);
    const page = await (await fetch(`${srv.url}/ui/refs`, { headers: bearer(T.other) })).text();
    assert.ok(!page.includes('team/app/main'), 'the refs page lists a ref outside the token');
    const readerPage = await (await fetch(`${srv.url}/ui/refs`, { headers: bearer(T.read) })).text();
    assert.ok(readerPage.includes('team/app/main'), 'the unbound reader sees it');
    // Signed in through the form: the session keeps the token's prefixes.
    const form = await fetch(`${srv.url}/ui/sign-in`);
    const csrf = cookieValue(setCookies(form).get('hoard_csrf')!);
    await form.arrayBuffer();
    const signIn = await fetch(`${srv.url}/ui/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `hoard_csrf=${csrf}` },
      body: new URLSearchParams({ token: T.other, csrf, next: '/ui/refs' }),
    });
    assert.equal(signIn.status, 303, await signIn.clone().text());
    await signIn.arrayBuffer();
    const cookie = `hoard_session=${cookieValue(setCookies(signIn).get('hoard_session')!)}`;
    const viaSession = await (await fetch(`${srv.url}/ui/refs`, { headers: { cookie } })).text();
    assert.ok(viaSession.includes('Refs') && !viaSession.includes('team/app/main'));
    const one = await fetch(`${srv.url}/ui/ref?name=team/app/main`, { headers: { cookie } });
    assert.equal(one.status, 403);
    await one.arrayBuffer();
  });

  it('a token bound to other ref prefixes gets no blob lists (they name digests of every namespace), only its lookup', async () => {
    // Read it so the most-read list names it; the disk tier's largest list does anyway.
    await (
      await fetch(`${srv.url}/v1/blobs/sha256/${blob.slice(7)}`, { headers: bearer(T.read) })
    ).arrayBuffer();
    type Row = { digest: string };
    type View = { largest: { memory: Row[]; disk: Row[] }; mostRead: Row[]; lookup: Row | null };
    const view = async (t: string, q = '') => {
      const res = await fetch(`${srv.url}/v1/status/blobs${q}`, { headers: bearer(t) });
      assert.equal(res.status, 200);
      return (await res.json()) as View;
    };
    const digests = (v: View) => [...v.largest.memory, ...v.largest.disk, ...v.mostRead].map((r) => r.digest);
    assert.ok(digests(await view(T.read)).includes(blob), 'the unbound reader sees the lists');
    const bound = await view(T.other);
    assert.deepEqual(digests(bound), []);
    assert.equal(
      (await view(T.other, `?digest=${blob}`)).lookup?.digest,
      blob,
      'a known digest is still looked up',
    );
    const page = await (await fetch(`${srv.url}/ui/blobs`, { headers: bearer(T.other) })).text();
    assert.ok(page.includes('Blobs') && !page.includes(blob.slice(7)), 'the blobs page lists no digest');
  });

  it('JSON: /v1/status has the tiers, the features and the series; refs and a sync ref decode', async () => {
    const s = (await (await fetch(`${srv.url}/v1/status`, { headers: bearer(T.read) })).json()) as {
      version: string;
      tiers: { memory: { maxBytes: number }; disk: { blobs: number } };
      features: { name: string; requests: number }[];
      series: { points: unknown[] };
    };
    assert.match(s.version, /^\d+\.\d+\.\d+/);
    assert.ok(s.tiers.memory.maxBytes > 0);
    assert.ok(s.tiers.disk.blobs >= 3);
    assert.ok(s.features.find((f) => f.name === 'blobs')!.requests > 0);
    assert.ok(Array.isArray(s.series.points));
    const refs = (await (await fetch(`${srv.url}/v1/status/refs`, { headers: bearer(T.read) })).json()) as {
      refs: { name: string; kind: string; target: string }[];
    };
    assert.deepEqual(refs.refs, [{ name: 'team/app/main', kind: 'sync', target: refs.refs[0].target }]);
    const ref = (await (
      await fetch(`${srv.url}/v1/status/ref?name=team/app/main&path=src`, { headers: bearer(T.read) })
    ).json()) as { sync: { entries: { name: string }[]; history: { message: string }[] } };
    assert.deepEqual(
      ref.sync.entries.map((e) => e.name),
      [`${XSS}.txt`],
    );
    assert.equal(ref.sync.history[0].message, XSS);
  });

  it('pages escape hostile strings: file paths, messages, and names from the query', async () => {
    const pages = [
      '/ui/ref?name=team/app/main',
      '/ui/ref?name=team/app/main&path=src',
      `/ui/ref?name=${encodeURIComponent(XSS)}`,
      `/ui/refs?prefix=${encodeURIComponent(XSS)}`,
      `/ui/blobs?digest=${encodeURIComponent(XSS)}`,
    ];
    for (const p of pages) {
      const res = await fetch(srv.url + p, { headers: bearer(T.read) });
      const body = await res.text();
      assert.ok(!body.includes('<img'), `${p} contains raw markup`);
      assert.ok(body.includes('&lt;img src=x onerror='), `${p} lacks the escaped text`);
    }
  });

  it('security headers on pages, JSON and the sign-in form', async () => {
    for (const path of ['/ui/', '/v1/status', '/ui/sign-in', '/ui/assets/console.css']) {
      const res = await fetch(srv.url + path, { headers: bearer(T.read) });
      await res.arrayBuffer();
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.match(csp, /script-src 'self'/, path);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
      assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
    }
    const file = await fetch(
      `${srv.url}/ui/file/sha256/${blob.slice(7)}?name=${encodeURIComponent('a"b;<c>.html')}`,
      {
        headers: bearer(T.read),
      },
    );
    assert.equal(await file.text(), 'a blob to download');
    assert.equal(file.headers.get('content-type'), 'application/octet-stream');
    assert.match(
      file.headers.get('content-disposition') ?? '',
      /^attachment; filename="a_b_<c>.html"; filename\*=UTF-8''a%22b%3B%3Cc%3E.html$/,
    );
    assert.match(file.headers.get('content-security-policy') ?? '', /sandbox/);
  });

  it('sign-in: CSRF double submit, a wrong token refused, a session cookie that is not the token', async () => {
    const form = await fetch(`${srv.url}/ui/sign-in?next=${encodeURIComponent('/ui/refs')}`);
    const html = await form.text();
    const csrfCookie = setCookies(form).get('hoard_csrf')!;
    assert.match(csrfCookie, /HttpOnly/);
    assert.match(csrfCookie, /SameSite=Strict/);
    const csrf = cookieValue(csrfCookie);
    assert.ok(html.includes(`value="${csrf}"`));
    const post = (body: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${srv.url}/ui/sign-in`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `hoard_csrf=${csrf}`,
          ...headers,
        },
        body: new URLSearchParams(body),
      });

    // Without the token, with another one, from another site: refused, no session.
    for (const [body, headers] of [
      [{ token: T.read, next: '/ui/refs' }, {}],
      [{ token: T.read, csrf: 'x'.repeat(43), next: '/ui/refs' }, {}],
      [{ token: T.read, csrf, next: '/ui/refs' }, { origin: 'https://evil.example' }],
      [{ token: T.read, csrf, next: '/ui/refs' }, { 'sec-fetch-site': 'cross-site' }],
    ] as [Record<string, string>, Record<string, string>][]) {
      const res = await post(body, headers);
      assert.equal(res.status, 403, JSON.stringify({ body, headers }));
      assert.equal(setCookies(res).get('hoard_session'), undefined);
      await res.arrayBuffer();
    }
    const wrong = await post({ token: 'wrong-token', csrf, next: '/ui/refs' });
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /That token is not valid here/);
    assert.equal(setCookies(wrong).get('hoard_session'), undefined);

    const good = await post({ token: T.read, csrf, next: '/ui/refs' });
    assert.equal(good.status, 303);
    assert.equal(good.headers.get('location'), '/ui/refs');
    const session = setCookies(good).get('hoard_session')!;
    assert.match(session, /HttpOnly/);
    assert.match(session, /SameSite=Strict/);
    const sid = cookieValue(session);
    assert.match(sid, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(!sid.includes(T.read) && !session.includes(sha256(Buffer.from(T.read)).slice(7)));
    await good.arrayBuffer();

    const withCookie = { cookie: `hoard_session=${sid}` };
    const page = await fetch(`${srv.url}/ui/refs`, { headers: withCookie });
    const body = await page.text();
    assert.equal(page.status, 200);
    assert.ok(body.includes('team/app/main'));
    assert.ok(!body.includes(T.read), 'no token in the page');
    assert.equal((await fetch(`${srv.url}/v1/status`, { headers: withCookie })).status, 200);

    // Sign-out needs the session's own CSRF token.
    const signOutCsrf = /name="csrf" value="([^"]+)"/.exec(body)![1];
    const noCsrf = await fetch(`${srv.url}/ui/sign-out`, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...withCookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'csrf=nope',
    });
    assert.equal(noCsrf.status, 403);
    await noCsrf.arrayBuffer();
    const out = await fetch(`${srv.url}/ui/sign-out`, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...withCookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: signOutCsrf }),
    });
    assert.equal(out.status, 303);
    assert.match(setCookies(out).get('hoard_session') ?? '', /Max-Age=0/);
    await out.arrayBuffer();
    const after = await fetch(`${srv.url}/ui/refs`, { headers: withCookie, redirect: 'manual' });
    assert.equal(after.status, 303);
    await after.arrayBuffer();
    assert.equal((await fetch(`${srv.url}/v1/status`, { headers: withCookie })).status, 401);
  });

  it('sign-in never redirects off the console (no open redirect)', async () => {
    const form = await fetch(`${srv.url}/ui/sign-in`);
    await form.arrayBuffer();
    const csrf = cookieValue(setCookies(form).get('hoard_csrf')!);
    for (const next of ['https://evil.example/', '//evil.example/ui/', '/ui/\\evil', '/v1/blobs']) {
      const res = await fetch(`${srv.url}/ui/sign-in`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `hoard_csrf=${csrf}` },
        body: new URLSearchParams({ token: T.read, csrf, next }),
      });
      assert.equal(res.status, 303);
      assert.equal(res.headers.get('location'), '/ui/', next);
      await res.arrayBuffer();
    }
  });

  it('bad input: a clear 4xx, nothing changed', async () => {
    const cases: [string, number][] = [
      [`/v1/status/refs?prefix=${encodeURIComponent('<x>')}`, 400],
      ['/v1/status/refs?limit=abc', 400],
      ['/v1/status/refs?limit=0', 400],
      ['/v1/status/refs?limit=5000', 400],
      ['/v1/status/refs?prefix=a&prefix=b', 400],
      ['/v1/status/ref?name=../x', 400],
      ['/v1/status/ref', 400],
      ['/v1/status/ref?name=team/nope', 404],
      ['/v1/status/ref?name=team/app/main&path=../etc', 400],
      ['/v1/status/ref?name=team/app/main&path=nope', 400],
      ['/v1/status/ref?name=team/app/main&version=sha256:zz', 400],
      ['/v1/status/blobs?digest=zzz', 400],
      ['/ui/file/sha256/XYZ', 400],
      [`/ui/file/sha256/${'0'.repeat(64)}`, 404],
      ['/ui/assets/../../package.json', 404],
      ['/ui/assets/nope.js', 404],
    ];
    for (const [path, status] of cases) {
      const res = await fetch(srv.url + path, { headers: bearer(T.read) });
      const text = await res.text();
      assert.equal(res.status, status, `${path}: ${text}`);
      if (path.startsWith('/v1/')) assert.match(JSON.parse(text).error.code, /^HOARD_E/);
    }
    const huge = await fetch(`${srv.url}/ui/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${'a'.repeat(20_000)}`,
    });
    assert.equal(huge.status, 413);
    await huge.arrayBuffer();
    const json = await fetch(`${srv.url}/ui/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"token":"x"}',
    });
    assert.ok(json.status === 400 || json.status === 415, String(json.status));
    await json.arrayBuffer();
    const refs = (await (
      await fetch(`${srv.url}/v1/refs?prefix=`, { headers: bearer(T.read) })
    ).json()) as unknown;
    assert.ok(refs);
  });

  it('refs are paginated: limit and next walk every ref once, in order', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) {
      const res = await fetch(`${srv.url}/v1/refs/team/page/${n}`, {
        method: 'PUT',
        headers: { ...bearer(T.write), 'content-type': 'application/json', 'if-none-match': '*' },
        body: JSON.stringify({ target: blob }),
      });
      assert.equal(res.status, 201);
      await res.arrayBuffer();
    }
    const seen: string[] = [];
    let after = '';
    for (let pages = 0; pages < 10; pages++) {
      const q = new URLSearchParams({ prefix: 'team/page/', limit: '2', ...(after ? { after } : {}) });
      const page = (await (
        await fetch(`${srv.url}/v1/status/refs?${q}`, { headers: bearer(T.read) })
      ).json()) as {
        refs: { name: string; kind: string }[];
        next: string | null;
      };
      assert.ok(page.refs.length <= 2);
      for (const r of page.refs) assert.equal(r.kind, 'blob');
      seen.push(...page.refs.map((r) => r.name));
      if (!page.next) break;
      after = page.next;
    }
    assert.deepEqual(
      seen,
      ['a', 'b', 'c', 'd', 'e'].map((n) => `team/page/${n}`),
    );
    // The page links the next one.
    const html = await (
      await fetch(`${srv.url}/ui/refs?prefix=team/page/&limit=2`, { headers: bearer(T.read) })
    ).text();
    assert.match(html, /href="\/ui\/refs\?prefix=team%2Fpage%2F&amp;after=team%2Fpage%2Fb&amp;limit=2"/);
  });

  it('auth: the redirects, the static assets and the sign-in form are public (they hold no data), the same for every caller', async () => {
    const css = await (await fetch(`${srv.url}/ui/assets/console.css`, { headers: bearer(T.read) })).text();
    for (const token of [undefined, T.read, T.write, T.other]) {
      const headers = token ? bearer(token) : {};
      const ui = await fetch(`${srv.url}/ui`, { headers, redirect: 'manual' });
      assert.equal(ui.status, 301, String(token));
      assert.equal(ui.headers.get('location'), '/ui/');
      await ui.arrayBuffer();
      const root = await fetch(`${srv.url}/`, {
        headers: { ...headers, accept: 'text/html' },
        redirect: 'manual',
      });
      assert.equal(root.status, 302, String(token));
      await root.arrayBuffer();
      const asset = await fetch(`${srv.url}/ui/assets/console.css`, { headers });
      assert.equal(asset.status, 200, String(token));
      assert.equal(await asset.text(), css);
      // The sign-in form is public too: every caller gets the form, none a page of data.
      const form = await fetch(`${srv.url}/ui/sign-in`, { headers });
      assert.equal(form.status, 200, String(token));
      assert.match(await form.text(), /type="password"/);
    }
  });

  it('/ sends browsers to the console, other clients get a 404', async () => {
    const html = await fetch(`${srv.url}/`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    assert.equal(html.status, 302);
    assert.equal(html.headers.get('location'), '/ui/');
    await html.arrayBuffer();
    const other = await fetch(`${srv.url}/`, { headers: { accept: 'application/json' } });
    assert.equal(other.status, 404);
    await other.arrayBuffer();
  });
});

describe('web console: --public-read and loopback-only servers', () => {
  it('--public-read opens it without a token', async () => {
    const { srv, dir } = await authServer({ publicRead: true });
    try {
      for (const path of ['/ui/', '/v1/status', '/ui/refs']) {
        const res = await fetch(srv.url + path);
        assert.equal(res.status, 200, path);
        await res.arrayBuffer();
      }
    } finally {
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('without a tokens file: loopback clients only, and sign-in says so', async () => {
    const srv = await startTestServer({}, { features });
    try {
      const local = await fetch(`${srv.url}/ui/`);
      assert.equal(local.status, 200);
      await local.arrayBuffer();
      for (const url of ['/ui/', '/v1/status', '/ui/refs']) {
        const remote = await srv.server.app.inject({ method: 'GET', url, remoteAddress: '192.0.2.7' });
        assert.equal(remote.statusCode, 403, url);
      }
      const signIn = await (await fetch(`${srv.url}/ui/sign-in`)).text();
      assert.match(signIn, /accepts local clients only/);
      assert.doesNotMatch(signIn, /type="password"/);
    } finally {
      await srv.close();
    }
  });
});
