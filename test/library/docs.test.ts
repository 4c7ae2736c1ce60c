// docs/library.md cannot rot: every ```js and ```ts block in it is a named
// example, and each is taken from the page as written and run against the
// installed npm package (packed-package.ts) with plain Node — the model
// cache and the CI cache (a miss, an exact hit, a partial restore) through
// a real S3 bucket (Ceph RGW, see scripts/rgw.sh), the build context
// against a live `hoard serve` with a token — or, for TypeScript,
// type-checked under --strict against the package's declarations.

import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { makeS3Client } from '../../src/remote/s3-remote.ts';
import { deletePrefix, randomPrefix, s3TestEnv } from '../remote/s3-env.ts';
import { startTestServer } from '../server/helpers.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { describeDir, ROOT, writeFiles } from '../sync/helpers.ts';
import { type PackedInstall, packedInstall, runScript, scratch, typeCheck } from './packed-package.ts';

interface Example {
  name: string;
  lang: 'js' | 'ts';
  code: string;
}

/** The fenced js/ts blocks of a markdown page; a block without `name=` is an error (it would go untested). */
function examplesOf(markdown: string): Example[] {
  const out: Example[] = [];
  for (const m of markdown.matchAll(/^```(js|ts|javascript|typescript)([^\n]*)\n([\s\S]*?)^```$/gm)) {
    const name = /\bname=([\w-]+)/.exec(m[2])?.[1];
    assert.ok(name, `a \`\`\`${m[1]} block of docs/library.md has no name= (so no test runs it):\n${m[3]}`);
    out.push({ name, lang: m[1].startsWith('t') ? 'ts' : 'js', code: m[3] });
  }
  return out;
}

const json = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;

