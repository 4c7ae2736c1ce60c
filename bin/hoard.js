#!/usr/bin/env node
// Entry point of the `hoard` command. In the repository hoard is TypeScript
// run directly by Node 24's type stripping (src/cli/main.ts); the npm
// package ships no src/, only the JavaScript build (dist/cli/main.js, made
// by `prepack`), because Node does not strip types under node_modules. When
// started by an older Node (a machine's own node, with the project's pinned
// Node 24 installed beside it), re-run the same command with the pinned
// binary as a child instead of failing.
//
// The child must never outlive the `hoard` a CI job (or a user) started:
// killing that process with SIGKILL cannot be forwarded, so the child watches
// its parent instead. It gets an IPC channel whose other end only the parent
// holds; the kernel closes it when the parent dies in any way, and the child
// then stops as if sent SIGTERM (serve drains; push and pull stop, their lock
// is taken over by the next run since its pid is dead). A periodic check of
// the parent pid backs this up. Catchable signals are forwarded, and the
// parent's exit mirrors the child's (same code, or death by the same signal).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);
/** Set by the launcher for its child: the launcher's pid. */
const PARENT_ENV = 'HOARD_LAUNCHER_PID';
/** How often the child checks that its launcher is still its parent (fallback to the IPC channel). */
const PARENT_CHECK_MS = 1_000;
/** After the launcher is gone: time for a graceful stop (serve's drain) before the child exits anyway. */
const ORPHAN_EXIT_AFTER_MS = 35_000;
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'];

if (major >= 24) {
  if (process.env[PARENT_ENV]) watchLauncher(Number(process.env[PARENT_ENV]));
  // Cache compiled (and type-stripped) modules on disk: every later `hoard`
  // run skips stripping types, which is most of its start-up time and ~35 MB
  // of its memory. NODE_DISABLE_COMPILE_CACHE=1 turns it off.
  module.enableCompileCache?.();
  // The sources when they are here (a checkout, where dist/ may be stale), else the build.
  const source = join(root, 'src', 'cli', 'main.ts');
  await import(pathToFileURL(existsSync(source) ? source : join(root, 'dist', 'cli', 'main.js')).href);
} else {
  const pinned = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    const fix = existsSync(join(root, 'src')) ? `run \`npm ci\` in ${root}` : 'install Node.js 24 or later';
    process.stderr.write(`hoard needs Node.js >= 24 (this is ${process.version}); ${fix}\n`);
    process.exit(1);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [PARENT_ENV]: String(process.pid) },
  });
  // The channel is only a lifeline: it must not keep this process alive by itself.
  child.channel?.unref();
  const forward = (sig) => () => child.kill(sig);
  for (const sig of FORWARDED) process.on(sig, forward(sig));
  child.on('error', (err) => {
    process.stderr.write(`hoard: cannot start ${pinned}: ${err.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // Die the same way; our own forwarding handler must not catch it.
      for (const sig of FORWARDED) process.removeAllListeners(sig);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
}

/** In the child: stop when the launcher that started it is gone. */
function watchLauncher(parentPid) {
  delete process.env[PARENT_ENV]; // not for hoard's own children (git, …)
  let stopping = false;
  const orphaned = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(1), ORPHAN_EXIT_AFTER_MS).unref();
    process.kill(process.pid, 'SIGTERM');
  };
  if (process.channel) {
    process.channel.unref();
    process.on('disconnect', orphaned);
  }
  // Reparented (to init or a subreaper) once the launcher died.
  const timer = setInterval(() => {
    if (process.ppid !== parentPid) orphaned();
  }, PARENT_CHECK_MS);
  timer.unref();
  if (process.ppid !== parentPid) orphaned();
}
