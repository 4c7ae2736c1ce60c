// The settings schema: every operator setting of `hoard serve` can be set by
// flag, by environment variable and by config file (each section), in the
// documented precedence; malformed values and unknown keys are errors that
// say where; booleans parse one way everywhere.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { SERVE_SETTINGS } from '../../src/cli/serve-features.ts';
import { addSettingFlags } from '../../src/cli/setting-flags.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { namesOf, resolveGroup, type Setting, type SettingsGroup } from '../../src/core/settings.ts';
import { resolveGitSettings } from '../../src/git/git-feature.ts';
import { loadLayers } from '../../src/server/config.ts';

/** A raw value (as text) of `s` that differs for n = 1, 2, 3, and the value it must resolve to. */
function sample(prop: string, s: Setting<unknown>, n: number): { raw: string; file: unknown; want: unknown } {
  switch (s.type) {
    case 'size':
      return { raw: `${n}MiB`, file: `${n}MiB`, want: n * 1024 * 1024 };
    case 'duration':
      return { raw: `${n}s`, file: `${n}s`, want: n * 1000 };
    case 'boolean': {
      const b = n % 2 === 1;
      return { raw: String(b), file: b, want: b };
    }
    case 'integer':
      return { raw: String(n), file: n, want: n };
    case 'list':
      return { raw: `p${n}/,q${n}/`, file: [`p${n}/`, `q${n}/`], want: [`p${n}/`, `q${n}/`] };
    case 'map':
      return {
        raw: `n${n}=file:///u${n}`,
        file: { [`n${n}`]: `file:///u${n}` },
        want: { [`n${n}`]: `file:///u${n}` },
      };
    case 'choice': {
      const choices = s.choices ?? [];
      const c = choices[n % choices.length];
      return { raw: c, file: c, want: c };
    }
    default: {
      const v = prop === 'listen' ? `127.0.0.1:${1000 + n}` : `value-${n}`;
      return { raw: v, file: v, want: v };
    }
  }
}

function each(fn: (g: SettingsGroup, prop: string, s: Setting<unknown>) => void): void {
  for (const g of SERVE_SETTINGS) for (const [prop, s] of Object.entries(g.settings)) fn(g, prop, s);
}

async function resolveAll(flags: Record<string, unknown>, env: NodeJS.ProcessEnv) {
  const layers = await loadLayers(SERVE_SETTINGS, flags as Record<string, string>, env);
  return new Map(SERVE_SETTINGS.map((g) => [g.section, resolveGroup(g, layers) as Record<string, unknown>]));
}

