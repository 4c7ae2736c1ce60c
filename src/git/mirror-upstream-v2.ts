// hoard as a git client of an upstream, speaking protocol v2 itself (stateless,
// as over HTTP): the capability advertisement, `ls-refs`, and `fetch` of one
// pack. Used to create a mirror with one upstream transfer whose pack can be
// teed to the first clients (mirror-cold-fill.ts). Transports: http(s)
// (through the one HTTP client) and file:// (`git upload-pack
// --stateless-rpc`, which speaks exactly the bytes http-backend would).
// ssh:// and git:// have no stateless form here: those upstreams are cloned
// with `git clone` as before.
//
// Everything the upstream sends is untrusted: advertisements and ref lists are
// bounded, every line is validated, and anything unexpected is either an error
// or, where it only means "this upstream does not speak v2 as we need"
// (a v0 answer, another object format), a FallBack to `git clone`.

import { PassThrough, type Readable } from 'node:stream';
import { HoardError } from '../core/errors.ts';
import { discard, header, httpRequest } from '../http/http-client.ts';
import { gitFailure, pipeCompleted, spawnGit } from './git-process.ts';
import { DELIM_PKT, FLUSH_PKT, PktError, pktLine, readPkts } from './pkt-line.ts';
import { Upstreams, upstreamHttpTarget } from './upstreams.ts';

/** The upstream cannot be mirrored this way (not v2, another object format…): use `git clone`. */
export class FallBack extends Error {}

/** Largest capability advertisement or ref list read from an upstream. */
export const MAX_ADVERTISEMENT_BYTES = 1024 * 1024;
export const MAX_REFS_BYTES = 64 * 1024 * 1024;

export interface UpstreamRef {
  name: string;
  oid: string;
  /** symref-target (HEAD → refs/heads/main). */
  symref?: string;
}

export interface UpstreamRefs {
  /** In the upstream's order; HEAD (if any) included. */
  refs: UpstreamRef[];
  /** HEAD's target when the upstream's HEAD is unborn (an empty repository). */
  unbornHead?: string;
}

export interface V2Transport {
  /** The capability advertisement's bytes (pkt-lines). */
  advertise(): Promise<Buffer>;
  /** Sends one request, returns the answer as a stream. */
  rpc(body: Buffer): Promise<Readable>;
}

export interface TransportOptions {
  signal: AbortSignal;
  timeoutMs: number;
}

/** A stateless v2 transport to `url`, or null when its scheme has none (ssh, git). */
export function v2Transport(url: string, opts: TransportOptions): V2Transport | null {
  const local = Upstreams.localPath(url);
  if (local !== null) return fileTransport(local, opts);
  if (url.startsWith('http://') || url.startsWith('https://')) return httpTransport(url, opts);
  return null;
}

function fileTransport(path: string, opts: TransportOptions): V2Transport {
  const env = { GIT_PROTOCOL: 'version=2' };
  return {
    async advertise() {
      const g = spawnGit(['upload-pack', '--stateless-rpc', '--advertise-refs', '--', path], {
        env,
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
      });
      const out = await readBounded(g.child.stdout!, MAX_ADVERTISEMENT_BYTES, 'capability advertisement');
      const exit = await g.done;
      if (exit.code !== 0) throw gitFailure(['upload-pack'], exit);
      return out;
    },
    async rpc(body) {
      const g = spawnGit(['upload-pack', '--stateless-rpc', '--', path], {
        env,
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
        stdin: true,
      });
      g.child.stdin!.end(body);
      const out = new PassThrough();
      pipeCompleted(g, out, (exit) => gitFailure(['upload-pack'], exit));
      out.on('close', () => {
        if (!out.readableEnded) g.kill();
      });
      return out;
    },
  };
}

function httpTransport(base: string, opts: TransportOptions): V2Transport {
  const { url, headers } = upstreamHttpTarget(base);
  const common = { ...headers, 'git-protocol': 'version=2', 'user-agent': 'git/hoard' };
  const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]);
  return {
    async advertise() {
      const res = await httpRequest('GET', new URL(`${url}/info/refs?service=git-upload-pack`), {
        headers: common,
        accept: 'any',
        retries: 0,
        signal,
      });
      const type = header(res, 'content-type') ?? '';
      if (res.status !== 200 || type !== 'application/x-git-upload-pack-advertisement') {
        discard(res);
        // A redirect, an auth challenge, a dumb server: `git clone` knows what to do (or says what failed).
        throw new FallBack(`upstream answered ${res.status} ${type}`);
      }
      return readBounded(res.body, MAX_ADVERTISEMENT_BYTES, 'capability advertisement');
    },
    async rpc(body) {
      const res = await httpRequest('POST', new URL(`${url}/git-upload-pack`), {
        headers: {
          ...common,
          'content-type': 'application/x-git-upload-pack-request',
          accept: 'application/x-git-upload-pack-result',
        },
        body,
        accept: 'any',
        retries: 0,
        signal,
      });
      if (res.status !== 200 || header(res, 'content-type') !== 'application/x-git-upload-pack-result') {
        discard(res);
        throw new HoardError('HOARD_EGIT', `upstream upload-pack answered ${res.status}`);
      }
      return res.body;
    },
  };
}

