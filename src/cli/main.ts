// The `hoard` command line: the program (program.ts) run on this process's
// arguments, with only the named command's module loaded. Each command maps
// errors to exit codes through output.ts.
//
// Every command that may talk to a server, except `serve`, is a short-lived
// process: its requests go through node:http, not undici
// (src/http/node-http-transport.ts). undici parses HTTP with llhttp compiled
// to WebAssembly, and V8 compiles that module at the process's first
// request: ≈ 150 ms on the critical path of a restore, plus ≈ 70 ms and
// 9 MiB to load undici at all (issue 16); node:http's parser is compiled
// into Node. `serve` keeps undici (many requests over long-lived upstream
// pools), and so does the library (`import 'hoard'`), whose caller's process
// is not ours to decide for. The commands that never send a request (fsck,
// gc, completion, --version) load neither.

import { buildProgram } from './program.ts';

const SHORT_LIVED_HTTP = new Set([
  'push',
  'pull',
  'status',
  'cache',
  'ls',
  'log',
  'diff',
  'cat',
  'rm',
  'git',
]);

if (SHORT_LIVED_HTTP.has(process.argv[2] ?? ''))
  (await import('../http/http-client.ts')).useNodeHttpTransport();

await (await buildProgram(process.argv)).parseAsync(process.argv);
