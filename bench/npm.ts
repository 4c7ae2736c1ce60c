// npm registry cache benchmark (issue 15): a project of ~100 packages
// installed with pnpm and with npm, directly from verdaccio vs through hoard
// cold (empty hoard) vs through hoard warm (hoard filled, client store
// empty), alternating direct / cold / warm each round; then 20 concurrent
// pnpm installs through a fresh hoard, counting the tarball bytes the
// upstream sent against the distinct tarballs' size. Prints medians and
// ratios. Run by hand: `npx node bench/npm.ts [rounds] [packages] [rtt-ms]`.
//
// Two upstreams, each measured the same way: verdaccio on loopback (no link
// for a cache to save: the hardest case for hoard), and the same verdaccio
// behind a loopback proxy that holds every request for rtt-ms (default 40)
// before forwarding it — a registry one round trip away over a kept-alive
// connection, as a CI fleet's remote registry is (no TLS, no bandwidth limit:
// a lower bound of what a real link costs).
//
// verdaccio and pnpm are the tests' pinned ones (installed into
// tmp/test-clients/); the fixture packages are published with verdaccio's
// publish API (the same PUT npm publish sends), each ~16 KiB of random bytes.

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { npmFeature } from '../src/features/npm/npm-feature.ts';
import { withSettings } from '../src/server/feature.ts';
import {
  clientEnv,
  countingProxy,
  installRegistryClients,
  startVerdaccio,
  type Verdaccio,
} from '../test/features/npm/registry-fixture.ts';
import { startTestServer } from '../test/server/helpers.ts';

const run = promisify(execFile);
const ROUNDS = Number(process.argv[2] ?? 3);
const PACKAGES = Number(process.argv[3] ?? 100);
const RTT_MS = Number(process.argv[4] ?? 40);

/** A loopback proxy that holds each request `ms` before forwarding it: a registry one round trip away. */
async function delayingProxy(target: string, ms: number) {
  const t = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    setTimeout(() => {
      const up = http.request(
        { host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers, agent },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        },
      );
      up.on('error', () => res.writeHead(502).end());
      req.pipe(up);
    }, ms);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      agent.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

async function tgz(files: Record<string, Buffer | string>): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  for (const [f, content] of Object.entries(files)) p.entry({ name: `package/${f}`, mode: 0o644 }, content);
  p.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

