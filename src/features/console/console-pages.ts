// The console's pages, rendered on the server from the same objects
// /v1/status… returns (console-data.ts, console-views.ts). Every value goes through html``
// (escaped); numbers also travel as data-value attributes so tests and
// scripts can read them from the DOM without parsing "1.2 MiB".

import { formatBytes as bytes } from '../../core/format-bytes.ts';
import { lineChart } from './console-chart.ts';
import { REFS_PAGE_DEFAULT } from './console-refs.ts';
import type { BlobsView, FolderEntry, MirrorReport, Overview, RefPage, RefView } from './console-views.ts';
import { type Html, href, html } from './html.ts';

export type Tab = 'overview' | 'git' | 'refs' | 'blobs';

export interface Chrome {
  /** Present when signed in through the form: the sign-out button's CSRF token. */
  signOutCsrf?: string;
  version: string;
}

export function formatBytes(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : bytes(n);
}

export function formatPercent(r: number | null | undefined): string {
  return r === null || r === undefined ? '–' : `${(r * 100).toFixed(1)}%`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.round(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

const rate = (v: number | null) => (v === null ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(0));

function num(field: string, value: number | null | undefined, text: string): Html {
  return html`<span data-field="${field}" data-value="${value ?? ''}">${text}</span>`;
}

function time(isoText: string | null | undefined): Html {
  return isoText ? html`<time datetime="${isoText}">${isoText}</time>` : html`–`;
}

const short = (digest: string) => `${digest.slice(0, 'sha256:'.length + 12)}…`;

export function layout(tab: Tab | 'sign-in' | 'error', title: string, chrome: Chrome, body: Html): string {
  const nav: [Tab, string, string][] = [
    ['overview', 'Overview', '/ui/'],
    ['git', 'Git', '/ui/git'],
    ['refs', 'Refs', '/ui/refs'],
    ['blobs', 'Blobs', '/ui/blobs'],
  ];
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · hoard</title>
<link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/assets/console.css">
<script src="/ui/assets/console.js" defer></script>
</head>
<body data-page="${tab}">
<header>
  <a class="brand" href="/ui/">hoard</a>
  <nav>${nav.map(([t, label, url]) => html`<a href="${url}"${t === tab ? html` aria-current="page"` : ''}>${label}</a>`)}</nav>
  <span class="app-version">v${chrome.version}</span>
  ${
    chrome.signOutCsrf
      ? html`<form method="post" action="/ui/sign-out" class="sign-out"><input type="hidden" name="csrf" value="${chrome.signOutCsrf}"><button type="submit">Sign out</button></form>`
      : ''
  }
</header>
<main>
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`.value;
}

// ---- overview -------------------------------------------------------------------

export function overviewPage(o: Overview): Html {
  const t = o.tiers;
  const tierRow = (name: string, r: Overview['tiers']['memory']) => html`<tr data-tier="${name}">
    <th>${name}</th>
    <td>${num(`${name}-bytes`, r.bytes, formatBytes(r.bytes))}${r.maxBytes ? html` of ${num(`${name}-max`, r.maxBytes, formatBytes(r.maxBytes))}` : ''}${r.maxBytes ? html` <meter min="0" max="${r.maxBytes}" value="${r.bytes}"></meter>` : ''}</td>
    <td>${num(`${name}-blobs`, r.blobs, String(r.blobs))}${r.truncated ? '+' : ''}</td>
    <td>${num(`${name}-evictions`, r.evictions, String(r.evictions))}</td>
    <td>${num(`${name}-hits`, r.hits, String(r.hits))} / ${num(`${name}-misses`, r.misses, String(r.misses))}</td>
  </tr>`;
  const points = thin(o.series.points, 360);
  const times = points.map((p) => p.at);
  // The charts draw the busiest features of the hour (at most six, one colour each); the table lists all.
  const traffic = (n: string) => points.reduce((sum, p) => sum + (p.features[n]?.requestsPerSecond ?? 0), 0);
  const names = o.features
    .map((f) => f.name)
    .filter((n) => traffic(n) > 0)
    .sort((a, b) => traffic(b) - traffic(a) || a.localeCompare(b))
    .slice(0, 6);
  const git = o.upstreams.git;
  return html`<section class="facts">
  <div><span class="label">Version</span> ${num('version', null, o.version)}</div>
  <div><span class="label">Up</span> ${num('uptime', o.uptimeSeconds, formatDuration(o.uptimeSeconds))} (since ${time(o.startedAt)})</div>
  ${
    git
      ? html`<div><span class="label">Git mirrors</span> ${num('mirrors', git.mirrors, String(git.mirrors))}: ${num('mirrors-fresh', git.fresh, String(git.fresh))} fresh, ${num('mirrors-stale', git.stale, String(git.stale))} stale${git.failing ? html`, <strong class="bad">${num('mirrors-failing', git.failing, String(git.failing))} failing</strong>` : ''}</div>`
      : ''
  }
  ${
    o.upstreams.npm
      ? html`<div><span class="label">npm upstream</span> ${num('npm-stale-serves', o.upstreams.npm.staleServes, String(o.upstreams.npm.staleServes))} stale serves, ${num('npm-integrity-failures', o.upstreams.npm.integrityFailures, String(o.upstreams.npm.integrityFailures))} integrity failures</div>`
      : ''
  }
  <div><span class="label">Shared tier</span> ${t.shared ? html`<code data-field="shared">${t.shared.description}</code> (${num('shared-hits', t.shared.hits, String(t.shared.hits))} hits, ${num('shared-misses', t.shared.misses, String(t.shared.misses))} misses)` : html`<span data-field="shared">none</span>`}</div>
</section>
<h2>Tiers</h2>
<table class="tiers">
  <thead><tr><th>tier</th><th>used</th><th>blobs</th><th>evictions</th><th>hits / misses</th></tr></thead>
  <tbody>${tierRow('memory', t.memory)}${tierRow('disk', t.disk)}</tbody>
</table>
${t.disk.source === 'scan' ? html`<p class="note">The disk tier is unbounded (no <code>--max-disk</code>): its figures come from a periodic walk of the blobs directory${t.disk.truncated ? ', cut short' : ''}.</p>` : ''}
<h2>Traffic</h2>
<table class="features">
  <thead><tr><th>feature</th><th>requests</th><th>req/s (1 min)</th><th>hits</th><th>misses</th><th>hit rate</th></tr></thead>
  <tbody>${o.features.map(
    (f) => html`<tr data-feature="${f.name}">
    <th>${f.name}</th>
    <td>${num(`${f.name}-requests`, f.requests, String(f.requests))}</td>
    <td>${num(`${f.name}-rps`, f.requestsPerSecond, rate(f.requestsPerSecond))}</td>
    <td>${num(`${f.name}-hits`, f.hits, String(f.hits))}</td>
    <td>${num(`${f.name}-misses`, f.misses, String(f.misses))}</td>
    <td>${num(`${f.name}-hit-rate`, f.hitRate, formatPercent(f.hitRate))}</td>
  </tr>`,
  )}</tbody>
</table>
<p class="note">A hit is a read answered with content, a miss a read answered 404; for git, a ref advertisement from a fresh mirror (miss: served stale); for snapshots, one served without generating it.</p>
<h2>Last hour</h2>
<div class="charts" data-points="${points.length}">
${lineChart({
  title: 'Requests per second',
  id: 'chart-rps',
  times,
  series: names.map((n) => ({ name: n, values: points.map((p) => p.features[n]?.requestsPerSecond ?? 0) })),
  format: rate,
})}
${lineChart({
  title: 'Hit rate',
  id: 'chart-hit-rate',
  times,
  max: 1,
  series: names.map((n) => ({ name: n, values: points.map((p) => p.features[n]?.hitRate ?? null) })),
  format: (v) => formatPercent(v),
})}
${lineChart({
  title: 'Tier bytes',
  id: 'chart-bytes',
  times,
  series: [
    { name: 'memory', values: points.map((p) => p.memoryBytes) },
    { name: 'disk', values: points.map((p) => p.diskBytes) },
  ],
  format: formatBytes,
})}
</div>
<p class="note">Sampled every ${o.series.intervalSeconds} s, kept in memory for an hour. The same data as JSON: <a href="/v1/status">/v1/status</a>.</p>`;
}

/** At most `max` points for a chart: every k-th one (the JSON keeps them all). */
function thin<T>(points: T[], max: number): T[] {
  if (points.length <= max) return points;
  const k = Math.ceil(points.length / max);
  return points.filter((_, i) => (points.length - 1 - i) % k === 0);
}

// ---- git ------------------------------------------------------------------------

export function gitPage(g: { mirrors: MirrorReport[] } | null): Html {
  if (!g) return html`<p>The git proxy is not running on this server.</p>`;
  if (g.mirrors.length === 0)
    return html`<p data-field="no-mirrors">No mirrors yet: the first clone through <code>/git/&lt;host&gt;/&lt;path&gt;</code> creates one.</p>`;
  return html`<table class="mirrors">
<thead><tr><th>mirror</th><th>last fetch</th><th>freshness</th><th>stale serves</th><th>clones served</th><th>size</th><th>latest snapshot</th></tr></thead>
<tbody>${g.mirrors.map(
    (m) => html`<tr data-mirror="${m.key}">
  <th><div class="key">${m.key}</div><div class="upstream">${m.upstream ?? 'no upstream maps it any more'}</div>
    ${m.lastError ? html`<div class="error" data-field="last-error">last error ${time(m.lastError.at)}: ${m.lastError.message}</div>` : ''}</th>
  <td>${time(m.lastFetchAt)}</td>
  <td>${m.fresh ? html`<span class="good" data-field="fresh">fresh</span>` : html`<span class="bad" data-field="fresh">stale</span>`} ${m.ageSeconds === null ? '' : html`(${num('age', m.ageSeconds, formatDuration(m.ageSeconds))} of ${formatDuration(m.maxStalenessSeconds)})`}${m.fetching ? ' fetching…' : ''}</td>
  <td>${num('stale-serves', m.staleServes, String(m.staleServes))}</td>
  <td>${num('clones-served', m.clonesServed, String(m.clonesServed))}</td>
  <td>${num('size', m.sizeBytes, formatBytes(m.sizeBytes))}</td>
  <td>${
    m.snapshot
      ? html`<div><a href="${m.snapshot.url}" data-field="snapshot-url" download>${short(m.snapshot.digest)}</a> ${num('snapshot-size', m.snapshot.size, formatBytes(m.snapshot.size))}</div>
        <div>commit <code data-field="snapshot-commit">${m.snapshot.commit.slice(0, 12)}</code>, ${time(m.snapshot.generatedAt)}</div>
        <div class="url">stable URL <code>${m.snapshot.stableUrl}</code></div>`
      : '–'
  }</td>
</tr>`,
  )}</tbody>
</table>
<p class="note">Counts are this server's since it started. Snapshot downloads need a token like any API read.</p>`;
}

// ---- refs -----------------------------------------------------------------------

function breadcrumbs(prefix: string): Html {
  const parts = prefix.split('/').filter((s) => s !== '');
  const crumbs: Html[] = [html`<a href="/ui/refs">all refs</a>`];
  let acc = '';
  for (const p of parts) {
    acc += `${p}/`;
    crumbs.push(html` / <a href="${href('/ui/refs', { prefix: acc })}">${p}</a>`);
  }
  return html`<p class="crumbs">${crumbs}</p>`;
}

export function refsPage(p: RefPage): Html {
  return html`<form method="get" action="/ui/refs" class="inline">
  <label>Prefix <input type="text" name="prefix" value="${p.prefix}" placeholder="e.g. cache/ or team/"></label>
  <button type="submit">Browse</button>
</form>
${breadcrumbs(p.prefix)}
${
  p.refs.length === 0
    ? html`<p data-field="no-refs">No refs${p.prefix ? html` under <code>${p.prefix}</code>` : ''}.</p>`
    : html`<table class="refs"><thead><tr><th>ref</th><th>kind</th><th>target</th></tr></thead><tbody>${p.refs.map(
        (r) => html`<tr data-ref="${r.name}">
      <td><a class="ref" href="${href('/ui/ref', { name: r.name })}">${r.name}</a></td>
      <td><span class="kind ${r.kind}">${r.kind}</span></td>
      <td><code>${short(r.target)}</code></td></tr>`,
      )}</tbody></table>`
}
<p class="pager">${p.after ? html`<a href="${href('/ui/refs', { prefix: p.prefix })}">first page</a>` : ''}
${p.next ? html` <a rel="next" data-field="next" href="${href('/ui/refs', { prefix: p.prefix, after: p.next, limit: p.limit === REFS_PAGE_DEFAULT ? undefined : p.limit })}">next page →</a>` : ''}</p>`;
}

function folderRows(view: RefView, entries: FolderEntry[], version: string): Html {
  return html`${entries.map((e) => {
    if (e.kind === 'dir')
      return html`<tr data-entry="${e.name}" data-kind="dir"><td><a class="dir" href="${href('/ui/ref', { name: view.name, version, path: e.path })}">${e.name}/</a></td><td>${num('size', e.size, formatBytes(e.size))}</td><td>${e.files ?? 0} files</td></tr>`;
    if (e.kind === 'symlink')
      return html`<tr data-entry="${e.name}" data-kind="symlink"><td>${e.name} → <code>${e.target}</code></td><td>–</td><td>symlink</td></tr>`;
    const hex = e.digest?.slice('sha256:'.length) ?? '';
    return html`<tr data-entry="${e.name}" data-kind="${e.kind}"><td>${e.name}${e.kind === 'exec' ? html` <span class="kind">exec</span>` : ''}</td><td>${num('size', e.size, formatBytes(e.size))}</td><td><a class="download" href="${href(`/ui/file/sha256/${hex}`, { name: e.name })}">download</a></td></tr>`;
  })}`;
}

export function refPage(v: RefView, version: string): Html {
  const head = html`${breadcrumbs(v.name.includes('/') ? v.name.slice(0, v.name.lastIndexOf('/') + 1) : '')}
<p>Target <code data-field="target">${v.target}</code>, <span class="kind ${v.kind}" data-field="kind">${v.kind}</span></p>`;
  if (v.sync) {
    const s = v.sync;
    const crumbs: Html[] = [html`<a href="${href('/ui/ref', { name: v.name, version })}">/</a>`];
    let acc = '';
    for (const seg of s.path === '' ? [] : s.path.split('/')) {
      acc = acc ? `${acc}/${seg}` : seg;
      crumbs.push(html` <a href="${href('/ui/ref', { name: v.name, version, path: acc })}">${seg}</a> /`);
    }
    return html`${head}
<section class="version">
  <h2>Version <code data-field="version">${short(s.version.snapshot)}</code></h2>
  <p>${time(s.version.createdAt)}${s.version.user ? html` by ${s.version.user}` : ''}${s.version.host ? html` on ${s.version.host}` : ''}${s.version.message ? html`: <q data-field="message">${s.version.message}</q>` : ''}</p>
  <p class="crumbs" data-field="path" data-value="${s.path}">${crumbs}</p>
  <table class="folder"><thead><tr><th>name</th><th>size</th><th></th></tr></thead>
  <tbody>${folderRows(v, s.entries, version)}</tbody></table>
  ${s.truncated ? html`<p class="note">Only the first entries are shown.</p>` : ''}
</section>
<section class="history">
  <h2>History</h2>
  <table><thead><tr><th>version</th><th>when</th><th>files</th><th>size</th><th>changes</th><th>message</th></tr></thead>
  <tbody>${s.history.map(
    (
      e,
    ) => html`<tr data-version="${e.snapshot}"${e.snapshot === s.version.snapshot ? html` aria-current="true"` : ''}>
    <td><a class="version" href="${href('/ui/ref', { name: v.name, version: e.snapshot })}">${short(e.snapshot)}</a>${e.merge ? ' (merge)' : ''}</td>
    <td>${time(e.createdAt)}</td><td>${e.files}</td><td>${formatBytes(e.bytes)}</td>
    <td>+${e.changes.added} ~${e.changes.changed} −${e.changes.removed}</td>
    <td>${e.message ?? ''}</td></tr>`,
  )}</tbody></table>
  ${s.more ? html`<p class="note">Older versions are not listed here: <code>hoard log</code> lists them all.</p>` : ''}
</section>`;
  }
  if (v.cache) {
    const c = v.cache;
    const hex = c.blob.slice('sha256:'.length);
    return html`${head}
<table class="kv">
  <tr><th>key</th><td><code data-field="key">${v.name.slice(v.name.lastIndexOf('/') + 1)}</code></td></tr>
  <tr><th>content</th><td><a class="download" href="${href(`/ui/file/sha256/${hex}`, { name: v.name.slice(v.name.lastIndexOf('/') + 1) })}">${short(c.blob)}</a></td></tr>
  <tr><th>size</th><td>${num('size', c.size, formatBytes(c.size))}</td></tr>
  <tr><th>last access</th><td data-field="last-access">${time(c.lastUsedAt)}</td></tr>
  <tr><th>expires</th><td data-field="expires">${c.expiresAt ? time(c.expiresAt) : 'never (no --cache-ref-ttl, or not known yet)'}</td></tr>
  ${Object.entries(c.meta).map(([k, val]) => html`<tr><th>${k}</th><td><code>${val}</code></td></tr>`)}
</table>`;
  }
  const hex = v.target.slice('sha256:'.length);
  return html`${head}
<p>Size ${num('size', v.blob?.size, formatBytes(v.blob?.size))}. <a class="download" href="${href(`/ui/file/sha256/${hex}`, { name: v.name.slice(v.name.lastIndexOf('/') + 1) })}">download</a></p>`;
}

// ---- blobs ----------------------------------------------------------------------

function blobTable(rows: { digest: string; size: number | null; reads?: number }[], field: string): Html {
  if (rows.length === 0) return html`<p data-field="${field}-empty">None.</p>`;
  return html`<table class="blobs" data-field="${field}"><thead><tr><th>digest</th><th>size</th>${rows[0].reads !== undefined ? html`<th>reads (recent)</th>` : ''}</tr></thead><tbody>${rows.map(
    (r) =>
      html`<tr data-digest="${r.digest}"><td><a href="${href('/ui/blobs', { digest: r.digest })}"><code>${short(r.digest)}</code></a></td><td>${num('size', r.size, formatBytes(r.size))}</td>${r.reads !== undefined ? html`<td>${num('reads', r.reads, String(r.reads))}</td>` : ''}</tr>`,
  )}</tbody></table>`;
}

export function blobsPage(b: BlobsView, asked: string): Html {
  const l = b.lookup;
  return html`<form method="get" action="/ui/blobs" class="inline">
  <label>Digest <input type="text" name="digest" value="${asked}" size="72" placeholder="sha256:…"></label>
  <button type="submit">Look up</button>
</form>
${
  l
    ? html`<section class="lookup" data-field="lookup"><h2>${short(l.digest)}</h2>
  ${
    l.size === null
      ? html`<p class="bad" data-field="lookup-missing">Not stored on this server.</p>`
      : html`<p>${num('lookup-size', l.size, formatBytes(l.size))}; in memory: <b data-field="in-memory">${l.memory ? 'yes' : 'no'}</b>, on disk: <b data-field="on-disk">${l.disk ? 'yes' : 'no'}</b>${l.shared === null ? '' : html`, shared tier: <b>${l.shared ? 'yes' : 'no'}</b>`}.
      <a class="download" href="/ui/file/sha256/${l.digest.slice(7)}">download</a> · API: <code>/v1/blobs/sha256/${l.digest.slice(7)}</code></p>`
  }</section>`
    : ''
}
<h2>Most read</h2>
${blobTable(b.mostRead, 'most-read')}
<p class="note">One read in eight is sampled into a bounded table whose counts halve when it fills: a ranking of recent reads, estimated, not totals.</p>
<h2>Largest on disk</h2>
${blobTable(b.largest.disk, 'largest-disk')}
<h2>Largest in memory</h2>
${blobTable(b.largest.memory, 'largest-memory')}`;
}

// ---- sign-in and errors ---------------------------------------------------------

export function signInPage(opts: {
  csrf: string;
  next: string;
  error?: string;
  loopbackOnly: boolean;
}): Html {
  if (opts.loopbackOnly)
    return html`<p class="bad" data-field="loopback-only">This server has no tokens file: it accepts local clients only.</p>`;
  return html`<form method="post" action="/ui/sign-in" class="sign-in">
  ${opts.error ? html`<p class="bad" role="alert" data-field="sign-in-error">${opts.error}</p>` : ''}
  <input type="hidden" name="csrf" value="${opts.csrf}">
  <input type="hidden" name="next" value="${opts.next}">
  <label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
  <button type="submit">Sign in</button>
  <p class="note">A token with the read scope, as in the server's tokens file. The browser keeps a session cookie, never the token.</p>
</form>`;
}

export function errorPage(status: number, code: string, message: string): Html {
  return html`<p class="bad" data-field="error" data-code="${code}" data-status="${status}">${message}</p><p><a href="/ui/">Overview</a></p>`;
}
