// `--listen` syntax (`host:port`, `[v6]:port`, `:port` or `port`) and the
// default public URL derived from it.

import { hostname } from 'node:os';
import { HoardError } from '../core/errors.ts';

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(text.trim());
  if (!m) throw new HoardError('HOARD_ECONFIG', `--listen: expected host:port, got ${JSON.stringify(text)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new HoardError('HOARD_ECONFIG', `--listen: port ${port} out of range`);
  const host = m[1] ?? (m[2] || '127.0.0.1');
  return { host, port };
}

/**
 * --public-url's default: the address the server listens on (a wildcard
 * address becomes this machine's host name). With port 0 the port is known
 * only after listening, so each snapshot request's own base URL is used
 * instead (fine for tests; servers sharing a bucket set --public-url).
 */
export function defaultPublicUrl(listen: string): string | undefined {
  const { host, port } = parseListen(listen);
  if (port === 0) return undefined;
  const name = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `http://${name}:${port}`;
}