async function publishFast(v: Verdaccio, name: string, deps: Record<string, string>): Promise<number> {
  const manifest = { name, version: '1.0.0', main: 'index.js', dependencies: deps };
  const tarball = await tgz({
    'package.json': JSON.stringify(manifest),
    'index.js': `module.exports = ${JSON.stringify(name)};\n`,
    'data.bin': randomBytes(16 * 1024).toString('base64'),
  });
  const file = `${name}-1.0.0.tgz`;
  const body = {
    _id: name,
    name,
    'dist-tags': { latest: '1.0.0' },
    versions: {
      '1.0.0': {
        ...manifest,
        _id: `${name}@1.0.0`,
        dist: {
          tarball: `${v.url}/${name}/-/${file}`,
          shasum: createHash('sha1').update(tarball).digest('hex'),
          integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
        },
      },
    },
    _attachments: {
      [file]: {
        content_type: 'application/octet-stream',
        data: tarball.toString('base64'),
        length: tarball.byteLength,
      },
    },
  };
  const res = await fetch(`${v.url}/${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${v.token}` },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`publish ${name}: ${res.status} ${await res.text()}`);
  return tarball.byteLength;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const clients = await installRegistryClients();
  const dir = await mkdtemp(join(tmpdir(), 'hoard-bench-npm-'));
  const verdaccio = await startVerdaccio(clients.verdaccio, join(dir, 'verdaccio'));
  const proxy = await countingProxy(verdaccio.url);
  const remote = await delayingProxy(verdaccio.url, RTT_MS);
  const servers: { close(): Promise<void> }[] = [];
  try {
    // 100 packages: 10 leaves, 90 that depend on one leaf each (a shallow graph like a real project's).
    let distinctBytes = 0;
    const names: string[] = [];
    for (let i = 0; i < PACKAGES; i++) {
      const name = `bench-pkg-${String(i).padStart(3, '0')}`;
      const deps = i >= 10 ? { [`bench-pkg-${String(i % 10).padStart(3, '0')}`]: '^1.0.0' } : {};
      distinctBytes += await publishFast(verdaccio, name, deps);
      names.push(name);
    }
    const deps = Object.fromEntries(names.map((n) => [n, '1.0.0']));
    let k = 0;
    const project = async (registry: string) => {
      const p = join(dir, `p${k++}`);
      await mkdir(p, { recursive: true });
      await writeFile(
        join(p, 'package.json'),
        JSON.stringify({ name: 'proj', version: '1.0.0', dependencies: deps }),
      );
      await writeFile(join(p, '.npmrc'), `registry=${registry}\n`);
      await writeFile(join(p, 'pnpm-workspace.yaml'), 'minimumReleaseAge: 0\n');
      return p;
    };
    const install = async (client: 'pnpm' | 'npm', registry: string): Promise<number> => {
      const p = await project(registry);
      const t0 = performance.now();
      if (client === 'npm') await run('npm', ['install'], { cwd: p, env: clientEnv(p), maxBuffer: 64 << 20 });
      else
        await run(clients.pnpm, ['install', '--store-dir', join(p, '.pnpm-store')], {
          cwd: p,
          env: clientEnv(p),
          maxBuffer: 64 << 20,
        });
      const ms = performance.now() - t0;
      await rm(p, { recursive: true, force: true });
      return ms;
    };
    const hoard = async (upstream: string) => {
      const srv = await startTestServer(
        {},
        { features: [withSettings(npmFeature, { upstream: `${upstream}/` })] },
      );
      servers.push(srv);
      return srv;
    };
    const load = () =>
      loadavg()
        .map((x) => x.toFixed(2))
        .join(' ');
    console.log(
      `npm bench: ${PACKAGES} packages (${(distinctBytes / 1024).toFixed(0)} KiB of tarballs), ${ROUNDS} rounds; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; load ${load()}`,
    );
    const scenarios = [
      { label: 'loopback verdaccio', direct: verdaccio.url, upstream: proxy.url },
      { label: `verdaccio +${RTT_MS} ms per request`, direct: remote.url, upstream: remote.url },
    ];
    for (const sc of scenarios) {
      for (const client of ['pnpm', 'npm'] as const) {
        const t = { direct: [] as number[], cold: [] as number[], warm: [] as number[] };
        for (let r = 0; r < ROUNDS; r++) {
          t.direct.push(await install(client, `${sc.direct}/`));
          const srv = await hoard(sc.upstream);
          t.cold.push(await install(client, `${srv.url}/npm/`));
          t.warm.push(await install(client, `${srv.url}/npm/`));
          await srv.close();
        }
        const d = median(t.direct);
        const c = median(t.cold);
        const w = median(t.warm);
        console.log(
          `[${sc.label}] ${client}: direct ${d.toFixed(0)} ms, hoard cold ${c.toFixed(0)} ms (${(c / d).toFixed(2)}x), hoard warm ${w.toFixed(0)} ms (${(w / d).toFixed(2)}x)  [direct ${t.direct.map((x) => x.toFixed(0)).join(' ')}; cold ${t.cold.map((x) => x.toFixed(0)).join(' ')}; warm ${t.warm.map((x) => x.toFixed(0)).join(' ')}]; load ${load()}`,
        );
      }
    }
    // The race: 20 concurrent pnpm installs, empty client stores, a fresh hoard.
    const srv = await hoard(proxy.url);
    proxy.reset();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 20 }, () => install('pnpm', `${srv.url}/npm/`)));
    const raceMs = performance.now() - t0;
    const requests = proxy.tarballRequests();
    console.log(
      `race: 20 concurrent pnpm installs in ${raceMs.toFixed(0)} ms; upstream sent ${requests} tarball requests (${PACKAGES} distinct), ${proxy.tarballBytes} bytes = ${(proxy.tarballBytes / distinctBytes).toFixed(2)}x the distinct tarballs' ${distinctBytes}; load ${load()}`,
    );
  } finally {
    for (const s of servers) await s.close().catch(() => {});
    await proxy.close();
    await remote.close();
    await verdaccio.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
