// Which upstream a `/git/<repo>` path mirrors. `--git-upstream NAME=URL` maps
// the prefix NAME (one or more path segments) to any base URL, including
// `file:///…`; the longest matching prefix wins. Only configured mappings are
// served by default: a path no mapping names is 404, so no client can make
// the server clone from a host of its choosing (SSRF into the internal
// network). The implicit mapping `<host>/<path>` → `https://<host>/<path>` is
// an operator's opt-in (`--git-allow-any-host`), filtered by host allow/deny
// glob patterns. Repo paths are validated strictly: they name directories on
// disk and arguments of git.

import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
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

export interface ImplicitUpstreamOptions {
  /** Whether paths that match no mapping go to `https://<host>/<path>` (default false). */
  implicit?: boolean;
  /** Host glob patterns the implicit mapping may reach (empty: any host not denied). */
  allowHosts?: readonly string[];
  /** Host glob patterns the implicit mapping never reaches, besides DEFAULTS.gitImplicitDenyHosts; deny wins over allow. */
  denyHosts?: readonly string[];
}

/**
 * A host glob (`github.com`, `*.corp.example`): `*` stands for one or more
 * characters, dots included; matching ignores case. Invalid characters throw.
 */
export function hostPattern(glob: string): RegExp {
  const g = glob.trim().toLowerCase();
  if (!/^[a-z0-9*._-]+$/.test(g))
    throw new HoardError('HOARD_ECONFIG', `invalid git host pattern ${JSON.stringify(glob)}`, {
      hint: 'a host name, optionally with * wildcards, e.g. *.example.com',
    });
  const re = g.replace(/\./g, '\\.').replace(/\*/g, '.+');
  return new RegExp(`^${re}$`);
}

/**
 * Whether `host` is a DNS name whose last label is alphabetic (a TLD). IP
 * literals in any spelling (`127.0.0.1`, `0x7f.1`, `2130706433.x0`…) fail:
 * they are the classic way around a host name deny list.
 */
function isDnsName(host: string): boolean {
  const labels = host.split('.');
  if (labels.length < 2 || labels.some((l) => !/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/i.test(l))) return false;
  return /^[a-z][a-z0-9-]*$/i.test(labels[labels.length - 1]) && !/^0x/i.test(labels[labels.length - 1]);
}

export class Upstreams {
  readonly mappings: readonly UpstreamMapping[];
  /** Whether paths that match no mapping go to `https://<host>/<path>`. */
  readonly implicit: boolean;
  readonly #allow: RegExp[];
  readonly #deny: RegExp[];

  constructor(mappings: UpstreamMapping[] = [], opts: ImplicitUpstreamOptions = {}) {
    this.mappings = [...mappings].sort((a, b) => b.name.length - a.name.length);
    this.implicit = opts.implicit ?? DEFAULTS.gitImplicitUpstreams;
    this.#allow = (opts.allowHosts ?? []).map(hostPattern);
    this.#deny = [...DEFAULTS.gitImplicitDenyHosts, ...(opts.denyHosts ?? [])].map(hostPattern);
  }

  /**
   * Upstream URL of a repo path; throws HOARD_EUPSTREAM_UNKNOWN (404) when
   * nothing maps it. A denied host gets the same answer as an unconfigured
   * one (the client learns nothing about the deny list); the reason is in
   * `details.reason` for the log.
   */
  resolve(path: string): string {
    for (const m of this.mappings) {
      if (path === m.name) return m.url;
      if (path.startsWith(`${m.name}/`)) return `${m.url}/${path.slice(m.name.length + 1)}`;
    }
    const host = path.split('/')[0].toLowerCase();
    if (this.implicit && !host.includes('.'))
      throw new HoardError('HOARD_EBAD_REQUEST', `no upstream for git repository ${JSON.stringify(path)}`, {
        hint: 'use /git/<host>/<path> (a host name with a dot) or a configured /git/<upstream-name>/<path>',
      });
    const reason = this.#implicitRefusal(host);
    if (reason === null) return `https://${path}`;
    throw new HoardError(
      'HOARD_EUPSTREAM_UNKNOWN',
      `no upstream is configured for git repository ${JSON.stringify(path)}`,
      {
        hint: 'the server operator maps repositories with --git-upstream NAME=URL',
        details: { reason },
      },
    );
  }

  /** Whether an operator's mapping (not the implicit one) serves `path`. */
  isMapped(path: string): boolean {
    return this.mappings.some((m) => path === m.name || path.startsWith(`${m.name}/`));
  }

  /** Why the implicit mapping does not serve `host`, or null when it does. */
  #implicitRefusal(host: string): string | null {
    if (!this.implicit) return 'no mapping (implicit upstreams are off)';
    if (!isDnsName(host)) return 'not a DNS host name';
    if (this.#deny.some((re) => re.test(host))) return 'host denied';
    if (this.#allow.length > 0 && !this.#allow.some((re) => re.test(host))) return 'host not allowed';
    return null;
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

/**
 * An HTTP(S) upstream URL as a request target: the URL without credentials,
 * and an `Authorization: Basic` header from them (`https://user:secret@host/…`
 * is how an operator gives hoard the upstream's credentials; they are never
 * sent in the URL nor logged).
 */
export function upstreamHttpTarget(upstream: string): { url: string; headers: Record<string, string> } {
  const u = new URL(upstream);
  const headers: Record<string, string> = {};
  if (u.username)
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
  u.username = '';
  u.password = '';
  return { url: u.toString().replace(/\/+$/, ''), headers };
}