describe('docs/library.md examples, run against the packed package', () => {
  let pkg: PackedInstall;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  const examples = new Map<string, string>();
  before(async () => {
    pkg = await packedInstall();
    tmp = await scratch(pkg);
    for (const ex of examplesOf(await readFile(join(ROOT, 'docs', 'library.md'), 'utf8'))) {
      const file = join(tmp.dir, `${ex.name}.${ex.lang === 'js' ? 'mjs' : 'ts'}`);
      await writeFile(file, ex.code);
      examples.set(ex.name, file);
    }
  });
  after(() => tmp?.cleanup());

  it('the page has exactly the examples this file runs', () => {
    assert.deepEqual([...examples.keys()].sort(), [
      'build-context',
      'ci-cache',
      'intro',
      'share-models',
      'typed',
    ]);
  });

  it('intro: pushes ./data', async () => {
    await writeFiles(join(tmp.dir, 'data'), { 'a.txt': 'a\n', 'b.txt': 'b\n' });
    const out = await runScript(examples.get('intro')!, {
      REMOTE: `file://${join(tmp.dir, 'intro-remote')}`,
    });
    assert.match(out.stdout, /^sha256:[0-9a-f]{64} 2\n$/);
  });

  it('share-models: two machines share a cache through an S3 bucket, a conflict taking the shared version', async () => {
    const { env, bucket } = s3TestEnv();
    const prefix = randomPrefix('lib-doc');
    const client: S3Client = makeS3Client(env);
    const a = join(tmp.dir, 'models-a');
    const b = join(tmp.dir, 'models-b');
    const machine = (dir: string, model: string) =>
      runScript(examples.get('share-models')!, {
        ...env,
        MODEL_CACHE_DIR: dir,
        MODEL_CACHE_REMOTE: `s3://${bucket}/${prefix}`,
        MODEL_NAME: model,
      }).then((r) => json(r.stdout));
    try {
      assert.deepEqual(await machine(a, 'a.bin'), { pulled: 0, uploaded: 1, files: 1, conflicts: [] });
      assert.deepEqual(await machine(b, 'b.bin'), { pulled: 1, uploaded: 1, files: 2, conflicts: [] });
      // Machine A made its own b.bin meanwhile: the shared one wins, A's new model is shared.
      await writeFiles(a, { 'b.bin': 'a local b.bin\n' });
      assert.deepEqual(await machine(a, 'c.bin'), { pulled: 1, uploaded: 1, files: 3, conflicts: ['b.bin'] });
      assert.equal(await readFile(join(a, 'b.bin'), 'utf8'), 'weights of b.bin\n');
      assert.deepEqual(await machine(b, 'b.bin'), { pulled: 1, uploaded: 0, files: 3, conflicts: [] });
      assert.deepEqual(await describeDir(a), await describeDir(b));
    } finally {
      await deletePrefix(client, bucket, `${prefix}/`);
      client.destroy();
    }
  });

  it('build-context: only changed files travel to a live server (token), the builder gets the snapshot', async () => {
    const TOKEN = 'docs-build-token-0123456789';
    const tokens = await writeTokensFile(tmp.dir, [{ name: 'ci', token: TOKEN, scopes: ['read', 'write'] }]);
    const srv = await startTestServer({ tokens });
    try {
      const context = join(tmp.dir, 'context');
      const workdir = join(tmp.dir, 'builder');
      await writeFiles(context, {
        Dockerfile: 'FROM scratch\nCOPY . /app\n',
        'src/app.js': 'console.log(1)\n',
        'src/big.bin': Buffer.alloc(1 << 20, 7),
      });
      const send = (extra: Record<string, string> = {}) =>
        runScript(examples.get('build-context')!, {
          BUILD_CONTEXT: context,
          HOARD_SERVER: srv.url,
          HOARD_TOKEN: TOKEN,
          APP: 'web',
          ...extra,
        }).then((r) => json(r.stdout));
      const first = await send();
      assert.deepEqual({ ...first, snapshot: 0 }, { snapshot: 0, uploaded: 3, total: 3 });
      await writeFiles(context, { 'src/app.js': 'console.log(2)\n' });
      const second = await send({ BUILD_WORKDIR: workdir });
      assert.deepEqual({ ...second, snapshot: 0 }, { snapshot: 0, uploaded: 1, total: 3 });
      assert.notEqual(second.snapshot, first.snapshot);
      assert.deepEqual(await describeDir(workdir), await describeDir(context));
      // A wrong token is refused before anything is sent.
      await assert.rejects(send({ HOARD_TOKEN: 'wrong' }), /HOARD_EUNAUTHORIZED/);
    } finally {
      await srv.close();
    }
  });

  it('ci-cache: a miss saves, the same lockfile restores exactly, a new one restores the newest and saves', async () => {
    const { env, bucket } = s3TestEnv();
    const prefix = randomPrefix('lib-ci');
    const client: S3Client = makeS3Client(env);
    const remote = `s3://${bucket}/${prefix}`;
    const job = async (
      name: string,
      lockfile: string,
    ): Promise<{ key: string; hit: string; files: string[] }> => {
      const dir = join(tmp.dir, `ci-${name}`);
      await mkdir(dir);
      await writeFile(join(dir, 'package-lock.json'), lockfile);
      const r = json(
        (
          await runScript(examples.get('ci-cache')!, {
            ...env,
            CI_CACHE_REMOTE: remote,
            CI_CACHE_DIR: join(dir, 'cache'),
            CI_LOCKFILE: join(dir, 'package-lock.json'),
          })
        ).stdout,
      );
      return {
        key: String(r.key),
        hit: String(r.hit),
        files: Object.keys(await describeDir(join(dir, 'cache'))).sort(),
      };
    };
    try {
      const miss = await job('1', '{"v":1}');
      assert.equal(miss.hit, 'miss');
      assert.equal(miss.files.length, 1);
      const exact = await job('2', '{"v":1}');
      assert.deepEqual(exact, { ...miss, hit: 'exact' });
      const partial = await job('3', '{"v":2}');
      assert.equal(partial.hit, 'partial');
      assert.notEqual(partial.key, miss.key);
      assert.equal(partial.files.length, 2, "the old cache's file plus the new one");
      assert.equal((await job('4', '{"v":2}')).hit, 'exact');
    } finally {
      await deletePrefix(client, bucket, `${prefix}/`);
      client.destroy();
    }
  });

  it("README's library snippet type-checks against the declarations (it needs a bucket to run)", async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Using hoard from code'));
    const snippet = /^```js\n([\s\S]*?)^```$/m.exec(section)?.[1];
    assert.ok(snippet, 'README has a js snippet under "Using hoard from code"');
    assert.equal(await typeCheck(join(tmp.dir, 'readme'), { 'readme.ts': snippet }), '');
  });

  it('typed: the TypeScript example type-checks under --strict against the declarations', async () => {
    const diagnostics = await typeCheck(join(tmp.dir, 'typed'), {
      'typed.ts': await readFile(examples.get('typed')!, 'utf8'),
    });
    assert.equal(diagnostics, '');
  });
});
