// The one settings schema. Each operator setting is declared once — type,
// default, one doc line — in a group (a config-file section); its config key,
// flag and environment variable are derived from that declaration:
//
//   group 'git', setting maxStalenessMs { key: 'max-staleness' }
//     file   [git] max-staleness = "5s"     (also max_staleness, maxStaleness)
//     flag   --git-max-staleness 5s
//     env    HOARD_GIT_MAX_STALENESS=5s
//
// The top-level group (no section) spells its keys without a prefix
// (`--listen`, `HOARD_LISTEN`, `listen = …` at the top of the file or in a
// `[server]` table). Flags, env parsing, file parsing and
// docs/configuration.md are all generated from the same objects, so they
// cannot disagree; a test compares the document with the schema.
//
// Values come in layers (file < env < flags, later wins); each raw value
// remembers where it came from, so a malformed one is an error naming the
// file/variable/flag and the key, and an unknown file key is an error with the
// closest known key as a hint. The resolved object is frozen: features read
// their settings from it and nothing else reads process.env.

import { HoardError } from './errors.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** A raw value as a flag, a variable or a config file gives it. */
export type RawValue = string | number | boolean | readonly unknown[] | Record<string, unknown>;

/** Where a raw value came from, for error messages: `config file /etc/hoard.toml [git]`, `HOARD_X`, `--x`. */
interface Sourced {
  value: RawValue;
  where: string;
}

export interface Setting<T> {
  readonly type: string;
  readonly default: T;
  /** One line for --help and docs/configuration.md. */
  readonly doc: string;
  /** Placeholder in --help and docs: SIZE, DURATION, DIR… */
  readonly valueName: string;
  /** Config-file key (kebab-case) within the group's section; default: the property name in kebab-case. */
  readonly key?: string;
  /** Override of the derived flag (without `--`). */
  readonly flag?: string;
  /** Override of the derived environment variable. */
  readonly env?: string;
  /** Map settings merge entries across layers instead of replacing. */
  readonly merge?: boolean;
  /** Repeatable flag (lists of NAME=VALUE). */
  readonly repeatable?: boolean;
  /** The accepted values of a choice. */
  readonly choices?: readonly string[];
  parse(raw: RawValue): T;
  /** Merges two layers of a `merge` setting (later wins per entry). */
  combine?(earlier: T, later: T): T;
  /** The default as the docs show it. */
  show(value: T): string;
}

interface Common<T> {
  doc: string;
  default: T;
  key?: string;
  flag?: string;
  env?: string;
  valueName?: string;
}

function fail(message: string): never {
  throw new Error(message);
}

function scalar(raw: RawValue): string | number | boolean {
  if (typeof raw === 'object') fail(`expected a single value, got ${JSON.stringify(raw)}`);
  return raw;
}

/** Sizes like `512`, `64k`, `256MiB`, `8G` (binary units). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) fail(`not a size: ${JSON.stringify(text)} (use e.g. 512MiB, 8G)`);
  const mult: Record<string, number> = { '': 1, k: KiB, m: MiB, g: GiB, t: GiB * 1024 };
  return Math.floor(Number(m[1]) * mult[m[2].toLowerCase()]);
}

/** Durations like `10s`, `500ms`, `2m`, `1h`, `0`; a bare number is seconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) fail(`not a duration: ${JSON.stringify(text)} (use e.g. 10s, 500ms, 2m)`);
  const mult: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  return Math.floor(Number(m[1]) * mult[(m[2] ?? 's').toLowerCase()]);
}

/** The one boolean syntax, for flags, variables and files alike. */
export function parseBoolean(raw: RawValue): boolean {
  const v = scalar(raw);
  if (typeof v === 'boolean') return v;
  const s = String(v).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  return fail(`not a boolean: ${JSON.stringify(v)} (use true or false)`);
}

export function showSize(n: number): string {
  if (n === 0) return '0';
  for (const [unit, mult] of [
    ['GiB', GiB],
    ['MiB', MiB],
    ['KiB', KiB],
  ] as const)
    if (n % mult === 0) return `${n / mult}${unit}`;
  return String(n);
}

