// The wants of an upload-pack request that are the mirror's own ref tips are
// known present without a git process (src/git/ref-tips.ts); everything else
// still goes to `git cat-file`, and a fetch when missing. Real repositories,
// real git; "no git process" is counted with gitChildren().

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { gitChildren } from '../../src/git/git-process.ts';
import { MirrorManager } from '../../src/git/mirror-manager.ts';
import { LOOSE_REFS_MAX, notRefTips } from '../../src/git/ref-tips.ts';
import { parseUpstreamSpec, Upstreams } from '../../src/git/upstreams.ts';
import { commitUpstream, gitSync, makeUpstream, tempDir } from './helpers/harness.ts';

const randomId = () => randomBytes(20).toString('hex');

describe('notRefTips (ref files read without git)', () => {
  const tmp = tempDir();
  let repo: string;
  let c1: string;
  let c2: string;
  let c3: string;
  let tagObject: string;
  after(() => tmp.cleanup());

  before(() => {
    repo = makeUpstream(tmp.path, 'r', 0);
    c1 = commitUpstream(repo, 'one');
    c2 = commitUpstream(repo, 'two');
    gitSync(['tag', '-a', '-m', 'release', 'v1', c1], repo);
    tagObject = gitSync(['rev-parse', 'refs/tags/v1'], repo);
    gitSync(['pack-refs', '--all'], repo); // main and v1 packed, v1 with its peeled line
    c3 = commitUpstream(repo, 'three', 'topic'); // a loose ref
  });

  test('packed tips, peeled tag targets and loose tips are known; other ids are not', async () => {
    const stranger = randomId();
    assert.deepEqual(await notRefTips(repo, [c2, tagObject, c1, c3, stranger]), [stranger]);
    // c1 is known only as v1's peeled target (no ref names it): the `^` line of packed-refs.
    assert.match(readFileSync(join(repo, 'packed-refs'), 'latin1'), new RegExp(`^\\^${c1}$`, 'm'));
  });

  test('a ref moved after the packed-refs were cached is seen at the next call', async () => {
    const c4 = commitUpstream(repo, 'four'); // main now loose, at c4
    assert.deepEqual(await notRefTips(repo, [c4]), []);
    gitSync(['pack-refs', '--all'], repo); // a new packed-refs file (rename): re-read
    assert.deepEqual(await notRefTips(repo, [c4, c3]), []);
  });

  test('symbolic refs, garbage, lock files and absent files name nothing', async () => {
    const id = randomId();
    const other = randomId();
    writeFileSync(join(repo, 'refs', 'heads', 'garbage'), `x${id}\n`);
    writeFileSync(join(repo, 'refs', 'heads', 'being-written.lock'), `${other}\n`);
    writeFileSync(join(repo, 'refs', 'heads', 'sym'), 'ref: refs/heads/main\n');
    assert.deepEqual(await notRefTips(repo, [id, other]), [id, other]);
    assert.deepEqual(await notRefTips(join(tmp.path, 'nowhere.git'), [id]), [id]);
  });

  test(`more than ${LOOSE_REFS_MAX} loose refs: loose refs are not read (git answers), packed ones still are`, async () => {
    const many = join(repo, 'refs', 'many');
    mkdirSync(many);
    const first = randomId();
    for (let i = 0; i <= LOOSE_REFS_MAX; i++)
      writeFileSync(join(many, `r${i}`), `${i === 0 ? first : randomId()}\n`);
    const main = gitSync(['rev-parse', 'refs/heads/main'], repo);
    assert.deepEqual(await notRefTips(repo, [first, main]), [first]);
  });
});

describe('MirrorManager.ensureObjects: ref tips without git, the rest as before', () => {
  const tmp = tempDir();
  let upstream: string;
  let mirrors: MirrorManager;

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 3);
    gitSync(['tag', '-a', '-m', 'release', 'v1', 'main~1'], upstream);
    mirrors = new MirrorManager({
      dataDir: join(tmp.path, 'data'),
      upstreams: new Upstreams([parseUpstreamSpec(`h=file://${join(tmp.path, 'up')}`)]),
      maxStalenessMs: 0,
      registry: new Registry(),
    });
    await mirrors.start();
    await mirrors.open('h/app.git', { refs: true });
    // The creation's maintenance runs in the background: queued behind it on the mirror's
    // lock, this one ends after it, so no background git process muddles the counts below.
    await mirrors.maintain('h/app.git');
  });
  after(async () => {
    await mirrors.close();
    tmp.cleanup();
  });

  test('tips and tag objects: no git process; an older commit: cat-file, present', async () => {
    const tips = [gitSync(['rev-parse', 'main'], upstream), gitSync(['rev-parse', 'refs/tags/v1'], upstream)];
    const before = gitChildren().spawned;
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', tips), []);
    assert.equal(gitChildren().spawned, before, 'no git child for the mirror’s own tips');
    const root = gitSync(['rev-list', '--max-parents=0', 'main'], upstream);
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [...tips, root]), []);
    assert.equal(gitChildren().spawned, before + 1, 'one cat-file for the id that is no tip');
  });

  test('after a refresh brings a new commit, it is a known tip; a stranger is still missing', async () => {
    const c = commitUpstream(upstream, 'new');
    await mirrors.open('h/app.git', { refs: true }); // maxStaleness 0: fetches
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [c]), []); // a loose ref now
    await mirrors.maintain('h/app.git'); // refs packed again; no background git below
    const before = gitChildren().spawned;
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [c]), []);
    assert.equal(gitChildren().spawned, before);
    const bogus = randomId();
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [c, bogus]), [bogus]);
  });
});
