// The real Gradle client (Debian's `gradle` package; skipped when it is not
// on PATH) against hoard's /gradle build cache: a one-class Java build with a
// remote HttpBuildCache. CI builds and pushes with a token that may write
// cache/gradle/ only; then a developer, in a fresh copy of the project with
// a fresh GRADLE_USER_HOME (no local build cache) and a read-only token
// (push = false), runs `clean build`: compileJava comes FROM-CACHE, and the
// class file is the one CI compiled.
// The java plugin is built into Gradle, so no network is needed.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { TestServer } from '../../server/helpers.ts';
import { blobFiles, startGradleServer, writeTokens } from './helpers.ts';

const execFileP = promisify(execFile);

function gradleVersion(): string | undefined {
  try {
    return /Gradle (\S+)/.exec(
      execFileSync('gradle', ['--version'], {
        encoding: 'utf8',
        timeout: 120_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    )?.[1];
  } catch {
    return undefined;
  }
}

const version = gradleVersion();

function settingsGradle(url: string, push: boolean, password: string): string {
  return `rootProject.name = 'demo'
buildCache {
  remote(HttpBuildCache) {
    url = '${url}/gradle/'
    push = ${push}
    credentials {
      username = 'ci'
      password = '${password}'
    }
  }
}
`;
}

async function runGradle(project: string, userHome: string, args: string[]): Promise<string> {
  const { stdout, stderr } = await execFileP(
    'gradle',
    ['--build-cache', '--no-daemon', '--console=plain', '--stacktrace', ...args],
    {
      cwd: project,
      env: { ...process.env, GRADLE_USER_HOME: userHome, GRADLE_OPTS: '' },
      timeout: 300_000,
      maxBuffer: 16 << 20,
    },
  );
  return `${stdout}\n${stderr}`;
}

describe('the real Gradle client against /gradle', {
  skip: version ? false : 'gradle is not installed',
}, () => {
  let dir: string;
  let srv: TestServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-gradle-client-'));
    srv = await startGradleServer({ tokens: await writeTokens(dir) });
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test(`Gradle ${version}: CI pushes, a clean rebuild elsewhere is FROM-CACHE`, async () => {
    const ci = join(dir, 'ci');
    await mkdir(join(ci, 'src/main/java/demo'), { recursive: true });
    await writeFile(join(ci, 'build.gradle'), "apply plugin: 'java'\n");
    await writeFile(
      join(ci, 'src/main/java/demo/Hello.java'),
      'package demo;\npublic class Hello {\n  public static void main(String[] a) { System.out.println("hello from the cache"); }\n}\n',
    );
    await writeFile(join(ci, 'settings.gradle'), settingsGradle(srv.url, true, 'gradle-secret'));

    const first = await runGradle(ci, join(dir, 'home-ci'), ['build']);
    assert.match(first, /BUILD SUCCESSFUL/);
    assert.doesNotMatch(first, /:compileJava FROM-CACHE/);
    assert.ok((await blobFiles(srv.dataDir)).length >= 1, 'CI stored its outputs');
    const compiled = await readFile(join(ci, 'build/classes/java/main/demo/Hello.class'));

    // Another checkout: no build/, no .gradle/, another GRADLE_USER_HOME (so no local cache), read-only token.
    const dev = join(dir, 'dev');
    await mkdir(dev);
    await cp(join(ci, 'src'), join(dev, 'src'), { recursive: true });
    await cp(join(ci, 'build.gradle'), join(dev, 'build.gradle'));
    await writeFile(join(dev, 'settings.gradle'), settingsGradle(srv.url, false, 'dev-secret'));

    const second = await runGradle(dev, join(dir, 'home-dev'), ['clean', 'build']);
    assert.match(second, /BUILD SUCCESSFUL/);
    assert.match(second, /:compileJava FROM-CACHE/);
    assert.deepEqual(await readFile(join(dev, 'build/classes/java/main/demo/Hello.class')), compiled);
    const metrics = await (
      await fetch(`${srv.url}/metrics`, { headers: { authorization: 'Bearer dev-secret' } })
    ).text();
    assert.match(metrics, /hoard_cache_requests_total\{tool="gradle",op="get",result="hit"\} [1-9]/);
  });
});
