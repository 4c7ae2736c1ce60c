// Cache entry identity: key encoding (valid ref names, prefix-preserving,
// canonical decoding only), versions, and path resolution.

import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { describe, it } from 'node:test';
import { validateRefName, validateRefPrefix } from '../../src/core/ref-name.ts';
import {
  cacheRefName,
  cacheRefPrefix,
  cacheVersion,
  decodeKey,
  encodeKey,
  parseCacheRef,
  resolveCachePath,
  resolveCachePaths,
} from '../../src/sync/cache-key.ts';

const KEYS = [
  'npm-Linux-0123abcd',
  'node-v20.11.0',
  '-leading-dash',
  '@scope+x',
  'a/b/c',
  'x.lock',
  'y.tmp',
  '..',
  'with space and = and %',
  'ünïcödé-键-🔑',
  '_',
];

describe('cache keys', () => {
  it('encode to valid ref names that decode back, and only canonical forms decode', () => {
    const v = cacheVersion(['node_modules']);
    for (const key of KEYS) {
      const name = cacheRefName('default', key, v);
      assert.equal(validateRefName(name), name, key);
      assert.deepEqual(parseCacheRef(name), { scope: 'default', key, version: v }, key);
      assert.equal(decodeKey(encodeKey(key)), key);
    }
    assert.equal(encodeKey('node-v20.1'), 'key=node-v20=2E1');
    assert.equal(decodeKey('key=a=2e'), undefined); // lower-case hex
    assert.equal(decodeKey('key==61'), undefined); // an escaped literal
    assert.equal(decodeKey('key==FF'), undefined); // not UTF-8
    assert.equal(decodeKey('key=a=2'), undefined);
    assert.equal(decodeKey('key='), undefined);
    assert.equal(decodeKey('npm'), undefined);
    assert.equal(parseCacheRef('cache/hoard/default/key=k/not-a-version'), undefined);
    assert.equal(parseCacheRef('cache/turbo/x/y'), undefined);
  });

  it('the encoding of a prefix is a prefix of the encoding (restore keys are one list)', () => {
    const v = cacheVersion(['p']);
    for (const key of KEYS)
      for (let i = 1; i <= key.length; i++) {
        const prefix = key.slice(0, i);
        if (!prefix.isWellFormed()) continue;
        const p = cacheRefPrefix('default', prefix);
        assert.equal(validateRefPrefix(p), p);
        assert.ok(cacheRefName('default', key, v).startsWith(p), `${key} / ${prefix}`);
      }
  });

  it('refuses empty, control-character and over-long keys and bad scopes', () => {
    const v = cacheVersion(['p']);
    for (const bad of ['', 'a\nb', 'tab\t', 'x'.repeat(513)])
      assert.throws(() => cacheRefName('default', bad, v), { code: 'HOARD_EUSAGE' });
    // 512 characters that each take three in the ref name do not fit in one.
    assert.throws(() => cacheRefName('default', '.'.repeat(200), v), /too long once encoded/);
    for (const scope of ['', 'a/b', '-x', '..', 'a b'])
      assert.throws(() => cacheRefName(scope, 'k', v), { code: 'HOARD_EUSAGE' });
  });

  it('versions depend on the path list as typed, its order, and the platform when asked', () => {
    const base = cacheVersion(['node_modules', '~/.npm']);
    assert.match(base, /^[0-9a-f]{64}$/);
    assert.equal(cacheVersion(['node_modules', '~/.npm']), base);
    assert.notEqual(cacheVersion(['~/.npm', 'node_modules']), base);
    assert.notEqual(cacheVersion(['./node_modules', '~/.npm']), base);
    assert.notEqual(cacheVersion(['node_modules', '~/.npm'], { platform: true }), base);
    // No ambiguity from joining: ["a b"] and ["a", "b"] differ.
    assert.notEqual(cacheVersion(['a\u0020b']), cacheVersion(['a', 'b']));
  });

  it('resolves ~, relative and absolute paths; refuses overlapping ones', () => {
    assert.equal(resolveCachePath('~', '/w'), homedir());
    assert.equal(resolveCachePath('~/.npm', '/w'), `${homedir()}/.npm`);
    assert.equal(resolveCachePath('node_modules', '/w'), '/w/node_modules');
    assert.equal(resolveCachePath('/abs/../x', '/w'), '/x');
    assert.equal(resolveCachePath('~user/x', '/w'), '/w/~user/x');
    assert.deepEqual(resolveCachePaths(['a', 'ab', 'a-b'], '/w'), ['/w/a', '/w/ab', '/w/a-b']);
    for (const bad of [
      ['a', 'a/b'],
      ['a/b', 'a'],
      ['a', './a'],
      ['/w/a', 'a'],
      ['.', 'x'],
    ])
      assert.throws(() => resolveCachePaths(bad, '/w'), { code: 'HOARD_EUSAGE' }, bad.join(' '));
    assert.throws(() => resolveCachePaths([], '/w'), { code: 'HOARD_EUSAGE' });
  });
});