describe('settings schema', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-settings-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('every setting by file, by env and by flag; flag > env > file > default', async () => {
    const doc: Record<string, unknown> = {};
    const env: NodeJS.ProcessEnv = {};
    const flags: Record<string, unknown> = {};
    const fileOnly: Record<string, unknown> = {};
    each((g, prop, s) => {
      const n = namesOf(g, prop);
      const table = g.section ? ((doc[g.section] ??= {}) as Record<string, unknown>) : doc;
      table[n.key] = sample(prop, s, 1).file;
      fileOnly[n.key] = true;
    });
    const path = join(dir, 'all.json');
    await writeFile(path, JSON.stringify(doc));
    const fromFile = await resolveAll({ config: path }, {});
    each((g, prop, s) => {
      assert.deepEqual(
        fromFile.get(g.section)?.[prop],
        sample(prop, s, 1).want,
        `file: ${namesOf(g, prop).key}`,
      );
      env[namesOf(g, prop).env] = sample(prop, s, 2).raw;
    });
    const fromEnv = await resolveAll({ config: path }, env);
    each((g, prop, s) => {
      const want = sample(prop, s, 2).want;
      // Map settings merge layers by name; the others replace.
      const expected =
        s.type === 'map' ? { ...(sample(prop, s, 1).want as object), ...(want as object) } : want;
      assert.deepEqual(fromEnv.get(g.section)?.[prop], expected, `env: ${namesOf(g, prop).env}`);
      flags[namesOf(g, prop).attr] = s.repeatable ? [sample(prop, s, 3).raw] : sample(prop, s, 3).raw;
    });
    const fromFlags = await resolveAll({ config: path, ...flags }, env);
    each((g, prop, s) => {
      const want = sample(prop, s, 3).want;
      const expected =
        s.type === 'map'
          ? {
              ...(sample(prop, s, 1).want as object),
              ...(sample(prop, s, 2).want as object),
              ...(want as object),
            }
          : want;
      assert.deepEqual(fromFlags.get(g.section)?.[prop], expected, `flag: ${namesOf(g, prop).flag}`);
    });
    // Nothing given: the declared defaults.
    const none = await resolveAll({}, {});
    each((g, prop, s) => assert.deepEqual(none.get(g.section)?.[prop], s.default));
  });

  it('[git] max-staleness = "5s" (flag spelling) takes effect, in [git] and in [server.git]', async () => {
    const a = join(dir, 'git.toml');
    await writeFile(a, 'listen = "127.0.0.1:0"\n[git]\nmax-staleness = "5s"\nallow-push-through = true\n');
    const s = await resolveGitSettings({ config: a }, {});
    assert.equal(s.maxStalenessMs, 5000);
    assert.equal(s.allowPushThrough, true);
    const b = join(dir, 'server-git.toml');
    await writeFile(b, '[server]\nlisten = "127.0.0.1:0"\n[server.git]\nmax-staleness = "6s"\n');
    assert.equal((await resolveGitSettings({ config: b }, {})).maxStalenessMs, 6000);
  });

  it('an unknown key names the key, the file and the closest known key', async () => {
    const path = join(dir, 'typo.toml');
    await writeFile(path, '[git]\nmax-stalenes = "5s"\n');
    await assert.rejects(loadLayers(SERVE_SETTINGS, { config: path }, {}), (e) => {
      assert.ok(isHoardError(e, 'HOARD_ECONFIG'));
      assert.match(e.message, /max-stalenes/);
      assert.ok(e.message.includes(path));
      assert.match(e.hint ?? '', /did you mean "max-staleness"/);
      return true;
    });
    const section = join(dir, 'section.toml');
    await writeFile(section, '[gti]\nmax-staleness = "5s"\n');
    await assert.rejects(loadLayers(SERVE_SETTINGS, { config: section }, {}), (e) => {
      assert.ok(isHoardError(e, 'HOARD_ECONFIG'));
      assert.match(e.hint ?? '', /did you mean "git"/);
      return true;
    });
  });

  it('booleans parse one way: "maybe" is an error for every boolean, from every source', async () => {
    let checked = 0;
    for (const g of SERVE_SETTINGS)
      for (const [prop, s] of Object.entries(g.settings)) {
        if (s.type !== 'boolean') continue;
        const n = namesOf(g, prop);
        for (const [flags, env, where] of [
          [{}, { [n.env]: 'maybe' }, n.env],
          [{ [n.attr]: 'maybe' }, {}, n.flag],
        ] as const) {
          const layers = await loadLayers(SERVE_SETTINGS, flags, env);
          assert.throws(
            () => resolveGroup(g, layers),
            (e) => isHoardError(e, 'HOARD_ECONFIG') && e.message.includes(where) && /boolean/.test(e.message),
          );
        }
        for (const [text, want] of [
          ['yes', true],
          ['off', false],
          ['1', true],
          ['FALSE', false],
        ] as const)
          assert.equal(resolveGroup(g, await loadLayers(SERVE_SETTINGS, {}, { [n.env]: text }))[prop], want);
        checked++;
      }
    assert.ok(checked >= 2, 'public-read and git allow-push-through at least');
  });

  it('every boolean flag turns on bare and off with no-, over the variable; absent, the variable decides', async () => {
    let checked = 0;
    const parse = (argv: string[]) =>
      addSettingFlags(new Command().exitOverride(), SERVE_SETTINGS).parse(argv, { from: 'user' }).opts();
    for (const g of SERVE_SETTINGS)
      for (const [prop, s] of Object.entries(g.settings)) {
        if (s.type !== 'boolean') continue;
        const n = namesOf(g, prop);
        const off = `--no-${n.flag.slice(2)}`;
        for (const [argv, env, want] of [
          [[off], 'true', false],
          [[n.flag], 'false', true],
          [[], 'true', true],
          [[], 'false', false],
          [[off], undefined, false],
        ] as const) {
          const layers = await loadLayers(
            SERVE_SETTINGS,
            parse([...argv]),
            env === undefined ? {} : { [n.env]: env },
          );
          assert.equal(resolveGroup(g, layers)[prop], want, `${argv.join(' ')} with ${n.env}=${env}`);
        }
        checked++;
      }
    assert.ok(checked >= 3, 'public-read, git allow-push-through and snapshots prebuild-anchors at least');
  });

  it('a malformed value names its source and key', async () => {
    const path = join(dir, 'bad.toml');
    await writeFile(path, '[git]\nfetch-timeout = "soon"\n');
    const layers = await loadLayers(SERVE_SETTINGS, { config: path }, {});
    const git = SERVE_SETTINGS.find((g) => g.section === 'git') as SettingsGroup;
    assert.throws(
      () => resolveGroup(git, layers),
      (e) =>
        isHoardError(e, 'HOARD_ECONFIG') && e.message.includes(path) && e.message.includes('fetch-timeout'),
    );
  });

  it('hoard serve: --help lists the generated flags; a bad config file stops start-up with a clear error', async () => {
    const bin = join(import.meta.dirname, '../../bin/hoard.js');
    const help = spawnSync(process.execPath, [bin, 'serve', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    each((g, prop) => assert.ok(help.stdout.includes(namesOf(g, prop).flag), namesOf(g, prop).flag));
    const path = join(dir, 'serve-bad.toml');
    await writeFile(path, 'listen = "127.0.0.1:0"\nmax-memroy = "1GiB"\n');
    const run = spawnSync(process.execPath, [bin, 'serve', '--config', path, '--data', join(dir, 'd')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /max-memroy/);
    assert.match(run.stderr, /did you mean "max-memory"/);
    assert.match(run.stderr, /HOARD_ECONFIG/);
    assert.doesNotMatch(run.stderr, /serving/);
  });
});
