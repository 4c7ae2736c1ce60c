// The web console in a real headless Chromium (Debian's package, driven by
// puppeteer-core) against a real `hoard serve` with git mirrors, a synced
// folder with history, cache entries and blob traffic (fixture.ts): sign-in
// (a wrong token refused), every page loading without console errors and
// showing the numbers /v1/status reports, navigation between refs, versions
// and folders, downloads, and hostile names rendered as text. Screenshots
// go to tmp/console-screenshots/ (ignored by git) as artifacts of the run.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'puppeteer-core';
import { chromiumPath, launchChromium } from '../../support/chromium.ts';
import { waitUntil } from '../../support/wait.ts';
import {
  bearer,
  type ConsoleFixture,
  SYNC_REF,
  startConsoleFixture,
  TOKENS,
  TURBO_HASH,
  XSS,
} from './fixture.ts';

const SHOTS = join(import.meta.dirname, '..', '..', '..', 'tmp', 'console-screenshots');
const skip = chromiumPath() ? false : 'chromium is not installed (bash scripts/clients.sh installs it)';

interface Status {
  tiers: Record<'memory' | 'disk', { bytes: number; blobs: number; hits: number; misses: number }>;
  features: { name: string; requests: number; hits: number; misses: number }[];
  upstreams: { git: { mirrors: number; fresh: number; stale: number; failing: number } };
}

