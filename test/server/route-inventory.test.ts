// The route inventory: every route `hoard serve` registers is listed in the
// endpoint audit of docs/security.md (with the tests that cover its auth and
// bad input), the table lists no route that is gone, and every route
// declares its auth scope, and the tests it names exist. A new endpoint
// fails here until it is audited.
// Cheap: the server is built with every feature and closed, never listening.

import assert from 'node:assert/strict';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { SERVE_FEATURES, SERVE_SETTINGS } from '../../src/cli/serve-features.ts';
import { buildServer, type RegisteredRoute } from '../../src/server/app.ts';
import { loadLayers, serverConfigFrom } from '../../src/server/config.ts';

const DOC = resolve(import.meta.dirname, '../../docs/security.md');
const TEST = resolve(import.meta.dirname, '..');

/** The endpoint audit's table rows. */
async function auditRows(): Promise<string[]> {
  const doc = await readFile(DOC, 'utf8');
  const start = doc.indexOf('## Endpoint audit');
  assert.ok(start >= 0, 'docs/security.md has an "## Endpoint audit" section');
  const end = doc.indexOf('\n## ', start + 1);
  return doc
    .slice(start, end < 0 ? undefined : end)
    .split('\n')
    .filter((l) => l.startsWith('| `'));
}

/** `METHOD url` of every route listed in the endpoint audit's first column. */
async function auditedRoutes(): Promise<Set<string>> {
  const rows = await auditRows();
  const out = new Set<string>();
  for (const row of rows) {
    const first = row.split(' | ')[0];
    for (const m of first.matchAll(/`((?:[A-Z]+ )+)(\/[^`\s]*)`/g))
      for (const method of m[1].trim().split(' ')) out.add(`${method} ${m[2]}`);
  }
  return out;
}

/** `METHOD url` of every registered route; HEAD is implied by a GET of the URL (or of it without a trailing slash). */
function registered(routes: readonly RegisteredRoute[]): Set<string> {
  const all = new Set(routes.flatMap((r) => r.methods.map((m) => `${m} ${r.url}`)));
  const out = new Set<string>();
  for (const key of all) {
    const url = key.slice(key.indexOf(' ') + 1);
    if (key.startsWith('HEAD ') && (all.has(`GET ${url}`) || all.has(`GET ${url.replace(/(.)\/$/, '$1')}`)))
      continue;
    out.add(key);
  }
  return out;
}

test('every route of hoard serve is in the endpoint audit of docs/security.md, and declares its auth scope', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'hoard-routes-'));
  try {
    const layers = await loadLayers(
      SERVE_SETTINGS,
      { listen: '127.0.0.1:0', data: dataDir, logLevel: 'silent' },
      {},
    );
    const server = await buildServer(serverConfigFrom(layers), {
      logger: false,
      features: await Promise.all(SERVE_FEATURES.map((f) => f.use(layers))),
    });
    let routes: readonly RegisteredRoute[];
    try {
      routes = server.routes;
    } finally {
      await server.close();
    }
    const undeclared = routes.filter((r) => !['read', 'write', 'none'].includes(r.scope ?? ''));
    assert.deepEqual(
      undeclared.map((r) => `${r.methods.join(',')} ${r.url}`),
      [],
      'a route without config.scope is served to anyone: declare read, write, or none (the handler authorizes itself)',
    );
    const have = registered(routes);
    const listed = await auditedRoutes();
    assert.ok(have.size > 50, `the inventory saw ${have.size} routes: are the features running?`);
    assert.deepEqual(
      [...have].filter((r) => !listed.has(r)).sort(),
      [],
      'routes registered but not in the endpoint audit of docs/security.md: add them, with their auth and bad-input tests',
    );
    assert.deepEqual(
      [...listed].filter((r) => !have.has(r)).sort(),
      [],
      'routes in the endpoint audit of docs/security.md that the server no longer registers',
    );
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('every test the endpoint audit names exists (a row names `dir/name` for test/dir/name.test.ts)', async () => {
  const named = new Set<string>();
  for (const row of await auditRows()) {
    const cells = row.split(' | ');
    const last = cells[cells.length - 1].replace(/\s*\|\s*$/, '');
    for (const t of last.split(',')) named.add(t.trim());
  }
  assert.ok(named.size > 20, `only ${named.size} tests named`);
  const missing: string[] = [];
  for (const t of named) await access(join(TEST, `${t}.test.ts`)).catch(() => missing.push(t));
  assert.deepEqual(missing, [], 'tests named in the endpoint audit of docs/security.md that do not exist');
});

test('the audit parser reads method lists and ignores the other columns', async () => {
  const listed = await auditedRoutes();
  assert.ok(listed.has('GET /v1/refs/*') && listed.has('DELETE /v1/refs/*'));
  assert.ok(!listed.has('HOARD_EFORBIDDEN /x'));
});