async function readBounded(s: Readable, max: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of s) {
    n += (c as Buffer).length;
    if (n > max) {
      s.destroy();
      throw new HoardError('HOARD_EGIT', `upstream ${what} larger than ${max} bytes`);
    }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

/** Capabilities of a v2 advertisement; FallBack when the upstream did not answer in v2. */
export function parseCapabilities(adv: Buffer): Map<string, string> {
  const caps = new Map<string, string>();
  let first = true;
  let pos = 0;
  while (adv.length - pos >= 4) {
    const hex = adv.subarray(pos, pos + 4).toString('latin1');
    if (!/^[0-9a-f]{4}$/i.test(hex)) throw new FallBack('advertisement is not pkt-lines');
    const len = Number.parseInt(hex, 16);
    if (len === 0) break;
    if (len < 5 || adv.length - pos < len) throw new FallBack('advertisement is not pkt-lines');
    const line = adv
      .subarray(pos + 4, pos + len)
      .toString('latin1')
      .replace(/\n$/, '');
    pos += len;
    if (first) {
      if (line !== 'version 2') throw new FallBack('upstream does not speak protocol v2');
      first = false;
      continue;
    }
    const eq = line.indexOf('=');
    caps.set(eq === -1 ? line : line.slice(0, eq), eq === -1 ? '' : line.slice(eq + 1));
  }
  if (first) throw new FallBack('empty advertisement');
  if (!caps.has('ls-refs') || !caps.has('fetch')) throw new FallBack('upstream lacks ls-refs or fetch');
  const format = caps.get('object-format');
  if (format !== undefined && format !== 'sha1') throw new FallBack(`object format ${format}`);
  return caps;
}

/** The capability lines hoard sends with each command (only what the upstream advertised). */
function commandHead(command: string, caps: Map<string, string>): Buffer[] {
  const head = [pktLine(`command=${command}\n`)];
  if (caps.has('agent')) head.push(pktLine('agent=git/hoard\n'));
  if (caps.has('object-format')) head.push(pktLine('object-format=sha1\n'));
  head.push(DELIM_PKT);
  return head;
}

const OID = /^[0-9a-f]{40}$/;

/**
 * Whether `name` is a ref name git accepts (check-ref-format's rules, a
 * conservative subset: printable ASCII only) under one of `prefixes`.
 */
export function safeRefName(name: string, prefixes: readonly string[]): boolean {
  if (name.length > 1024 || !prefixes.some((p) => name.startsWith(p))) return false;
  if (!/^[\x21-\x7e]+$/.test(name) || /[~^:?*[\\]/.test(name)) return false;
  if (name.includes('..') || name.includes('@{') || name.includes('//') || name.endsWith('/')) return false;
  if (name.endsWith('.')) return false;
  return name.split('/').every((c) => c !== '' && !c.startsWith('.') && !c.endsWith('.lock'));
}

/**
 * `ls-refs` on the upstream: HEAD and the refs under `prefixes` (all refs for
 * an empty list), with symrefs. Not peeled tags: nothing could check them
 * before the pack is indexed, so they are not passed on to clients (see
 * mirror-cold-fill.ts); an upstream that sends them anyway has them checked
 * for form and dropped.
 */
export async function lsRefs(
  t: V2Transport,
  caps: Map<string, string>,
  prefixes: readonly string[],
): Promise<UpstreamRefs> {
  const unborn = /(^|\s)unborn(\s|$)/.test(caps.get('ls-refs') ?? '');
  const body = Buffer.concat([
    ...commandHead('ls-refs', caps),
    pktLine('symrefs\n'),
    ...(unborn ? [pktLine('unborn\n')] : []),
    ...(prefixes.length ? ['HEAD', ...prefixes].map((p) => pktLine(`ref-prefix ${p}\n`)) : []),
    FLUSH_PKT,
  ]);
  const allowed = prefixes.length ? prefixes : ['refs/'];
  const out: UpstreamRefs = { refs: [] };
  const seen = new Set<string>();
  let bytes = 0;
  const bad = (why: string) => new HoardError('HOARD_EGIT', `upstream ls-refs: ${why}`);
  try {
    for await (const p of readPkts(await t.rpc(body))) {
      if (p.kind === 'flush') return out;
      if (p.kind !== 'data') throw bad('unexpected packet');
      bytes += p.payload.length;
      if (bytes > MAX_REFS_BYTES) throw bad(`ref list larger than ${MAX_REFS_BYTES} bytes`);
      const line = p.payload.toString('latin1').replace(/\n$/, '');
      if (line.startsWith('ERR ')) throw bad('the upstream reported an error');
      const [oid, name, ...attrs] = line.split(' ');
      let symref: string | undefined;
      for (const a of attrs) {
        if (a.startsWith('symref-target:')) symref = a.slice(14);
        else if (a.startsWith('peeled:')) {
          if (!OID.test(a.slice(7))) throw bad('bad peeled id');
        } else throw bad('unknown ref attribute');
      }
      if (symref !== undefined && !safeRefName(symref, ['refs/'])) throw bad('bad symref target');
      if (name !== 'HEAD' && !safeRefName(name ?? '', allowed)) throw bad('bad ref name');
      if (seen.has(name)) throw bad('duplicate ref');
      seen.add(name);
      if (oid === 'unborn' && name === 'HEAD') {
        out.unbornHead = symref;
        continue;
      }
      if (!OID.test(oid)) throw bad('bad object id');
      out.refs.push({ name, oid, symref });
    }
  } catch (err) {
    if (err instanceof PktError) throw bad(err.message);
    throw err;
  }
  throw bad('the ref list ended without a flush');
}

/**
 * The `fetch` request for a full pack of `wants` (a clone: no haves, `done`):
 * its answer is one `packfile` section, sideband-framed.
 */
export function fetchRequest(caps: Map<string, string>, wants: readonly string[]): Buffer {
  return Buffer.concat([
    ...commandHead('fetch', caps),
    pktLine('ofs-delta\n'),
    pktLine('no-progress\n'),
    ...wants.map((w) => pktLine(`want ${w}\n`)),
    pktLine('done\n'),
    FLUSH_PKT,
  ]);
}
