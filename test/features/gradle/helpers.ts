// Shared by the Gradle build cache tests: an in-process server running the
// API v1 and the gradle feature, and Gradle's requests as Gradle makes them.

import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gradleFeature } from '../../../src/features/gradle/gradle-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import type { RawSettings } from '../../../src/server/config.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { type TestToken, writeTokensFile } from '../../support/tokens.ts';

export function startGradleServer(settings: RawSettings = {}): Promise<TestServer> {
  return startTestServer(settings, { features: [withSettings(apiFeature), withSettings(gradleFeature)] });
}

/** A key of the shape Gradle sends (MD5 hex). */
export const newKey = (): string => randomBytes(16).toString('hex');

export const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Gradle 8's Content-Type of a PUT (Gradle 4 sends .v1). */
export const ARTIFACT_V2 = 'application/vnd.gradle.build-cache-artifact.v2';

export function putEntry(
  url: string,
  key: string,
  body: Uint8Array,
  authorization?: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${url}/gradle/${key}`, {
    method: 'PUT',
    body: new Uint8Array(body),
    headers: { 'content-type': ARTIFACT_V2, ...(authorization ? { authorization } : {}), ...headers },
  });
}

export function getEntry(
  url: string,
  key: string,
  authorization?: string,
  method = 'GET',
): Promise<Response> {
  return fetch(`${url}/gradle/${key}`, {
    method,
    headers: { accept: `${ARTIFACT_V2}, */*`, ...(authorization ? { authorization } : {}) },
  });
}

/** The blob files on the server's disk tier (`<data>/blobs/sha256/<2 hex>/<64 hex>`). */
export async function blobFiles(dataDir: string): Promise<string[]> {
  const root = join(dataDir, 'blobs', 'sha256');
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Tokens of the Gradle tests: a developer reads; CI writes everything, or only Gradle's or Turborepo's namespace. */
export const TOKENS: TestToken[] = [
  { name: 'developer', token: 'dev-secret', scopes: ['read'] },
  { name: 'ci', token: 'ci-secret', scopes: ['read', 'write'] },
  { name: 'gradle-ci', token: 'gradle-secret', scopes: ['read', 'write'], refs: ['cache/gradle/'] },
  { name: 'turbo-ci', token: 'turbo-secret', scopes: ['read', 'write'], refs: ['cache/turbo/'] },
];

/** Writes TOKENS to `<dir>/tokens.toml`; returns its path. */
export const writeTokens = (dir: string): Promise<string> => writeTokensFile(dir, TOKENS);
