// Real npm and pnpm (pinned) against hoard's npm registry cache, with a real
// upstream registry: verdaccio (pinned) on loopback, fixture packages
// published into it by `npm publish`, behind counting proxies. One verdaccio
// and one install of the clients serve the whole file.
//
// Covers: a lockfile project (plain, scoped and per-scope-upstream packages)
// installs through hoard exactly as directly; 20 concurrent installs with
// empty client stores cost one upstream request per distinct tarball; a
// warm hoard installs alone once the upstream is killed (stale documents
// flagged).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { npmFeature } from '../../../src/features/npm/npm-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { writeTokensFile } from '../../support/tokens.ts';
import {
  type CountingProxy,
  clientEnv,
  countingProxy,
  installRegistryClients,
  publish,
  type RegistryClients,
  startVerdaccio,
  type Verdaccio,
} from './registry-fixture.ts';

const run = promisify(execFile);
const TOKEN = 'npm-ci-secret';
const PUBLISH_TOKEN = 'npm-publish-secret';

const DEPS = { 'fx-a': '1.0.0', '@fx/scoped': '1.0.0', '@other/thing': '1.0.0' };
/** Distinct tarballs of the project: fx-a, fx-b, @fx/scoped, @other/thing. */
const DISTINCT_TARBALLS = 4;

