// Test support for the build-tool front-ends: an in-process hoard server
// running the Bazel and ccache features (and API v1), optionally with a
// tokens file covering the auth matrix, plus small HTTP helpers.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bazelFeature } from '../../../src/features/bazel/bazel-feature.ts';
import { ccacheFeature } from '../../../src/features/ccache/ccache-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import type { RawSettings } from '../../../src/server/config.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { type TestToken, writeTokensFile } from '../../support/tokens.ts';
import { waitUntil } from '../../support/wait.ts';

export async function startCacheServer(settings: RawSettings = {}): Promise<TestServer> {
  return startTestServer(settings, {
    features: [withSettings(apiFeature), withSettings(bazelFeature), withSettings(ccacheFeature)],
  });
}

/** One token per row of the auth matrix. */
export const TOKENS = {
  read: 'read-secret',
  write: 'write-secret',
  bazel: 'bazel-ci-secret',
  ccache: 'ccache-ci-secret',
  /** Writes, but only the Turborepo namespace. */
  other: 'turbo-ci-secret',
} as const;

const TOKEN_FILE: TestToken[] = [
  { name: 'dev', token: TOKENS.read, scopes: ['read'] },
  { name: 'ci', token: TOKENS.write, scopes: ['read', 'write'] },
  { name: 'bazel-ci', token: TOKENS.bazel, scopes: ['read', 'write'], refs: ['cache/bazel/'] },
  { name: 'ccache-ci', token: TOKENS.ccache, scopes: ['read', 'write'], refs: ['cache/ccache/'] },
  { name: 'turbo-ci', token: TOKENS.other, scopes: ['read', 'write'], refs: ['cache/turbo/'] },
];

/** A server with the tokens file above. */
export async function startAuthServer(): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'hoard-cache-auth-'));
  const tokens = await writeTokensFile(dir, TOKEN_FILE);
  const srv = await startCacheServer({ tokens });
  return {
    ...srv,
    async close() {
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export const basic = (token: string, user = 'ci') => ({
  authorization: `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`,
});

export async function put(url: string, body: Uint8Array, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'PUT',
    body: new Uint8Array(body),
    headers: { 'content-type': 'application/octet-stream', ...headers },
  });
}

/** Files left under the data directory's tmp/ (spool files of uploads). */
export async function tmpFiles(dataDir: string): Promise<string[]> {
  try {
    const all = await readdir(join(dataDir, 'tmp'), { recursive: true, withFileTypes: true });
    return all.filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * Sends a PUT that declares `declared` bytes, writes `body` (fewer) and
 * half-closes; resolves with the status line of the answer once the
 * connection is gone on both sides and the server has removed its spool files.
 */
export async function putCutShort(
  srv: TestServer,
  path: string,
  declared: number,
  body: Uint8Array,
): Promise<string> {
  const { port } = new URL(srv.url);
  const server = srv.server.app.server;
  let answer = '';
  let serverSide: Promise<void> | undefined;
  await new Promise<void>((resolve, reject) => {
    const sock = connect(Number(port), '127.0.0.1');
    // The server's end of this connection: its close means the server is done with it.
    const onConnection = (s: Socket) => {
      if (s.remotePort !== sock.localPort) return;
      server.off('connection', onConnection);
      serverSide = new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
    };
    server.on('connection', onConnection);
    sock.on('connect', () => {
      sock.write(
        `PUT ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`,
      );
      sock.end(body);
    });
    sock.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
    });
    sock.on('close', () => resolve());
    sock.on('error', reject);
  });
  await serverSide;
  await waitUntil(
    async () => (await tmpFiles(srv.dataDir)).length === 0,
    'the server to remove its spool files',
  );
  return answer.split('\r\n')[0];
}

/** Whether a command is on PATH (real-client tests skip without it and say so). */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}
