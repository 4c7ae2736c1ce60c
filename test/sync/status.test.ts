// status() costs one ref read and one stat walk: no blob is read or written,
// no ref is changed, nothing in the folder is written (not even the stat
// cache), whatever the state.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openRemote, type Remote } from '../../src/remote/remote.ts';
import { push } from '../../src/sync/push.ts';
import { status } from '../../src/sync/status.ts';
import { countingRemote, listAll, tempDir, writeFiles } from './helpers.ts';

describe('status', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let remote: Remote;
  before(async () => {
    tmp = await tempDir('hoard-status-');
    remote = await openRemote(join(tmp.dir, 'r'), { create: true });
  });
  after(async () => {
    await remote.close();
    await tmp.cleanup();
  });

  it('one ref read, no blob read or written, nothing written locally', async () => {
    const dir = join(tmp.dir, 'd');
    await writeFiles(dir, { a: 'a\n', 'sub/b': 'b\n' });
    const c0 = countingRemote(remote);
    const fresh = await status({ dir, remote: c0.remote, ref: 's/main' });
    assert.equal(fresh.summary, 'unsynced');
    assert.equal(fresh.wouldPush, true);
    assert.equal(fresh.wouldPull, false);
    assert.deepEqual([...c0.calls], [['refs.get', 1]]);

    await push({ dir, remote, ref: 's/main' });
    await writeFiles(dir, { a: 'changed\n', c: 'new\n' });
    const files = await listAll(dir);
    const c = countingRemote(remote);
    const r = await status({ dir, remote: c.remote, ref: 's/main' });
    assert.equal(r.summary, 'ahead');
    assert.deepEqual(
      r.local.changed.map((e) => e.path),
      ['a'],
    );
    assert.deepEqual(
      r.local.added.map((e) => e.path),
      ['c'],
    );
    assert.deepEqual([...c.calls], [['refs.get', 1]]);
    assert.deepEqual(await listAll(dir), files, 'status wrote nothing in the folder');
  });
});
