// The layer order of docs/architecture.md, enforced: a module may import its
// own area or an area below it, never one above or beside it at the same
// level; and the module graph (static and dynamic imports, types excluded)
// has no cycle, so lazy loading never depends on evaluation order.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

/** Area → level. Equal levels may not import each other (archive and http sit beside store: they import core only). */
export const LAYERS: Record<string, number> = {
  core: 0,
  store: 1,
  archive: 1,
  http: 1,
  remote: 2,
  sync: 3,
  server: 4,
  git: 5,
  features: 6,
  library: 7,
  cli: 8,
  /** The package's entry point (src/index.ts): re-exports library/ and the types it names. */
  'index.ts': 8,
};

const SRC = resolve(import.meta.dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** Relative imports of a module that exist at run time (not `import type`, not `export type`). */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  const stat = /^(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;
  const dyn = /import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  for (const re of [stat, dyn]) for (const m of text.matchAll(re)) out.push(resolve(dirname(file), m[1]));
  return out;
}

const area = (file: string) => relative(SRC, file).split('/')[0];

test('imports point down the layer order only', () => {
  const bad: string[] = [];
  for (const f of files(SRC)) {
    const a = area(f);
    assert.ok(
      a in LAYERS,
      `src/${a}/ is not in the layer table (test/meta/layers.test.ts, docs/architecture.md)`,
    );
    for (const target of runtimeImports(f)) {
      if (!target.startsWith(SRC)) continue;
      const b = area(target);
      if (b !== a && !(LAYERS[b] < LAYERS[a])) bad.push(`${relative(SRC, f)} → ${relative(SRC, target)}`);
    }
  }
  assert.deepEqual(bad, [], 'upward or sideways imports');
});

test('no import cycle between modules (static or dynamic)', () => {
  const graph = new Map(files(SRC).map((f) => [f, runtimeImports(f).filter((t) => t.startsWith(SRC))]));
  const state = new Map<string, 'active' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'active') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' → '));
      return;
    }
    state.set(f, 'active');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});