describe('npm and pnpm (real clients) through hoard, verdaccio upstream', () => {
  let clients: RegistryClients;
  let dir: string;
  let verdaccio: Verdaccio;
  let proxy: CountingProxy;
  let scopeProxy: CountingProxy;
  let tokens: string;
  const servers: TestServer[] = [];

  const hoard = async (settings: Record<string, unknown> = {}) => {
    const srv = await startTestServer(
      { tokens },
      {
        features: [
          withSettings(apiFeature),
          withSettings(npmFeature, {
            upstream: `${proxy.url}/`,
            scopeUpstreams: { '@other': `${scopeProxy.url}/` },
            ...settings,
          }),
        ],
      },
    );
    servers.push(srv);
    return srv;
  };

  before(async () => {
    clients = await installRegistryClients();
    dir = await mkdtemp(join(tmpdir(), 'hoard-npm-client-'));
    tokens = await writeTokensFile(dir, [
      { name: 'ci', token: TOKEN, scopes: ['read'] },
      { name: 'publisher', token: PUBLISH_TOKEN, scopes: ['read', 'write'], refs: ['cache/npm/'] },
    ]);
    verdaccio = await startVerdaccio(clients.verdaccio, join(dir, 'verdaccio'));
    const pkg = (name: string, dependencies: Record<string, string> = {}) => ({
      'package.json': { name, version: '1.0.0', main: 'index.js', dependencies },
      'index.js': `module.exports = ${JSON.stringify(name)};\n`,
    });
    await publish(verdaccio, join(dir, 'pub', 'b'), pkg('fx-b'));
    await publish(verdaccio, join(dir, 'pub', 'a'), pkg('fx-a', { 'fx-b': '^1.0.0' }));
    await publish(verdaccio, join(dir, 'pub', 's'), pkg('@fx/scoped', { 'fx-b': '^1.0.0' }));
    await publish(verdaccio, join(dir, 'pub', 'o'), pkg('@other/thing'));
    proxy = await countingProxy(verdaccio.url);
    scopeProxy = await countingProxy(verdaccio.url);
  });
  after(async () => {
    for (const s of servers) await s.close();
    await proxy?.close();
    await scopeProxy?.close();
    await verdaccio?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A fresh project dir (package.json, optional lockfile) whose client config points at `registry`. */
  let n = 0;
  const project = async (
    registry: string,
    token: string | undefined,
    lock?: { file: string; text: string },
  ) => {
    const p = join(dir, `p${n++}`);
    await mkdir(p, { recursive: true });
    await writeFile(
      join(p, 'package.json'),
      JSON.stringify({ name: 'proj', version: '1.0.0', dependencies: DEPS }),
    );
    const host = registry.replace(/^http:/, '');
    await writeFile(
      join(p, '.npmrc'),
      `registry=${registry}\n${token ? `${host}:_authToken=${token}\n` : ''}@other:registry=${registry}\n`,
    );
    // pnpm 12 refuses versions younger than a day by default; the fixtures are minutes old.
    await writeFile(join(p, 'pnpm-workspace.yaml'), 'minimumReleaseAge: 0\n');
    if (lock) await writeFile(join(p, lock.file), lock.text);
    return p;
  };
  const npm = (p: string, ...args: string[]) =>
    run(clients.npm, args, { cwd: p, env: clientEnv(p), timeout: 180_000, maxBuffer: 16 << 20 });
  const pnpm = (p: string, ...args: string[]) =>
    run(clients.pnpm, [...args, '--store-dir', join(p, '.pnpm-store')], {
      cwd: p,
      env: clientEnv(p),
      timeout: 180_000,
      maxBuffer: 16 << 20,
    });

  /** name@version of every installed package (npm's nested layout). */
  const tree = async (p: string): Promise<string[]> => {
    const out: string[] = [];
    const walk = async (nm: string, prefix: string) => {
      for (const e of await readdir(nm).catch(() => [] as string[])) {
        if (e.startsWith('.')) continue;
        if (e.startsWith('@')) {
          for (const s of await readdir(join(nm, e))) await visit(join(nm, e, s), `${prefix}${e}/${s}`);
        } else await visit(join(nm, e), `${prefix}${e}`);
      }
    };
    const visit = async (pkgDir: string, label: string) => {
      const pj = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
      out.push(`${label}@${pj.version}:${await readFile(join(pkgDir, 'index.js'), 'utf8')}`);
      await walk(join(pkgDir, 'node_modules'), `${label}>`);
    };
    await walk(join(p, 'node_modules'), '');
    return out.sort();
  };
  /** version + integrity of every package of an npm lockfile (`resolved` names the registry, so it differs). */
  const npmLockIntegrity = (text: string) =>
    Object.fromEntries(
      Object.entries(JSON.parse(text).packages as Record<string, { version?: string; integrity?: string }>)
        .filter(([k]) => k !== '')
        .map(([k, v]) => [k, `${v.version} ${v.integrity}`]),
    );
  const portableNpmLock = (text: string) => {
    const lock = JSON.parse(text);
    for (const v of Object.values(lock.packages as Record<string, { resolved?: string }>)) delete v.resolved;
    return JSON.stringify(lock, null, 2);
  };

  let directNpmLock: string;
  let directPnpmLock: string;
  let directTree: string[];

  it('npm: a lockfile project installs through hoard as it does directly', async () => {
    const direct = await project(`${verdaccio.url}/`, undefined);
    await npm(direct, 'install');
    directNpmLock = await readFile(join(direct, 'package-lock.json'), 'utf8');
    directTree = await tree(direct);
    assert.equal(directTree.length, 4, directTree.join('\n'));

    const srv = await hoard();
    const via = await project(`${srv.url}/npm/`, TOKEN, {
      file: 'package-lock.json',
      text: portableNpmLock(directNpmLock),
    });
    await npm(via, 'ci');
    assert.deepEqual(await tree(via), directTree);
    // Through hoard from scratch: the lockfile it writes has the same versions and integrity.
    const fresh = await project(`${srv.url}/npm/`, TOKEN);
    await npm(fresh, 'install');
    const lock = await readFile(join(fresh, 'package-lock.json'), 'utf8');
    assert.deepEqual(npmLockIntegrity(lock), npmLockIntegrity(directNpmLock));
    assert.match(lock, new RegExp(`${srv.url}/npm/fx-a/-/fx-a-1.0.0.tgz`), 'resolved points at hoard');
    // The per-scope upstream served @other, the default one the rest.
    assert.ok([...scopeProxy.counts.keys()].some((k) => k.includes('thing')));
    assert.ok(![...proxy.counts.keys()].some((k) => k.includes('@other') || k.includes('thing-1.0.0')));
  });

  it('pnpm: a lockfile project installs through hoard as it does directly', async () => {
    const direct = await project(`${verdaccio.url}/`, undefined);
    await pnpm(direct, 'install');
    directPnpmLock = await readFile(join(direct, 'pnpm-lock.yaml'), 'utf8');
    const srv = await hoard();
    const via = await project(`${srv.url}/npm/`, TOKEN, { file: 'pnpm-lock.yaml', text: directPnpmLock });
    await pnpm(via, 'install', '--frozen-lockfile');
    assert.equal(await readFile(join(via, 'pnpm-lock.yaml'), 'utf8'), directPnpmLock);
    assert.deepEqual(
      (await readdir(join(via, 'node_modules', '.pnpm')))
        .filter((e) => !e.startsWith('.') && e !== 'node_modules')
        .sort(),
      (await readdir(join(direct, 'node_modules', '.pnpm')))
        .filter((e) => !e.startsWith('.') && e !== 'node_modules')
        .sort(),
    );
    assert.equal(
      await readFile(join(via, 'node_modules', '@fx', 'scoped', 'index.js'), 'utf8'),
      'module.exports = "@fx/scoped";\n',
    );
  });

  it('publish, dist-tag and deprecate through hoard (allow-write-through): the next install or view through hoard sees them at once', async () => {
    await publish(verdaccio, join(dir, 'pub', 'w1'), {
      'package.json': { name: 'fx-pub', version: '1.0.0', main: 'index.js' },
      'index.js': 'module.exports = 1;\n',
    });
    // The default freshness bound (5 minutes): without read-your-writes the documents cached
    // below would be served as they are until it ran out.
    const srv = await hoard({
      allowWriteThrough: true,
      upstreamTokens: { [`${proxy.url}/`]: verdaccio.token, [`${scopeProxy.url}/`]: verdaccio.token },
    });
    const reg = `${srv.url}/npm/`;
    const view = async (p: string, spec: string, field: string) =>
      (await npm(p, 'view', spec, field, '--json')).stdout.trim();
    // Both forms of fx-pub's document cached: the full one (view) and the abbreviated one (install).
    const warm = await project(reg, PUBLISH_TOKEN);
    assert.equal(await view(warm, 'fx-pub@latest', 'version'), '"1.0.0"');
    await npm(warm, 'install', '--no-save', 'fx-pub@1.0.0');

    // 2.0.0 published through hoard; the scoped package from the other upstream tagged through it.
    const pub = await project(reg, PUBLISH_TOKEN);
    await writeFile(
      join(pub, 'package.json'),
      JSON.stringify({ name: 'fx-pub', version: '2.0.0', main: 'index.js' }),
    );
    await writeFile(join(pub, 'index.js'), 'module.exports = 2;\n');
    await npm(pub, 'publish');
    scopeProxy.reset();
    await npm(pub, 'dist-tag', 'add', '@other/thing@1.0.0', 'beta');
    assert.ok(
      [...scopeProxy.counts.keys()].some((k) => k.includes('dist-tags')),
      "the scope's write went to the scope's upstream",
    );

    const fresh = await project(reg, PUBLISH_TOKEN);
    await npm(fresh, 'install', '--no-save', 'fx-pub@2.0.0');
    assert.equal(
      await readFile(join(fresh, 'node_modules', 'fx-pub', 'index.js'), 'utf8'),
      'module.exports = 2;\n',
    );
    assert.equal(await view(fresh, 'fx-pub@latest', 'version'), '"2.0.0"');
    assert.equal(await view(fresh, '@other/thing@beta', 'version'), '"1.0.0"');
    // A deprecation (npm reads the document with ?write=true, then writes it back) is seen too.
    await npm(pub, 'deprecate', 'fx-pub@1.0.0', 'use 2');
    assert.equal(await view(fresh, 'fx-pub@1.0.0', 'deprecated'), '"use 2"');
  });

  it('20 concurrent installs with empty client stores fetch each distinct tarball once upstream; then hoard alone serves', async () => {
    const srv = await hoard({ maxStalenessMs: 0 });
    proxy.reset();
    scopeProxy.reset();
    const installs = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        if (i % 2 === 0) {
          const p = await project(`${srv.url}/npm/`, TOKEN, {
            file: 'package-lock.json',
            text: portableNpmLock(directNpmLock),
          });
          return npm(p, 'ci').then(() => p);
        }
        const p = await project(`${srv.url}/npm/`, TOKEN, { file: 'pnpm-lock.yaml', text: directPnpmLock });
        return pnpm(p, 'install', '--frozen-lockfile').then(() => p);
      }),
    );
    for (const p of installs.filter((_, i) => i % 2 === 0)) assert.deepEqual(await tree(p), directTree);
    const tarballs = [...proxy.counts, ...scopeProxy.counts].filter(([k]) => k.endsWith('.tgz'));
    assert.equal(tarballs.length, DISTINCT_TARBALLS, JSON.stringify(tarballs));
    for (const [path, count] of tarballs) assert.equal(count, 1, `${path} fetched ${count} times upstream`);

    // The upstream is killed: a clean client store installs from hoard alone (documents served stale, flagged).
    await verdaccio.stop();
    const p = await project(`${srv.url}/npm/`, TOKEN, {
      file: 'package-lock.json',
      text: portableNpmLock(directNpmLock),
    });
    await npm(p, 'ci');
    assert.deepEqual(await tree(p), directTree);
    const q = await project(`${srv.url}/npm/`, TOKEN, { file: 'pnpm-lock.yaml', text: directPnpmLock });
    await pnpm(q, 'install', '--frozen-lockfile');
    const doc = await fetch(`${srv.url}/npm/fx-a`, {
      headers: { authorization: `Bearer ${TOKEN}`, accept: 'application/vnd.npm.install-v1+json' },
    });
    assert.equal(doc.status, 200);
    assert.match(doc.headers.get('warning') ?? '', /^110 /);
    const metrics = await (
      await fetch(`${srv.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).text();
    assert.match(metrics, /hoard_npm_stale_serves_total [1-9]/);
  });
});
