// ls-refs answered from a repository's ref files (src/git/local-ls-refs.ts)
// must be byte-for-byte what `git upload-pack` answers, for every argument
// combination clients send, or null (git is asked). Compared here with the
// real upload-pack on repositories with branches, lightweight, annotated and
// nested tags, a tag of a blob, refs/pull/*, an unborn HEAD, loose refs
// beside packed ones; and the cases it must leave to git.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localLsRefs } from '../../src/git/local-ls-refs.ts';
import { FLUSH_PKT, pktLine } from '../../src/git/pkt-line.ts';

const env = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
  GIT_AUTHOR_DATE: '1700000000 +0000',
  GIT_COMMITTER_DATE: '1700000000 +0000',
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();

/** What `git upload-pack` answers to `ls-refs` with these argument lines. */
function gitLsRefs(dir: string, args: string[]): Buffer {
  const request = Buffer.concat([
    pktLine('command=ls-refs\n'),
    pktLine('agent=git/2.39.5\n'),
    pktLine('object-format=sha1\n'),
    Buffer.from('0001'),
    ...args.map((a) => pktLine(`${a}\n`)),
    FLUSH_PKT,
  ]);
  return execFileSync('git', ['upload-pack', '--stateless-rpc', dir], {
    env: { ...env, GIT_PROTOCOL: 'version=2' },
    input: request,
  });
}

const FLAG_SETS = [[], ['symrefs'], ['peel'], ['symrefs', 'peel'], ['symrefs', 'peel', 'unborn'], ['unborn']];
const PREFIX_SETS = [
  [],
  ['HEAD'],
  ['refs/heads/'],
  ['refs/tags/'],
  // What `git fetch origin main` with tag following sends, and a clone.
  ['refs/heads/main', 'refs/tags/'],
  ['HEAD', 'refs/heads/', 'refs/tags/'],
  ['refs/heads/ma'],
  ['refs/'],
  ['refs/heads/', 'refs/heads/main'],
  ['refs/tags/v1', 'refs/heads/'],
  ['refs/pull/'],
  ['nothing/'],
  [''],
];
const combos = FLAG_SETS.flatMap((f) => PREFIX_SETS.map((p) => [...f, ...p.map((x) => `ref-prefix ${x}`)]));

/** Compares every combination; returns how many were answered locally (the rest: null). */
async function compareAll(dir: string): Promise<{ local: number; total: number }> {
  let local = 0;
  for (const args of combos) {
    const ours = await localLsRefs(dir, args);
    if (ours === null) continue;
    local++;
    assert.equal(ours.toString('latin1'), gitLsRefs(dir, args).toString('latin1'), JSON.stringify(args));
  }
  return { local, total: combos.length };
}

