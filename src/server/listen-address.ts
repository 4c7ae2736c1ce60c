// `--listen` syntax: `host:port`, `[v6]:port`, `:port` or `port`.

import { HoardError } from '../core/errors.ts';

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(text.trim());
  if (!m) throw new HoardError('HOARD_ECONFIG', `--listen: expected host:port, got ${JSON.stringify(text)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new HoardError('HOARD_ECONFIG', `--listen: port ${port} out of range`);
  const host = m[1] ?? (m[2] || '127.0.0.1');
  return { host, port };
}
