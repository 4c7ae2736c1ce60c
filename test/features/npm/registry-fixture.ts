// The real npm registry world of the npm feature's tests: verdaccio (pinned,
// a test-only upstream registry, installed with its node-fetch override) and
// pnpm (pinned) installed by the tests themselves into the ignored
// `tmp/test-clients/`, verdaccio started on loopback with fixture packages
// published into it by a real `npm publish`, and a counting loopback proxy in
// front of it (what the upstream served, and a switch to tamper with it).

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { waitUntil } from '../../support/wait.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../../tmp/test-clients');
const VERDACCIO = '6.8.0';
const PNPM = '12.4.2';

export interface RegistryClients {
  verdaccio: string;
  /** pnpm's native binary (its install script is not run: the binary package is used directly). */
  pnpm: string;
  /** npm: the one on PATH. */
  npm: string;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Installs (once; published by one rename) verdaccio and pnpm at their pinned versions. */
export async function installRegistryClients(): Promise<RegistryClients> {
  const dir = join(ROOT, `verdaccio-${VERDACCIO}+pnpm-${PNPM}`);
  const out = {
    verdaccio: join(dir, 'node_modules', 'verdaccio', 'bin', 'verdaccio'),
    pnpm: join(dir, 'node_modules', '@pnpm', 'exe.linux-x64', 'pnpm'),
    npm: 'npm',
  };
  if ((await exists(out.verdaccio)) && (await exists(out.pnpm))) return out;
  await mkdir(ROOT, { recursive: true });
  const staging = await mkdtemp(join(ROOT, '.verdaccio-'));
  try {
    // verdaccio 6.8.0 installs only with node-fetch pinned to 2.7.0.
    await writeFile(
      join(staging, 'package.json'),
      JSON.stringify({
        name: 'hoard-npm-test-clients',
        private: true,
        dependencies: { verdaccio: VERDACCIO, pnpm: PNPM },
        overrides: { 'node-fetch': '2.7.0' },
      }),
    );
    await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts'], {
      cwd: staging,
      timeout: 10 * 60_000,
      maxBuffer: 16 * 1024 * 1024,
    }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`npm could not install verdaccio/pnpm (offline?): ${err.stderr || err.message}`);
    });
    await rename(staging, dir).catch(async (err) => {
      if (!(await exists(out.verdaccio))) throw err;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return out;
}

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Verdaccio {
  url: string;
  /** A publish token of the fixture user. */
  token: string;
  stop(): Promise<void>;
}

export async function startVerdaccio(bin: string, dir: string): Promise<Verdaccio> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    [
      `storage: ${join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(dir, 'htpasswd')}`,
      '    max_users: 10',
      'uplinks: {}',
      'packages:',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      'web:',
      '  enable: false',
      'log: { type: stdout, format: json, level: error }',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    process.execPath,
    [bin, '--config', config, '--listen', `127.0.0.1:${port}`],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (c) => {
    stderr += c;
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (child.exitCode !== null) throw new Error(`verdaccio exited: ${stderr}`);
      return fetch(`${url}/-/ping`).then(
        (r) => r.ok,
        () => false,
      );
    },
    'verdaccio to listen',
    60_000,
  );
  const res = await fetch(`${url}/-/user/org.couchdb.user:fixture`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'fixture', password: 'fixture-password', type: 'user' }),
  });
  const { token } = (await res.json()) as { token: string };
  if (!token) throw new Error(`verdaccio gave no token (${res.status})`);
  return {
    url,
    token,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Publishes a package directory's files (package.json included) with `npm publish`. */
export async function publish(
  registry: Verdaccio,
  dir: string,
  files: Record<string, string | object>,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files))
    await writeFile(
      join(dir, name),
      typeof content === 'string' ? content : JSON.stringify(content, null, 2),
    );
  const host = registry.url.replace(/^http:/, '');
  await writeFile(join(dir, '.npmrc'), `registry=${registry.url}/\n${host}/:_authToken=${registry.token}\n`);
  await run('npm', ['publish', '--registry', `${registry.url}/`, '--access', 'public'], {
    cwd: dir,
    env: { ...process.env, npm_config_cache: join(dir, '.npm-cache'), npm_config_update_notifier: 'false' },
    timeout: 120_000,
  });
}

/** The environment of an npm or pnpm run in project `p`: every cache, store and config of its own (empty client stores). */
export function clientEnv(p: string): Record<string, string | undefined> {
  return {
    PATH: process.env.PATH,
    HOME: p,
    npm_config_cache: join(p, '.npm-cache'),
    npm_config_update_notifier: 'false',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    XDG_CACHE_HOME: join(p, '.cache'),
    XDG_DATA_HOME: join(p, '.data'),
    XDG_STATE_HOME: join(p, '.state'),
    XDG_CONFIG_HOME: join(p, '.config'),
    CI: 'true',
  };
}

export interface CountingProxy {
  url: string;
  /** Requests by path (GETs of tarballs and documents alike). */
  readonly counts: Map<string, number>;
  /** Body bytes sent for tarballs. */
  tarballBytes: number;
  /** Rewrites a response body before it is sent (tampering tests); undefined: as it came. */
  tamper: ((path: string, body: Buffer) => Buffer | undefined) | undefined;
  /** Answers every request with 503 (an upstream that is down). */
  down: boolean;
  tarballRequests(): number;
  reset(): void;
  close(): Promise<void>;
}

/** A loopback proxy in front of `target` that counts what it forwards (and keeps the Host it was asked at). */
export async function countingProxy(target: string): Promise<CountingProxy> {
  const t = new URL(target);
  const proxy: CountingProxy = {
    url: '',
    counts: new Map(),
    tarballBytes: 0,
    tamper: undefined,
    down: false,
    tarballRequests: () =>
      [...proxy.counts].filter(([p]) => p.endsWith('.tgz')).reduce((n, [, c]) => n + c, 0),
    reset() {
      proxy.counts.clear();
      proxy.tarballBytes = 0;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    proxy.counts.set(path, (proxy.counts.get(path) ?? 0) + 1);
    if (proxy.down) {
      res.writeHead(503).end('down');
      return;
    }
    const headers = { ...req.headers };
    if (proxy.tamper) {
      // A tampering proxy wants full bodies to change, not 304s.
      delete headers['if-none-match'];
      delete headers['if-modified-since'];
    }
    const up = http.request(
      { host: t.hostname, port: t.port, path: req.url, method: req.method, headers },
      (ur) => {
        const chunks: Buffer[] = [];
        ur.on('data', (c: Buffer) => chunks.push(c));
        ur.on('end', () => {
          let body: Buffer = Buffer.concat(chunks);
          const changed = proxy.tamper?.(path, body);
          const headers = { ...ur.headers };
          if (changed) {
            body = changed;
            headers['content-length'] = String(body.byteLength);
            delete headers.etag;
            delete headers['transfer-encoding'];
          }
          if (path.endsWith('.tgz')) proxy.tarballBytes += body.byteLength;
          res.writeHead(ur.statusCode ?? 502, headers).end(body);
        });
      },
    );
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
