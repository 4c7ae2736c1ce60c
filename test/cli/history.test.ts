// hoard log / ls / diff / cat / rm against a file:// remote, through the real CLI.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hoard, tempDir, writeFiles } from '../sync/helpers.ts';

describe('history commands (file://)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let dir: string;
  let remote: string;
  before(async () => {
    tmp = await tempDir('hoard-hist-');
    dir = join(tmp.dir, 'd');
    remote = join(tmp.dir, 'r');
    await writeFiles(dir, { a: 'one\n' });
    assert.equal((await hoard(['push', dir, remote, '--ref', 't/main', '--message', 'first'])).code, 0);
    await writeFiles(dir, { b: 'two\n' });
    assert.equal((await hoard(['push', dir, remote, '--ref', 't/main', '--message', 'second'])).code, 0);
  });
  after(() => tmp.cleanup());

  it('log lists versions newest first with messages and changes', async () => {
    const r = await hoard(['log', remote, '--ref', 't/main', '--json']);
    assert.equal(r.code, 0);
    const entries = (r.json as { entries: { message: string; changes: { added: number } }[] }).entries;
    assert.deepEqual(
      entries.map((e) => e.message),
      ['second', 'first'],
    );
    assert.equal(entries[0].changes.added, 1);
  });

  it('diff, cat R~1 and rm with a stale version', async () => {
    const d = await hoard(['diff', remote, '--ref', 't/main', '--json']);
    assert.deepEqual(
      (d.json as { added: { path: string }[] }).added.map((e) => e.path),
      ['b'],
    );
    await writeFile(join(dir, 'a'), 'changed\n');
    const local = await hoard(['diff', dir, '--json']);
    assert.deepEqual(
      (local.json as { changed: { path: string }[] }).changed.map((e) => e.path),
      ['a'],
    );
    const c = await hoard(['cat', remote, 't/main~1:a']);
    assert.equal(c.stdout, 'one\n');
    const rm = await hoard(['rm', remote, '--ref', 't/main', '--expect', 'stale']);
    assert.equal(rm.code, 3);
    assert.match(rm.stderr, /HOARD_EREF_CONFLICT/);
    assert.equal((await hoard(['rm', remote, '--ref', 't/main'])).code, 0);
    assert.deepEqual((await hoard(['ls', remote, '--json'])).json?.refs, []);
  });
});
