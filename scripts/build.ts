// The JavaScript build, for the npm package only (`prepack` runs it): Node
// does not strip types under node_modules, so a published hoard must be
// JavaScript. tsc compiles src/ to dist/ with declarations, rewriting the
// `.ts` of relative imports (static and dynamic) to `.js`; files that are not
// TypeScript (the Bazel proto) are copied beside them. The repository itself
// never uses dist/: it runs src/*.ts directly.

import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
for (const e of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!e.isFile() || e.name.endsWith('.ts')) continue;
  const from = join(e.parentPath, e.name);
  cpSync(from, join(dist, relative(src, from)), { recursive: false });
}
process.stderr.write(`built ${relative(process.cwd(), dist) || '.'} from ${relative(process.cwd(), src)}\n`);
