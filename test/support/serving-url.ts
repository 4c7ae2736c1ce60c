// The URL a `hoard serve` child prints once it listens ("hoard: serving
// http://…" on stderr, whatever the log level): tests that run the real
// server as a process wait on this line, never on a sleep.

import type { ChildProcess } from 'node:child_process';

export function servingUrl(child: ChildProcess, timeoutMs = 20_000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stderr?.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /hoard: serving (http:\/\/\S+)/.exec(buf);
      if (m) resolve(m[1]);
    });
    child.on('exit', () => reject(new Error(`server exited early: ${buf}`)));
    setTimeout(() => reject(new Error(`server did not start: ${buf}`)), timeoutMs).unref();
  });
}
