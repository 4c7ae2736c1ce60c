#!/usr/bin/env node
// Entry point of the `hoard` command. hoard is TypeScript run directly by
// Node 24's type stripping; when started by an older Node (a machine's own
// node, with the project's pinned Node 24 installed beside it), re-run the
// same command with the pinned binary instead of failing.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);

if (major >= 24) {
  // Cache compiled (and type-stripped) modules on disk: every later `hoard`
  // run skips stripping types, which is most of its start-up time and ~35 MB
  // of its memory. NODE_DISABLE_COMPILE_CACHE=1 turns it off.
  module.enableCompileCache?.();
  await import(join(root, 'src', 'cli', 'main.ts'));
} else {
  const pinned = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    process.stderr.write(
      `hoard needs Node.js >= 24 (this is ${process.version}); run \`npm ci\` in ${root}\n`,
    );
    process.exit(1);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
