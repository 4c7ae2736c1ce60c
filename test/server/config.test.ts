// Server configuration: flags > HOARD_* env > config file > defaults.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { loadConfig, parseListen } from '../../src/server/config.ts';
import { checkingIntervalMs, resolveMaxConnections } from '../../src/server/connection-limits.ts';

describe('server configuration', () => {
  it('defaults: 127.0.0.1:7777, ./.hoard-data, no remote, loopback only', async () => {
    const c = await loadConfig({}, {});
    assert.equal(c.listen, '127.0.0.1:7777');
    assert.equal(c.dataDir, resolve('.hoard-data'));
    assert.equal(c.remote, undefined);
    assert.equal(c.tokensFile, undefined);
    assert.equal(c.maxBlobBytes, DEFAULTS.maxBlobBytes);
    assert.equal(c.maxMemoryBytes, DEFAULTS.memoryTierBytes);
  });

  it('flags > env > file > defaults (TOML and JSON, kebab and camel keys)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-cfg-'));
    try {
      const toml = join(dir, 'hoard.toml');
      await writeFile(
        toml,
        'listen = "0.0.0.0:1"\ndata = "/srv/file"\nmax-memory = "1MiB"\nmax_blob_size = "2MiB"\n[server]\nremote = "file:///x"\n',
      );
      // [server] table wins over top-level keys when present: only its keys are read.
      const fromServerTable = await loadConfig({ config: toml }, {});
      assert.equal(fromServerTable.remote, 'file:///x');
      await writeFile(
        toml,
        'listen = "0.0.0.0:1"\ndata = "/srv/file"\nmax-memory = "1MiB"\nmax_blob_size = "2MiB"\n',
      );
      const fileOnly = await loadConfig({ config: toml }, {});
      assert.equal(fileOnly.listen, '0.0.0.0:1');
      assert.equal(fileOnly.dataDir, '/srv/file');
      assert.equal(fileOnly.maxMemoryBytes, 1024 * 1024);
      assert.equal(fileOnly.maxBlobBytes, 2 * 1024 * 1024);
      const env = { HOARD_LISTEN: '127.0.0.1:2', HOARD_MAX_MEMORY: '3MiB', HOARD_CONFIG: toml };
      const withEnv = await loadConfig({}, env);
      assert.equal(withEnv.listen, '127.0.0.1:2');
      assert.equal(withEnv.maxMemoryBytes, 3 * 1024 * 1024);
      assert.equal(withEnv.dataDir, '/srv/file');
      const withFlags = await loadConfig({ listen: '127.0.0.1:3' }, env);
      assert.equal(withFlags.listen, '127.0.0.1:3');
      assert.equal(withFlags.maxMemoryBytes, 3 * 1024 * 1024);
      const json = join(dir, 'hoard.json');
      await writeFile(json, JSON.stringify({ maxBlobSize: 4096, publicRead: true }));
      const j = await loadConfig({ config: json }, {});
      assert.equal(j.maxBlobBytes, 4096);
      assert.equal(j.publicRead, true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('top-level server settings next to a [git] table', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-cfg-'));
    try {
      const file = join(dir, 'hoard.toml');
      await writeFile(file, 'listen = "127.0.0.1:9"\n\n[git]\nmax_staleness = "30s"\n');
      assert.equal((await loadConfig({ config: file }, {})).listen, '127.0.0.1:9');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('connection limits: defaults, flag > env > file, auto connection cap, bad values refused', async () => {
    const d = await loadConfig({}, {});
    assert.equal(d.headersTimeoutMs, DEFAULTS.headersTimeoutMs);
    assert.equal(d.bodyIdleTimeoutMs, DEFAULTS.bodyIdleTimeoutMs);
    assert.equal(d.keepAliveTimeoutMs, DEFAULTS.keepAliveTimeoutMs);
    assert.equal(d.maxConnections, 0);
    const dir = await mkdtemp(join(tmpdir(), 'hoard-cfg-'));
    try {
      const toml = join(dir, 'hoard.toml');
      await writeFile(toml, 'headers-timeout = "3s"\nbody_idle_timeout = 0\nmax-connections = 50\n');
      const f = await loadConfig({ config: toml }, {});
      assert.equal(f.headersTimeoutMs, 3000);
      assert.equal(f.bodyIdleTimeoutMs, 0);
      assert.equal(f.maxConnections, 50);
      const e = await loadConfig(
        { config: toml, keepAliveTimeout: '5s' },
        { HOARD_HEADERS_TIMEOUT: '500ms', HOARD_MAX_CONNECTIONS: 'auto' },
      );
      assert.equal(e.headersTimeoutMs, 500);
      assert.equal(e.maxConnections, 0);
      assert.equal(e.keepAliveTimeoutMs, 5000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(resolveMaxConnections(0, 256), 192);
    assert.equal(resolveMaxConnections(0, 1024), 768);
    assert.equal(resolveMaxConnections(0, 1 << 20), DEFAULTS.maxConnections);
    assert.equal(resolveMaxConnections(0, undefined), DEFAULTS.maxConnections);
    assert.equal(resolveMaxConnections(7, 256), 7);
    assert.equal(checkingIntervalMs(2000), 500);
    assert.equal(checkingIntervalMs(60_000), DEFAULTS.connectionsCheckIntervalMs);
    for (const bad of [
      { headersTimeout: '0' },
      { keepAliveTimeout: '0s' },
      { maxConnections: '-1' },
      { maxConnections: 'many' },
    ])
      await assert.rejects(loadConfig(bad, {}), (e) => isHoardError(e, 'HOARD_ECONFIG'));
  });

  it('bad settings are HOARD_ECONFIG errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-cfg-'));
    try {
      const bad = join(dir, 'bad.toml');
      await writeFile(bad, 'nonsense = 1\n');
      await assert.rejects(loadConfig({ config: bad }, {}), (e) => isHoardError(e, 'HOARD_ECONFIG'));
      await assert.rejects(loadConfig({ maxMemory: 'lots' }, {}), (e) => isHoardError(e, 'HOARD_ECONFIG'));
      await assert.rejects(loadConfig({ listen: 'host:port' }, {}), (e) => isHoardError(e, 'HOARD_ECONFIG'));
      await assert.rejects(loadConfig({ config: join(dir, 'absent.toml') }, {}), (e) =>
        isHoardError(e, 'HOARD_ECONFIG'),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('parses listen addresses', () => {
    assert.deepEqual(parseListen('127.0.0.1:7777'), { host: '127.0.0.1', port: 7777 });
    assert.deepEqual(parseListen('[::1]:80'), { host: '::1', port: 80 });
    assert.deepEqual(parseListen(':9'), { host: '127.0.0.1', port: 9 });
    assert.deepEqual(parseListen('7777'), { host: '127.0.0.1', port: 7777 });
    assert.deepEqual(parseListen('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
  });
});