describe('ls-refs from the ref files', () => {
  let root: string;
  let work: string;
  let bare: string;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'hoard-lsrefs-'));
    work = join(root, 'work');
    git(root, 'init', '-q', '-b', 'main', work);
    writeFileSync(join(work, 'a.txt'), 'a\n');
    git(work, 'add', '.');
    git(work, 'commit', '-q', '-m', 'one');
    git(work, 'tag', 'v0-light');
    git(work, 'tag', '-a', '-m', 'annotated', 'v1.0');
    git(work, '-c', 'advice.nestedTag=false', 'tag', '-a', '-m', 'nested', 'v1.0-nested', 'v1.0');
    const blob = git(work, 'hash-object', '-w', 'a.txt');
    git(work, 'tag', '-a', '-m', 'of a blob', 'blob-tag', blob);
    writeFileSync(join(work, 'b.txt'), 'b\n');
    git(work, 'add', '.');
    git(work, 'commit', '-q', '-m', 'two');
    git(work, 'tag', '-a', '-m', 'v1.1', 'v1.1');
    git(work, 'branch', 'release/1.x', 'HEAD~1');
    git(work, 'branch', 'feature.dots-and_under+plus');
    git(work, 'branch', 'mainline');
    bare = join(root, 'bare.git');
    git(root, 'clone', '-q', '--mirror', work, bare);
    git(bare, 'update-ref', 'refs/pull/1/head', 'HEAD~1');
    git(bare, 'pack-refs', '--all', '--prune');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('equals git upload-pack for every argument combination when all refs are packed', async () => {
    const { local, total } = await compareAll(bare);
    assert.equal(local, total, 'every combination answered from the files');
  });

  it('leaves loose refs that would be shown to git, and answers the rest exactly', async () => {
    const dir = join(root, 'loose.git');
    git(root, 'clone', '-q', '--mirror', bare, dir);
    git(dir, 'pack-refs', '--all', '--prune');
    // A branch moved after the last pack-refs (a mirror refresh does this): loose, newer than packed.
    git(dir, 'update-ref', 'refs/heads/release/1.x', 'main');
    const { local } = await compareAll(dir);
    assert.ok(local > 0, 'combinations not touching refs/heads/ are still local');
    assert.equal(await localLsRefs(dir, ['ref-prefix refs/heads/']), null);
    assert.equal(await localLsRefs(dir, []), null);
    assert.notEqual(await localLsRefs(dir, ['ref-prefix refs/tags/']), null);
    // HEAD's branch loose: git reads it.
    git(dir, 'update-ref', 'refs/heads/main', 'main~1');
    assert.equal(await localLsRefs(dir, ['ref-prefix HEAD']), null);
    await compareAll(dir);
  });

  it('an unborn HEAD: `unborn HEAD` with unborn and symrefs, nothing otherwise, as git', async () => {
    const dir = join(root, 'unborn.git');
    git(root, 'clone', '-q', '--mirror', bare, dir);
    git(dir, 'pack-refs', '--all', '--prune');
    git(dir, 'symbolic-ref', 'HEAD', 'refs/heads/not-yet');
    const { local, total } = await compareAll(dir);
    assert.equal(local, total);
    assert.match(
      (await localLsRefs(dir, ['symrefs', 'unborn', 'ref-prefix HEAD']))!.toString(),
      /unborn HEAD symref-target:refs\/heads\/not-yet/,
    );
  });

  it('an empty repository (no packed-refs): git answers', async () => {
    const dir = join(root, 'empty.git');
    git(root, 'init', '-q', '--bare', dir);
    assert.equal(await localLsRefs(dir, ['symrefs', 'unborn']), null);
  });

  it('leaves to git: detached HEAD, hidden refs, lsrefs.unborn, other packed-refs traits, odd names and arguments', async () => {
    const copy = (name: string) => {
      const dir = join(root, `${name}.git`);
      git(root, 'clone', '-q', '--mirror', bare, dir);
      git(dir, 'pack-refs', '--all', '--prune');
      assert.notEqual(readFileSync(join(dir, 'packed-refs'), 'latin1'), '');
      return dir;
    };
    const detached = copy('detached');
    writeFileSync(join(detached, 'HEAD'), `${git(detached, 'rev-parse', 'main')}\n`);
    assert.equal(await localLsRefs(detached, []), null);

    const hidden = copy('hidden');
    git(hidden, 'config', 'uploadpack.hideRefs', 'refs/pull');
    assert.equal(await localLsRefs(hidden, []), null);
    const transferHidden = copy('transfer-hidden');
    git(transferHidden, 'config', 'transfer.hideRefs', 'refs/pull');
    assert.equal(await localLsRefs(transferHidden, []), null);
    const included = copy('included');
    writeFileSync(join(root, 'hide.cfg'), '[uploadpack]\n\thideRefs = refs/pull\n');
    git(included, 'config', 'include.path', join(root, 'hide.cfg'));
    assert.equal(await localLsRefs(included, []), null);
    const unbornCfg = copy('unborn-cfg');
    git(unbornCfg, 'config', 'lsrefs.unborn', 'ignore');
    assert.equal(await localLsRefs(unbornCfg, ['unborn', 'symrefs']), null);

    const traits = copy('traits');
    const file = join(traits, 'packed-refs');
    const text = readFileSync(file, 'latin1');
    writeFileSync(file, text.replace(/^# pack-refs with:.*\n/, '# pack-refs with: peeled sorted \n'));
    assert.equal(await localLsRefs(traits, ['peel']), null);
    writeFileSync(file, text.replace(/^# pack-refs with:.*\n/, ''));
    assert.equal(await localLsRefs(traits, []), null);
    // Unsorted, duplicated, a peeled line without its ref, a bad id, a dangerous name.
    const [header, ...lines] = text.trimEnd().split('\n');
    const refLines = lines.filter((l) => !l.startsWith('^'));
    for (const body of [
      [...refLines].reverse(),
      [refLines[0], refLines[0]],
      [`^${'a'.repeat(40)}`, ...refLines],
      [`${'g'.repeat(40)} refs/heads/x`],
      [`${'a'.repeat(40)} refs/heads/../../etc`],
      [`${'a'.repeat(40)} refs/heads/x.lock`],
      [`${'a'.repeat(40)} refs/heads/na\u00efve`],
      [`${'a'.repeat(40)} refs/heads/with space`],
    ]) {
      writeFileSync(file, `${[header, ...body].join('\n')}\n`, 'latin1');
      assert.equal(await localLsRefs(traits, []), null, body.join(' | '));
    }

    // Arguments git knows but this does not, or would read differently.
    assert.equal(await localLsRefs(bare, ['ref-prefix refs/heads/', 'bogus']), null);
    assert.equal(await localLsRefs(bare, ['ref-prefix refs/he ads/']), null);
    assert.equal(await localLsRefs(bare, ['ref-prefix refs/h\u00e9ads/']), null);
    assert.equal(await localLsRefs(bare, ['PEEL']), null);
    const many = Array.from({ length: 1025 }, (_, i) => `ref-prefix refs/heads/b${i}`);
    assert.equal(await localLsRefs(bare, many), null);
    // A directory that is not a repository.
    assert.equal(await localLsRefs(join(root, 'work', 'nope'), []), null);
  });
});
