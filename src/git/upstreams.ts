// Which upstream a `/git/<repo>` path mirrors. By default `<host>/<path>` is
// `https://<host>/<path>`; `--git-upstream NAME=URL` maps the prefix NAME
// (one or more path segments) to any base URL, including `file:///…`.
// The longest matching prefix wins. Repo paths are validated strictly: they
// name directories on disk and arguments of git.

import { join } from 'node:path';
import { HoardError } from '../core/errors.ts';

export interface UpstreamMapping {
  /** Path prefix, e.g. `gh` or `github.com/acme`. */
  name: string;
  /** Base URL the rest of the path is appended to. */
  url: string;
}

export interface RepoId {
  /** The path as requested (what the upstream URL is built from), e.g. `gh/acme/app.git`. */
  path: string;
  /** Canonical key: the path without a trailing `.git`, e.g. `gh/acme/app`. */
  key: string;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._~+-]*$/;

/** Validates a repo path from a URL and returns its id; throws HOARD_EBAD_REQUEST. */
export function parseRepoPath(path: string): RepoId {
  const segments = path.split('/');
  const bad = (why: string) =>
    new HoardError('HOARD_EBAD_REQUEST', `invalid git repository path ${JSON.stringify(path)}: ${why}`, {
      hint: 'use /git/<host>/<path> or /git/<upstream-name>/<path>',
    });
  if (path.length > 512) throw bad('too long');
  if (segments.length < 2) throw bad('needs at least two segments');
  for (const [i, s] of segments.entries()) {
    if (!SEGMENT.test(s) || s === '.' || s === '..') throw bad(`bad segment ${JSON.stringify(s)}`);
    // A mirror lives in `<key>.git`; an inner `x.git` segment would nest inside another mirror.
    if (i < segments.length - 1 && s.endsWith('.git')) throw bad('only the last segment may end in .git');
    if (s.endsWith('.lock')) throw bad('segments may not end in .lock');
  }
  const last = segments[segments.length - 1];
  const key = last.endsWith('.git') ? segments.slice(0, -1).concat(last.slice(0, -4)).join('/') : path;
  if (key.endsWith('/') || key.split('/').some((s) => s === '')) throw bad('empty name');
  return { path, key };
}

/** Parses `NAME=URL` (the `--git-upstream` flag). */
export function parseUpstreamSpec(spec: string): UpstreamMapping {
  const eq = spec.indexOf('=');
  if (eq <= 0)
    throw new HoardError(
      'HOARD_ECONFIG',
      `invalid --git-upstream ${JSON.stringify(spec)}: expected NAME=URL`,
    );
  const name = spec.slice(0, eq).replace(/^\/+|\/+$/g, '');
  const url = spec.slice(eq + 1);
  for (const s of name.split('/'))
    if (!SEGMENT.test(s))
      throw new HoardError('HOARD_ECONFIG', `invalid --git-upstream name ${JSON.stringify(name)}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new HoardError('HOARD_ECONFIG', `invalid --git-upstream URL for ${name}: ${JSON.stringify(url)}`);
  }
  if (!['https:', 'http:', 'file:', 'ssh:', 'git:'].includes(parsed.protocol))
    throw new HoardError('HOARD_ECONFIG', `unsupported --git-upstream scheme ${parsed.protocol} for ${name}`);
  return { name, url: url.replace(/\/+$/, '') };
}

export class Upstreams {
  readonly mappings: readonly UpstreamMapping[];
  /** Whether paths that match no mapping go to `https://<host>/<path>`. */
  readonly defaultHttps: boolean;

  constructor(mappings: UpstreamMapping[] = [], opts: { defaultHttps?: boolean } = {}) {
    this.mappings = [...mappings].sort((a, b) => b.name.length - a.name.length);
    this.defaultHttps = opts.defaultHttps ?? true;
  }

  /** Upstream URL of a repo path; throws HOARD_EBAD_REQUEST when nothing maps it. */
  resolve(path: string): string {
    for (const m of this.mappings) {
      if (path === m.name) return m.url;
      if (path.startsWith(`${m.name}/`)) return `${m.url}/${path.slice(m.name.length + 1)}`;
    }
    const host = path.split('/')[0];
    if (this.defaultHttps && host.includes('.')) return `https://${path}`;
    throw new HoardError('HOARD_EBAD_REQUEST', `no upstream for git repository ${JSON.stringify(path)}`, {
      hint: 'use /git/<host>/<path> (a host name with a dot) or configure --git-upstream NAME=URL',
    });
  }

  /** Local filesystem path of a `file://` upstream, or null. */
  static localPath(url: string): string | null {
    return url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : null;
  }
}

/** Directory of a mirror: `<mirrorsRoot>/<key>.git`. */
export function mirrorDir(mirrorsRoot: string, key: string): string {
  return join(mirrorsRoot, `${key}.git`);
}