describe('web console in headless Chromium', { skip }, () => {
  let fx: ConsoleFixture;
  let browser: Browser;
  let page: Page;
  /** Console errors, failed requests and uncaught exceptions of the page since the last check. */
  let problems: string[] = [];

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    fx = await startConsoleFixture();
    browser = await launchChromium();
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  });
  after(async () => {
    await browser?.close();
    await fx?.stop();
  });

  const field = (name: string, scope = 'body') =>
    page.$eval(`${scope} [data-field="${name}"]`, (e) => (e as HTMLElement).dataset.value ?? e.textContent);
  const noProblems = (where: string) => {
    assert.deepEqual(problems, [], `${where}: ${problems.join('\n')}`);
    problems = [];
  };
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const noScriptRan = async (where: string) => {
    assert.equal(
      await page.evaluate(() => (window as unknown as { __xss?: number }).__xss),
      undefined,
      where,
    );
    assert.equal(await page.$$eval('main img', (els) => els.length), 0, `${where}: an <img> was created`);
  };
  async function status(): Promise<Status> {
    return (await (await fetch(`${fx.url}/v1/status`, { headers: bearer(TOKENS.read) })).json()) as Status;
  }
  async function click(selector: string) {
    await Promise.all([page.waitForNavigation(), page.click(selector)]);
  }

  it('sign-in: no session goes to the form, a wrong token is refused, a read token signs in', async () => {
    await page.goto(`${fx.url}/ui/git`);
    assert.equal(new URL(page.url()).pathname, '/ui/sign-in');
    await shot('sign-in');
    await page.type('input[name="token"]', 'not-the-token');
    const [refused] = await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(refused?.status(), 401);
    assert.match((await field('sign-in-error')) ?? '', /not valid/);
    assert.equal(
      (await page.cookies()).find((c) => c.name === 'hoard_session'),
      undefined,
    );
    // The 401 of the refused form is the one console error the browser reports here.
    problems = problems.filter((p) => !/status of 401/.test(p));
    noProblems('refused sign-in');
    await page.type('input[name="token"]', TOKENS.read);
    await click('button[type="submit"]');
    assert.equal(new URL(page.url()).pathname, '/ui/git', 'back where it was going');
    const session = (await page.cookies()).find((c) => c.name === 'hoard_session');
    assert.ok(session?.httpOnly && session.sameSite === 'Strict');
    assert.ok(!session.value.includes(TOKENS.read));
    assert.ok(!(await page.content()).includes(TOKENS.read), 'no token in the page');
    noProblems('sign-in');
  });

  it('overview: tiers, traffic per feature and upstream health as /v1/status says; charts drawn', async () => {
    // At least two samples so the charts have lines.
    await page.goto(`${fx.url}/ui/`);
    await waitUntil(
      async () =>
        (await (await fetch(`${fx.url}/v1/status`, { headers: bearer(TOKENS.read) })).json()).series.points
          .length >= 3,
      'three samples',
    );
    await page.goto(`${fx.url}/ui/`);
    const s = await status();
    for (const tier of ['memory', 'disk'] as const)
      for (const k of ['bytes', 'blobs', 'hits', 'misses'] as const)
        assert.equal(Number(await field(`${tier}-${k}`)), s.tiers[tier][k], `${tier} ${k}`);
    for (const f of s.features)
      for (const k of ['requests', 'hits', 'misses'] as const)
        assert.equal(Number(await field(`${f.name}-${k}`)), f[k], `${f.name} ${k}`);
    // Every front-end of the composition root is listed, traffic or not.
    for (const name of [
      'blobs',
      'refs',
      'git',
      'snapshots',
      'bazel',
      'ccache',
      'gradle',
      'nx',
      'npm',
      'turbo',
    ])
      assert.ok(await page.$(`tr[data-feature="${name}"]`), `${name} listed`);
    assert.equal(Number(await field('bazel-requests')), 0);
    assert.equal(Number(await field('npm-stale-serves')), 0);
    const turbo = s.features.find((f) => f.name === 'turbo');
    assert.deepEqual([turbo?.hits, turbo?.misses], [2, 1], 'two artifact reads, one miss');
    const blobs = s.features.find((f) => f.name === 'blobs')!;
    assert.ok(blobs.hits >= 16 && blobs.misses >= 1);
    assert.equal(Number(await field('mirrors')), 3);
    assert.equal(Number(await field('mirrors-failing')), 1);
    assert.ok(Number(await field('disk-blobs')) >= 10);
    const points = Number(await page.$eval('.charts', (e) => (e as HTMLElement).dataset.points));
    assert.ok(points >= 2, `${points} points`);
    const lines = await page.$$eval('#chart-rps path.line', (ps) => ps.map((p) => p.getAttribute('d') ?? ''));
    assert.ok(
      lines.some((d) => d.includes('L')),
      'a drawn line',
    );
    await shot('overview');
    noProblems('overview');
  });

  it('git: each mirror with clones served, freshness, errors and its latest snapshot', async () => {
    await click('nav a[href="/ui/git"]');
    const row = (key: string) => `tr[data-mirror="${key}"]`;
    assert.equal(Number(await field('clones-served', row('up/app'))), 2);
    assert.equal(Number(await field('clones-served', row('up/lib'))), 1);
    assert.ok(Number(await field('size', row('up/app'))) > 0);
    const snap = await page.$eval(`${row('up/app')} [data-field="snapshot-url"]`, (a) =>
      a.getAttribute('href'),
    );
    assert.match(snap ?? '', /^\/v1\/blobs\/sha256\/[0-9a-f]{64}$/);
    const api = await fetch(fx.url + snap, { headers: bearer(TOKENS.read) });
    assert.equal(api.status, 200, 'the snapshot link is the blob API');
    await api.arrayBuffer();
    assert.match((await field('last-error', row('up/missing'))) ?? '', /last error/);
    await shot('git');
    noProblems('git');
  });

  it('refs: browse, open a sync ref, walk versions and folders, download a file; hostile names stay text', async () => {
    await click('nav a[href="/ui/refs"]');
    const names = await page.$$eval('tr[data-ref]', (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.ref),
    );
    assert.ok(names.includes(SYNC_REF));
    assert.ok(names.some((n) => n?.startsWith('cache/turbo/')));
    assert.ok(names.some((n) => n?.startsWith('git-snapshots/up/app/')));
    await click(`tr[data-ref="${SYNC_REF}"] a.ref`);
    // History: three versions, newest first; the current one marked.
    const versions = await page.$$eval('tr[data-version]', (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.version),
    );
    assert.equal(versions.length, 3);
    assert.equal(
      await page.$eval('tr[aria-current="true"]', (r) => (r as HTMLElement).dataset.version),
      versions[0],
    );
    assert.equal(await field('message'), fx.messages[2]);
    const historyText = await page.$eval('.history', (e) => e.textContent ?? '');
    assert.ok(historyText.includes(fx.messages[1]), 'the markup message is shown as text');
    await noScriptRan('ref page');
    const root = await page.$$eval('tr[data-entry]', (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.entry),
    );
    assert.deepEqual(root, ['src', 'README.md']);

    // Into src/: the file named with markup is listed by its literal name.
    await click('tr[data-entry="src"] a.dir');
    assert.equal(await page.$eval('[data-field="path"]', (e) => (e as HTMLElement).dataset.value), 'src');
    const src = await page.$$eval('tr[data-entry]', (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.entry),
    );
    assert.deepEqual(src.sort(), [`${XSS}.txt`, 'main.ts', 'util.ts'].sort());
    const cell = await page.$$eval('tr[data-entry] td:first-child', (tds) => tds.map((t) => t.textContent));
    assert.ok(cell.includes(`${XSS}.txt`));
    await noScriptRan('folder with a hostile file name');
    // The download link streams the file's bytes.
    const href = await page.$eval('tr[data-entry="main.ts"] a.download', (a) => a.getAttribute('href'));
    const text = await page.evaluate(async (h) => (await fetch(h as string)).text(), href);
    assert.equal(text, 'console.log("v2");\n');
    await shot('ref-folder');

    // The oldest version: its own tree (first-only.txt), back at the root.
    await click(`tr[data-version="${versions[2]}"] a.version`);
    assert.equal(
      await page.$eval('tr[aria-current="true"]', (r) => (r as HTMLElement).dataset.version),
      versions[2],
    );
    const oldRoot = await page.$$eval('tr[data-entry]', (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.entry),
    );
    assert.deepEqual(
      oldRoot,
      ['src', 'README.md', 'first-only.txt'].sort((a, b) =>
        a === 'src' ? -1 : b === 'src' ? 1 : a < b ? -1 : 1,
      ),
    );
    assert.equal(await field('message'), fx.messages[0]);
    // …and the older version's src/ has only main.ts.
    await click('tr[data-entry="src"] a.dir');
    assert.deepEqual(
      await page.$$eval('tr[data-entry]', (rows) => rows.map((r) => (r as HTMLElement).dataset.entry)),
      ['main.ts'],
    );
    const oldMain = await page.$eval('tr[data-entry="main.ts"] a.download', (a) => a.getAttribute('href'));
    assert.equal(
      await page.evaluate(async (h) => (await fetch(h as string)).text(), oldMain),
      'console.log("v1");\n',
    );
    await shot('ref-version');
    noProblems('refs');
  });

  it('a cache ref shows its key, size, last access and expiry', async () => {
    await page.goto(`${fx.url}/ui/refs?prefix=cache/`);
    const refs = await page.$$eval('tr[data-ref]', (rows) => rows.map((r) => (r as HTMLElement).dataset.ref));
    assert.deepEqual(refs.length, 1);
    await click('tr[data-ref] a.ref');
    assert.equal(await field('key'), TURBO_HASH);
    assert.equal(Number(await field('size')), 'turbo artifact bytes'.length);
    const access = await page.$eval('[data-field="last-access"] time', (t) => t.getAttribute('datetime'));
    const expires = await page.$eval('[data-field="expires"] time', (t) => t.getAttribute('datetime'));
    assert.equal(Date.parse(expires ?? '') - Date.parse(access ?? ''), 168 * 3600_000);
    noProblems('cache ref');
  });

  it('hostile names in the URL render as text', async () => {
    const res = await page.goto(`${fx.url}/ui/ref?name=${encodeURIComponent(XSS)}`);
    assert.equal(res?.status(), 400);
    assert.ok(((await field('error')) ?? '').includes('<img src=x onerror='), 'the name, as text');
    await noScriptRan('error page');
    problems = problems.filter((p) => !/status of 400/.test(p));
    await page.goto(`${fx.url}/ui/refs?prefix=${encodeURIComponent(`team/${XSS}`)}`);
    await noScriptRan('refs error page');
    problems = problems.filter((p) => !/status of 400/.test(p));
    noProblems('hostile names');
  });

  it('blobs: the most-read and the largest, and a digest lookup', async () => {
    await page.goto(`${fx.url}/ui/blobs`);
    const mostRead = await page.$$eval('[data-field="most-read"] tr[data-digest]', (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.digest),
    );
    // Listed (the console's own reads of records and trees count too, so not necessarily first).
    assert.ok(mostRead.includes(fx.blobs[0]), 'the blob read 16 times is listed');
    assert.ok(Number(await field('reads', `tr[data-digest="${fx.blobs[0]}"]`)) >= 16);
    const largest = await page.$$eval('[data-field="largest-disk"] tr[data-digest]', (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.digest),
    );
    assert.deepEqual(largest.slice(0, 2), [fx.blobs[0], fx.blobs[1]]);
    await page.type('input[name="digest"]', fx.blobs[1]);
    await click('form.inline button');
    assert.equal(Number(await field('lookup-size')), 20_000);
    assert.equal(await field('on-disk'), 'yes');
    await shot('blobs');
    noProblems('blobs');
  });

  it('sign-out ends the session', async () => {
    await page.goto(`${fx.url}/ui/`);
    await click('form.sign-out button');
    assert.equal(new URL(page.url()).pathname, '/ui/sign-in');
    await page.goto(`${fx.url}/ui/blobs`);
    assert.equal(new URL(page.url()).pathname, '/ui/sign-in');
    noProblems('sign-out');
  });
});