export function showDuration(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

function make<T>(
  type: string,
  valueName: string,
  o: Common<T>,
  parse: (raw: RawValue) => T,
  show: (v: T) => string,
  extra: Partial<Setting<T>> = {},
): Setting<T> {
  return {
    type,
    valueName: o.valueName ?? valueName,
    default: o.default,
    doc: o.doc,
    key: o.key,
    flag: o.flag,
    env: o.env,
    parse,
    show,
    ...extra,
  };
}

/** Builders of settings, one per value syntax. */
export const setting = {
  string(o: Common<string>): Setting<string> {
    return make(
      'string',
      'VALUE',
      o,
      (r) => String(scalar(r)),
      (v) => (v === '' ? 'none' : v),
    );
  },
  optionalString(o: Omit<Common<string | undefined>, 'default'>): Setting<string | undefined> {
    return make(
      'string',
      'VALUE',
      { ...o, default: undefined },
      (r) => {
        const s = String(scalar(r));
        return s === '' ? undefined : s;
      },
      () => 'none',
    );
  },
  size(o: Common<number>): Setting<number> {
    return make(
      'size',
      'SIZE',
      o,
      (r) => {
        const v = scalar(r);
        if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
        if (typeof v === 'boolean') fail(`not a size: ${v}`);
        // A rate may be written per second: `16MiB/s` is the size 16MiB.
        return parseSize(String(v).replace(/\/s$/i, ''));
      },
      showSize,
    );
  },
  /**
   * Durations in milliseconds; a bare number (in a file) is seconds.
   * `positive`: 0 is refused (a timeout that must not be switched off).
   */
  duration(o: Common<number> & { positive?: boolean }): Setting<number> {
    return make(
      'duration',
      'DURATION',
      o,
      (r) => {
        const v = scalar(r);
        let ms: number;
        if (typeof v === 'number' && Number.isFinite(v) && v >= 0) ms = Math.round(v * 1000);
        else if (typeof v === 'boolean') fail(`not a duration: ${v}`);
        else ms = parseDuration(String(v));
        if (o.positive && ms <= 0) fail('must be greater than 0');
        return ms;
      },
      showDuration,
    );
  },
  boolean(o: Common<boolean>): Setting<boolean> {
    return make('boolean', '', o, parseBoolean, (v) => String(v));
  },
  /**
   * A whole number; `auto`: the word `auto` is accepted and means `autoMeans`
   * (default 0), a value derived at run time.
   */
  integer(
    o: Common<number> & { min?: number; max?: number; auto?: boolean; autoMeans?: number },
  ): Setting<number> {
    const autoMeans = o.autoMeans ?? 0;
    const { min = 0, max = Number.MAX_SAFE_INTEGER } = o;
    return make(
      'integer',
      o.auto ? 'N|auto' : 'N',
      o,
      (r) => {
        const v = scalar(r);
        if (o.auto && String(v).trim().toLowerCase() === 'auto') return autoMeans;
        const n = typeof v === 'number' ? v : /^\s*-?\d+\s*$/.test(String(v)) ? Number(v) : Number.NaN;
        if (!Number.isSafeInteger(n)) fail(`not an integer: ${JSON.stringify(v)}`);
        if (n < min || n > max) fail(`${n} is out of range ${min}..${max}`);
        return n;
      },
      (v) => (o.auto && v === autoMeans ? 'auto' : String(v)),
    );
  },
  choice<C extends string>(o: Common<C> & { choices: readonly C[] }): Setting<C> {
    return make(
      'choice',
      o.choices.join('|'),
      o,
      (r) => {
        const s = String(scalar(r)).trim();
        if (!(o.choices as readonly string[]).includes(s))
          fail(`${JSON.stringify(s)} is not one of ${o.choices.join(', ')}`);
        return s as C;
      },
      (v) => v,
      { choices: o.choices },
    );
  },
  /**
   * A list: an array in files; comma- or space-separated in variables and
   * flags (a repeatable flag). A later layer replaces it.
   */
  list(o: Common<readonly string[]>): Setting<readonly string[]> {
    return make(
      'list',
      'LIST',
      o,
      (r) => {
        // A string may hold several items; an array item (a file's entry, one repeated flag) is
        // split at commas only, so an item with a space stays one item and fails its check.
        const items = Array.isArray(r)
          ? r.flatMap((x) => String(x).split(','))
          : String(scalar(r)).split(/[\s,]+/);
        return Object.freeze(items.map((s) => s.trim()).filter((s) => s.length > 0));
      },
      (v) => (v.length === 0 ? 'none' : v.join(',')),
      { repeatable: true },
    );
  },
  /**
   * NAME=VALUE entries: a table in files (`[git.upstreams]` NAME = "URL") or
   * an array of "NAME=VALUE", space-separated in a variable, a repeatable
   * flag. Layers merge by name, the later layer winning per name.
   */
  map(
    o: Omit<Common<Readonly<Record<string, string>>>, 'default'>,
  ): Setting<Readonly<Record<string, string>>> {
    const entry = (s: string, into: Record<string, string>) => {
      const i = s.indexOf('=');
      if (i <= 0) fail(`expected NAME=VALUE, got ${JSON.stringify(s)}`);
      into[s.slice(0, i).trim()] = s.slice(i + 1).trim();
    };
    return make(
      'map',
      'NAME=VALUE',
      { ...o, default: Object.freeze({}) },
      (r) => {
        const out: Record<string, string> = {};
        if (Array.isArray(r)) for (const s of r) entry(String(s), out);
        else if (typeof r === 'object') {
          for (const [k, v] of Object.entries(r)) {
            if (typeof v === 'object' && v !== null)
              fail(`${k}: expected a string, got ${JSON.stringify(v)}`);
            out[k] = String(v);
          }
        } else
          for (const s of String(r)
            .split(/\s+/)
            .filter((x) => x.length > 0))
            entry(s, out);
        return Object.freeze(out);
      },
      (v) =>
        Object.keys(v).length === 0
          ? 'none'
          : Object.entries(v)
              .map(([k, x]) => `${k}=${x}`)
              .join(' '),
      { merge: true, repeatable: true, combine: (a, b) => Object.freeze({ ...a, ...b }) },
    );
  },
};

export type SettingsShape = Record<string, Setting<unknown>>;
export type ValuesOf<S extends SettingsShape> = {
  readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never;
};

export interface SettingsGroup<S extends SettingsShape = SettingsShape> {
  /** Config-file section and flag/env prefix; undefined for the top level. */
  readonly section: string | undefined;
  /** Heading in docs/configuration.md. */
  readonly title: string;
  readonly settings: S;
}

export function defineSettings<S extends SettingsShape>(
  section: string | undefined,
  title: string,
  settings: S,
): SettingsGroup<S> {
  return Object.freeze({ section, title, settings });
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The derived names of one setting. */
export interface SettingNames {
  /** Config-file key within the section, kebab-case. */
  key: string;
  /** `--git-max-staleness` */
  flag: string;
  /** commander's attribute name for the flag: `gitMaxStaleness`. */
  attr: string;
  /** `HOARD_GIT_MAX_STALENESS` */
  env: string;
}

export function namesOf(group: SettingsGroup, prop: string): SettingNames {
  const s = group.settings[prop];
  const key = s.key ?? kebab(prop);
  const full = s.flag ?? (group.section ? `${group.section}-${key}` : key);
  return {
    key,
    flag: `--${full}`,
    attr: full.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
    env: s.env ?? `HOARD_${full.toUpperCase().replace(/-/g, '_')}`,
  };
}

/** One layer of raw values: group section → property → sourced raw value. */
export type Layer = Map<string, Sourced>;

function slot(group: SettingsGroup, prop: string): string {
  return `${group.section ?? ''}\0${prop}`;
}

export function layerFromEnv(groups: readonly SettingsGroup[], env: NodeJS.ProcessEnv): Layer {
  const layer: Layer = new Map();
  for (const g of groups)
    for (const prop of Object.keys(g.settings)) {
      const { env: name } = namesOf(g, prop);
      const v = env[name];
      if (v !== undefined && v !== '')
        layer.set(slot(g, prop), { value: v, where: `environment variable ${name}` });
    }
  return layer;
}

/** Parsed commander options (attribute names as namesOf().attr). */
export function layerFromFlags(groups: readonly SettingsGroup[], flags: Record<string, unknown>): Layer {
  const layer: Layer = new Map();
  for (const g of groups)
    for (const prop of Object.keys(g.settings)) {
      const { attr, flag } = namesOf(g, prop);
      const v = flags[attr];
      if (v === undefined) continue;
      layer.set(slot(g, prop), { value: v as RawValue, where: flag });
    }
  return layer;
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/** `max_staleness`, `maxStaleness` and `max-staleness` name one key. */
function canonicalKey(key: string): string {
  return key.replace(/_/g, '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Settings from a parsed config file. Top-level settings sit at the top of
 * the file or in a `[server]` table (when one exists only it is read for
 * them); each other group has its `[section]` table, at the top or inside
 * `[server]`. `partial`: only some groups are read now, so tables of the
 * others are skipped instead of being unknown.
 */
export function layerFromDocument(
  groups: readonly SettingsGroup[],
  doc: unknown,
  path: string,
  opts: { partial?: boolean } = {},
): Layer {
  const layer: Layer = new Map();
  if (!isTable(doc))
    throw new HoardError('HOARD_ECONFIG', `config file ${path} must hold a table of settings`, {
      hint: 'see docs/configuration.md',
    });
  const server = isTable(doc.server) ? doc.server : undefined;
  const sections = new Map(groups.filter((g) => g.section).map((g) => [g.section as string, g]));
  const top = groups.find((g) => g.section === undefined);
  const read = (group: SettingsGroup, table: Record<string, unknown>, tableName: string) => {
    const byKey = new Map(Object.keys(group.settings).map((p) => [namesOf(group, p).key, p]));
    for (const [rawKey, value] of Object.entries(table)) {
      if (group === top && (sections.has(rawKey) || rawKey === 'server')) continue;
      if (group === top && opts.partial && isTable(value)) continue;
      const where = `config file ${path}${tableName ? ` [${tableName}]` : ''}`;
      const prop = byKey.get(canonicalKey(rawKey));
      if (!prop) {
        const known = isTable(value) && group === top ? [...sections.keys()] : [...byKey.keys()];
        const guess = closest(canonicalKey(rawKey), known);
        throw new HoardError('HOARD_ECONFIG', `${where}: unknown setting ${JSON.stringify(rawKey)}`, {
          hint: guess
            ? `did you mean ${JSON.stringify(guess)}?`
            : 'see docs/configuration.md for the settings',
        });
      }
      if (value === null || value === undefined) continue;
      layer.set(slot(group, prop), {
        value: value as RawValue,
        where: `${where} ${namesOf(group, prop).key}`,
      });
    }
  };
  if (top) read(top, server ?? doc, server ? 'server' : '');
  for (const [name, group] of sections) {
    const table = (server && isTable(server[name]) ? server[name] : undefined) ?? doc[name];
    if (table === undefined) continue;
    if (!isTable(table))
      throw new HoardError('HOARD_ECONFIG', `config file ${path}: [${name}] must be a table`);
    read(group, table, server && isTable(server[name]) ? `server.${name}` : name);
  }
  return layer;
}

export type ResolvedGroup<G> = G extends SettingsGroup<infer S> ? ValuesOf<S> : never;

/** Values of a group from layers (later wins; map settings merge). Frozen. */
export function resolveGroup<S extends SettingsShape>(
  group: SettingsGroup<S>,
  layers: readonly Layer[],
): ValuesOf<S> {
  const out: Record<string, unknown> = {};
  for (const [prop, s] of Object.entries(group.settings)) {
    let value: unknown = s.default;
    for (const layer of layers) {
      const raw = layer.get(slot(group, prop));
      if (!raw) continue;
      let parsed: unknown;
      try {
        parsed = s.parse(raw.value);
      } catch (err) {
        throw new HoardError('HOARD_ECONFIG', `${raw.where}: ${(err as Error).message}`, {
          hint: `${namesOf(group, prop).flag} takes ${s.valueName || 'true or false'}: ${s.doc}`,
        });
      }
      value = s.merge && s.combine ? s.combine(value, parsed) : parsed;
    }
    out[prop] = value;
  }
  return Object.freeze(out) as ValuesOf<S>;
}

/** docs/configuration.md's table of one group. */
export function renderGroupDoc(group: SettingsGroup): string {
  const lines = [
    `### ${group.title}`,
    '',
    group.section
      ? `Config file: the \`[${group.section}]\` table.`
      : 'Config file: top-level keys (or a `[server]` table).',
    '',
    '| flag | env | file key | default | meaning |',
    '|---|---|---|---|---|',
  ];
  for (const [prop, s] of Object.entries(group.settings)) {
    const n = namesOf(group, prop);
    const flag = s.valueName ? `${n.flag} ${s.valueName}` : n.flag;
    const shown = s.show(s.default);
    lines.push(
      `| \`${flag}\` | \`${n.env}\` | \`${n.key}\` | ${shown === 'none' ? 'none' : `\`${shown}\``} | ${s.doc.replace(/\|/g, '\\|')} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Markers around the generated part of docs/configuration.md. */
export const DOC_BEGIN =
  '<!-- settings: generated from the schema by scripts/configuration-doc.ts; do not edit -->';
export const DOC_END = '<!-- settings: end -->';

/** The generated tables of every group, between the markers. */
export function renderSettingsDoc(groups: readonly SettingsGroup[]): string {
  return `${DOC_BEGIN}\n\n${groups.map(renderGroupDoc).join('\n')}\n${DOC_END}`;
}

/** `doc` with its generated part replaced by `generated` (which includes the markers). */
export function spliceSettingsDoc(doc: string, generated: string): string {
  const a = doc.indexOf(DOC_BEGIN);
  const b = doc.indexOf(DOC_END);
  if (a < 0 || b < a) throw new Error('docs/configuration.md lacks the settings markers');
  return doc.slice(0, a) + generated + doc.slice(b + DOC_END.length);
}
