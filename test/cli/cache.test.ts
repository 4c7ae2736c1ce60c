// `hoard cache` as a command line: help, the remote from HOARD_REMOTE,
// usage errors (exit 1 with the error code in --json), a missing remote
// option, and restore keys given one per line (as actions/cache's input).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { run } from '../sync/cache-suite.ts';
import { tempDir, writeFiles } from '../sync/helpers.ts';

describe('hoard cache (command line)', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  let store: { dir: string; cleanup: () => Promise<void> };
  let url: string;
  before(async () => {
    work = await tempDir('hoard-cache-cli-');
    store = await tempDir('hoard-cache-cli-store-');
    url = pathToFileURL(store.dir).href;
    await writeFiles(work.dir, { 'deps/a': 'a' });
  });
  after(async () => {
    await work.cleanup();
    await store.cleanup();
  });

  it('--help lists save, restore, list and delete', async () => {
    const h = await run(work.dir, ['cache', '--help']);
    for (const c of ['save', 'restore', 'list', 'delete']) assert.match(h.stdout, new RegExp(`\\b${c}\\b`));
    const r = await run(work.dir, ['cache', 'restore', '--help']);
    for (const o of [
      '--restore-keys',
      '--lookup-only',
      '--fail-on-cache-miss',
      '--platform',
      '--scope',
      '--delete',
    ])
      assert.ok(r.stdout.includes(o), o);
  });

  it('takes the remote from --remote or HOARD_REMOTE, and says so when neither is given', async () => {
    assert.equal(process.env.HOARD_REMOTE, undefined);
    const none = await run(work.dir, ['cache', 'save', 'k', 'deps']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /--remote/);
    const s = await run(work.dir, ['cache', 'save', 'env-key', 'deps', '--json'], { HOARD_REMOTE: url });
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.json.saved, true);
    const lines = await run(
      work.dir,
      ['cache', 'restore', 'x', 'deps', '--json', '--restore-keys', 'nope-\nenv-\n'],
      {
        HOARD_REMOTE: url,
      },
    );
    assert.equal(lines.json.hit, 'partial');
    assert.equal(lines.json.matchedKey, 'env-key');
  });

  it('usage errors exit 1 with a code, and change nothing', async () => {
    for (const args of [
      ['cache', 'save', 'a\tb', 'deps'],
      ['cache', 'save', 'k', 'deps', 'deps/a'],
      ['cache', 'save', 'k', 'deps', '--scope', 'a/b'],
      ['cache', 'restore', 'k', 'deps', '--restore-keys', 'a\u0001b'],
    ]) {
      const r = await run(work.dir, [...args, '--remote', url, '--json']);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal((r.json.error as { code: string }).code, 'HOARD_EUSAGE', args.join(' '));
    }
    const l = await run(work.dir, ['cache', 'list', '--remote', url, '--json']);
    assert.deepEqual(
      (l.json.entries as { key: string }[]).map((e) => e.key),
      ['env-key'],
    );
  });
});
