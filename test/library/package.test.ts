// The packed npm package, installed into a fresh project without TypeScript
// (see packed-package.ts): it ships the JavaScript build and declarations
// but no tests, sources, tmp/ or bench/; plain Node imports it, pushes,
// pulls and handles a typed conflict, without loading the bucket SDKs or the
// server; its `hoard` executable runs from dist/; and a consumer's
// TypeScript file type-checks against its declarations under `--strict`
// (and misuse does not).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  NODE_ENV,
  type PackedInstall,
  packedInstall,
  runScript,
  scratch,
  typeCheck,
} from './packed-package.ts';

const run = promisify(execFile);

describe('the packed npm package', () => {
  let pkg: PackedInstall;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    pkg = await packedInstall();
    tmp = await scratch(pkg);
  });
  after(() => tmp?.cleanup());

  it('ships the build, declarations, bin and docs; no tests, sources, tmp/ or bench/', () => {
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bin/hoard.js', 'README.md'])
      assert.ok(pkg.files.includes(f), `${f} is packed`);
    assert.ok(pkg.files.includes('docs/library.md'));
    assert.ok(
      pkg.files.some((f) => f.endsWith('.proto')),
      'the Bazel proto the build copies',
    );
    const stray = pkg.files.filter(
      (f) =>
        /^(test|tmp|bench|src|scripts|node_modules|\.hoard)\//.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')) ||
        f.includes('.test.'),
    );
    assert.deepEqual(stray, []);
  });

  it('plain Node imports it, pushes, pulls and handles a typed conflict; SDKs stay unloaded', async () => {
    const script = join(tmp.dir, 'use.mjs');
    await writeFile(
      script,
      `
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { join } from 'node:path';

const loaded = [];
registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); loaded.push(r.url); return r; } });
const heavy = () => loaded.filter((u) => /@aws-sdk|@google-cloud|fastify|pino|prom-client|commander|cli-progress|undici/.test(u));

const hoard = await import('hoard');
const entry = loaded.find((u) => u.endsWith('/node_modules/hoard/dist/index.js'));
assert.ok(entry, 'hoard resolves to its JavaScript build');
const heavyAtImport = heavy();

const base = mkdtempSync(join(process.cwd(), 'w-'));
const remote = 'file://' + join(base, 'remote');
const a = join(base, 'a');
const b = join(base, 'b');
mkdirSync(a);
writeFileSync(join(a, 'notes.txt'), 'v1\\n');
writeFileSync(join(a, 'copy.txt'), 'v1\\n');
const events = [];
const pushed = await hoard.push({ dir: a, remote, ref: 'team/notes', message: 'first', onProgress: (e) => events.push(e) });
const pulled = await hoard.pull({ dir: b, remote, ref: 'team/notes' });
assert.equal(readFileSync(join(b, 'notes.txt'), 'utf8'), 'v1\\n');

writeFileSync(join(a, 'notes.txt'), 'mine\\n');
await hoard.push({ dir: a, remote, ref: 'team/notes' });
writeFileSync(join(b, 'notes.txt'), 'theirs\\n');
let conflict;
try {
  await hoard.push({ dir: b, remote, ref: 'team/notes' });
} catch (err) {
  if (!(err instanceof hoard.SyncConflictError)) throw err;
  conflict = { code: err.code, paths: err.paths, isHoardError: err instanceof hoard.HoardError, hint: err.hint };
}
const resolved = await hoard.pull({ dir: b, remote, ref: 'team/notes', force: true });

const aborted = await hoard.push({ dir: a, remote, ref: 'team/other', signal: AbortSignal.abort() }).catch((e) => e.code);
const log = await hoard.log({ remote, ref: 'team/notes' });
console.log(JSON.stringify({
  heavyAtImport, heavyAfterSync: heavy(), pushed, pulled, conflict, resolved, aborted,
  blobEvents: events.filter((e) => e.type === 'blob').length,
  messages: log.entries.map((e) => e.message ?? null),
}));
`,
    );
    const out = JSON.parse((await runScript(script)).stdout) as {
      heavyAtImport: string[];
      heavyAfterSync: string[];
      pushed: { filesUploaded: number; upToDate: boolean; ref: string };
      pulled: { filesDownloaded: number };
      conflict: { code: string; paths: string[]; isHoardError: boolean; hint: string } | undefined;
      resolved: { upToDate: boolean };
      aborted: string;
      blobEvents: number;
      messages: (string | null)[];
    };
    assert.deepEqual(out.heavyAtImport, []);
    assert.deepEqual(out.heavyAfterSync, [], 'a file:// sync loads no SDK, server or HTTP client');
    assert.equal(out.pushed.ref, 'team/notes');
    assert.equal(out.pushed.filesUploaded, 1, 'two files, one blob');
    assert.equal(out.blobEvents, 1);
    assert.equal(out.pulled.filesDownloaded, 1);
    assert.deepEqual(out.conflict && { ...out.conflict, hint: typeof out.conflict.hint }, {
      code: 'HOARD_ESYNC_CONFLICT',
      paths: ['notes.txt'],
      isHoardError: true,
      hint: 'string',
    });
    assert.equal(out.resolved.upToDate, false);
    assert.equal(out.aborted, 'HOARD_EABORTED');
    assert.deepEqual(out.messages, [null, 'first']);
  });

  it('its `hoard` executable runs the JavaScript build, and prints what the library returns', async () => {
    const env = { ...NODE_ENV, NODE_DISABLE_COMPILE_CACHE: '1' };
    const version = await run(pkg.bin, ['--version'], { env });
    assert.equal(version.stdout.trim(), '0.1.0');
    const dir = join(tmp.dir, 'cli-src');
    const remote = `file://${join(tmp.dir, 'cli-remote')}`;
    await mkdir(dir);
    await writeFile(join(dir, 'f'), 'x\n');
    const pushed = await run(pkg.bin, ['push', dir, remote, '--ref', 'cli/x', '--json'], { env });
    const fromCli = JSON.parse(pushed.stdout) as Record<string, unknown>;
    const script = join(tmp.dir, 'compare.mjs');
    await writeFile(
      script,
      `import * as hoard from 'hoard';
console.log(JSON.stringify(await hoard.push({ dir: ${JSON.stringify(dir)}, remote: ${JSON.stringify(remote)}, ref: 'cli/x' })));`,
    );
    const fromLib = JSON.parse((await runScript(script)).stdout) as Record<string, unknown>;
    assert.deepEqual(
      { ...fromLib, durationMs: 0 },
      {
        ...fromCli,
        upToDate: true,
        durationMs: 0,
        filesUploaded: 0,
        bytesUploaded: 0,
        filesReused: 1,
        bytesReused: 2,
      },
    );
    const failed = await run(pkg.bin, ['pull', remote, join(tmp.dir, 'o'), '--ref', 'cli/none'], {
      env,
    }).catch((e: { code: number; stderr: string }) => e);
    assert.equal((failed as { code: number }).code, 2);
    assert.match((failed as { stderr: string }).stderr, /HOARD_EREF_NOT_FOUND/);
  });

  it('a consumer project type-checks against the declarations under --strict; misuse does not', async () => {
    const dir = join(tmp.dir, 'ts');
    const consumer = `import * as hoard from 'hoard';
import type { ProgressEvent, PushResult, PullResult, LogResult, DiffResult, Remote } from 'hoard';

function describe(e: ProgressEvent): string {
  switch (e.type) {
    case 'start': return \`\${e.operation}: \${e.blobs} blobs, \${e.bytes} bytes\`;
    case 'bytes': return String(e.bytesDone);
    case 'blob': return \`\${e.path} \${e.digest} \${e.size} (\${e.blobsDone}/\${e.blobs})\`;
    case 'end': return String(e.blobsDone);
    default: { const never: never = e; return never; }
  }
}

export async function sync(dir: string, remote: string, signal: AbortSignal): Promise<number> {
  const pushed: PushResult = await hoard.push({ dir, remote, ref: 'team/data', signal, message: 'm', onProgress: (e) => console.log(describe(e)) });
  const snapshot: hoard.Digest = pushed.snapshot;
  try {
    const pulled: PullResult = await hoard.pull({ dir, remote, ref: 'team/data', force: false, token: 't', onWarning: (m: string) => console.warn(m) });
    return pulled.filesDownloaded + snapshot.length;
  } catch (err) {
    if (err instanceof hoard.SyncConflictError) return err.paths.length;
    if (err instanceof hoard.RefConflictError) return err.expected === null ? 0 : 1;
    if (hoard.isHoardError(err, 'HOARD_EABORTED')) return -1;
    if (err instanceof hoard.HoardError) {
      const code: hoard.ErrorCode = err.code;
      return code.length + (err.hint ?? '').length;
    }
    throw err;
  }
}

export async function history(remote: Remote): Promise<string[]> {
  const log: LogResult = await hoard.log({ remote, ref: 'team/data', limit: 5 });
  const d: DiffResult = await hoard.diff({ remote, ref: 'team/data', from: '~1' });
  const local: DiffResult = await hoard.diff({ dir: '.' });
  const refs = await hoard.listRefs({ remote: 'file:///tmp/x', prefix: 'team/' });
  const client = await hoard.connect('http://127.0.0.1:7777', { token: 'secret' });
  const v = await client.refs.get('team/data');
  const missing: hoard.Digest[] = await client.blobs.missing([hoard.sha256('x')]);
  await client.close();
  return [...log.entries.map((e) => e.snapshot), ...d.added.map((e) => e.path), ...local.changed.map((e) => e.path), ...refs.refs.map((r) => r.name), v?.version ?? '', ...missing];
}
`;
    assert.equal(await typeCheck(dir, { 'consumer.ts': consumer }), '', 'consumer.ts type-checks');

    // Misuse is caught, so the types are real (not any).
    const misuse = `import * as hoard from 'hoard';
await hoard.push({ dir: 1, remote: 'x', ref: 'r' });
await hoard.pull({ remote: 'x', ref: 'r' });
const r = await hoard.push({ dir: '.', remote: 'x', ref: 'r' });
r.filesDownloaded;
hoard.push({ dir: '.', remote: 'x', ref: 'r', onProgress: (e) => e.digest });
`;
    const bad = await typeCheck(dir, { 'misuse.ts': misuse });
    for (const line of [2, 3, 5, 6]) assert.match(bad, new RegExp(`misuse\\.ts\\(${line},`), bad);
    assert.doesNotMatch(bad, /consumer\.ts/);
  });
});
