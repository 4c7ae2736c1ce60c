// The npm registry API at `/npm/` (npm, pnpm and yarn with
// `registry=http://host:7777/npm/`):
//   GET /npm/<name>, /npm/@scope%2fname, /npm/@scope/name   package document
//       (abbreviated when Accept is application/vnd.npm.install-v1+json)
//   GET /npm/<name>/<version|dist-tag>                      version document
//   GET /npm/<name>/-/<file>.tgz                            tarball
//   GET /npm/-/ping                                         {}
//   GET /npm/-/v1/search                                    passed through (not cached)
//   POST /npm/-/npm/v1/security/…                           501 (audit is not proxied)
//   other /npm/-/…                                          404
//   PUT, POST, DELETE (publish, dist-tag, unpublish)        405 unless allow-write-through
// Everything needs a read-scoped hoard token (npm's `_authToken` arrives as
// `Authorization: Bearer`); forwarded writes a write-scoped one.

import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hexOf } from '../../core/digest.ts';
import { HoardError } from '../../core/errors.ts';
import { httpRequest } from '../../http/http-client.ts';
import { blobEtag, noneMatch } from '../../server/http-range.ts';
import { rawBodies } from '../upload-body.ts';
import type { DocumentBodies, DocumentBody } from './npm-document-bodies.ts';
import {
  ABBREVIATED,
  type Dist,
  type DocForm,
  type NpmDocuments,
  type PackageDocument,
} from './npm-documents.ts';
import { expectedOf, type NpmTarballs } from './npm-tarballs.ts';
import { documentUrl, type NpmUpstreams } from './npm-upstreams.ts';

/** npm's name rules (validate-npm-package-name), loosely: at most 214 URL-safe characters, one optional scope. */
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9_~-][a-z0-9._~-]*$/i;
const VERSION = /^[A-Za-z0-9._+-]{1,256}$/;
const FILE = /^[A-Za-z0-9._+~-]{1,300}\.tgz$/;

export interface NpmRouteOptions {
  documents: NpmDocuments;
  /** The served bytes of documents, kept per stored document, base and form. */
  bodies: DocumentBodies;
  tarballs: NpmTarballs;
  upstreams: NpmUpstreams;
  allowWriteThrough: boolean;
  /** This server's base URL for the tarball links (the public URL), or undefined: the request's own. */
  publicUrl(): string | undefined;
  authorize(request: FastifyRequest, need: 'read' | 'write'): void;
}

type Target =
  | { kind: 'ping' }
  | { kind: 'search' }
  | { kind: 'dist-tags'; name: string }
  | { kind: 'audit' }
  | { kind: 'document'; name: string }
  | { kind: 'version'; name: string; version: string }
  | { kind: 'tarball'; name: string; file: string };

/**
 * The decoded segments of a raw path after `/npm`, or undefined for bad
 * percent-encoding. `@scope%2fname` is how npm asks for a scoped package;
 * `@scope/name` works too.
 */
function pathSegments(rawPath: string): string[] | undefined {
  try {
    return rawPath.replace(/^\/+/, '').replace(/%2f/gi, '/').split('/').map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

/** The package name the segments start with (`name`, or `@scope/name`: two), valid or not; undefined if cut short. */
function leadingName(segs: string[]): string | undefined {
  const n = segs[0]?.startsWith('@') ? 2 : 1;
  return segs.length < n ? undefined : segs.slice(0, n).join('/');
}

const isPackageName = (name: string) => name.length <= 214 && NAME.test(name);

/** Parses the path after `/npm` (raw, still percent-encoded). */
export function parseTarget(rawPath: string): Target {
  const bad = (why: string) => new HoardError('HOARD_EBAD_REQUEST', `invalid npm request path: ${why}`);
  const badName = (name: string) => bad(`invalid package name ${JSON.stringify(name.slice(0, 220))}`);
  if (rawPath.replace(/^\/+/, '') === '') throw new HoardError('HOARD_EBLOB_NOT_FOUND', 'no package named');
  const segs = pathSegments(rawPath);
  if (!segs) throw bad('malformed percent-encoding');
  if (segs.some((s) => s === '' || s === '.' || s === '..')) throw bad('empty or dot segment');
  if (segs[0] === '-') {
    const rest = segs.slice(1).join('/');
    if (rest === 'ping') return { kind: 'ping' };
    if (rest === 'v1/search') return { kind: 'search' };
    if (rest.startsWith('npm/v1/security/')) return { kind: 'audit' };
    // `npm dist-tag ls` (and `add`/`rm`, which read the tags first): passed through, like search.
    if (segs[1] === 'package' && segs[segs.length - 1] === 'dist-tags') {
      const name = segs.slice(2, -1).join('/');
      if (!isPackageName(name)) throw badName(name);
      return { kind: 'dist-tags', name };
    }
    throw new HoardError('HOARD_EBLOB_NOT_FOUND', `/npm/-/${rest} is not served by hoard`);
  }
  const name = leadingName(segs);
  if (name === undefined) throw bad('a scope without a package name');
  if (!isPackageName(name)) throw badName(name);
  const rest = segs.slice(name.startsWith('@') ? 2 : 1);
  if (rest.length === 0) return { kind: 'document', name };
  if (rest.length === 1) {
    if (!VERSION.test(rest[0])) throw bad(`invalid version ${JSON.stringify(rest[0].slice(0, 260))}`);
    return { kind: 'version', name, version: rest[0] };
  }
  if (rest.length === 2 && rest[0] === '-') {
    if (!FILE.test(rest[1])) throw bad(`invalid tarball name ${JSON.stringify(rest[1].slice(0, 300))}`);
    return { kind: 'tarball', name, file: rest[1] };
  }
  throw bad('unknown form');
}

/**
 * The package a write path is about, if any: `/<name>` (publish, deprecate),
 * `/<name>/-rev/<rev>` and `/<name>/-/<file>/-rev/<rev>` (unpublish, owner),
 * `/-/package/<name>/…` (dist-tags, access). Undefined for the rest (login,
 * teams, orgs) and for anything that is not a valid name.
 */
export function packageOfWrite(rawPath: string): string | undefined {
  const segs = pathSegments(rawPath);
  if (!segs) return undefined;
  const name = leadingName(segs[0] === '-' ? (segs[1] === 'package' ? segs.slice(2) : []) : segs);
  return name !== undefined && isPackageName(name) ? name : undefined;
}

export async function npmRoutes(app: FastifyInstance, o: NpmRouteOptions): Promise<void> {
  rawBodies(app);
  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH'],
    url: '/*',
    exposeHeadRoute: false,
    config: { scope: 'none' },
    handler: async (request, reply) => {
      const rawPath = (request.raw.url ?? '').split('?')[0].replace(/^\/npm/, '');
      // `?write=true` is npm's read before a write (unpublish, owner, deprecate): with
      // write-through, the upstream's current document with its `_rev`, never a cached one
      // (without, a plain read: the write that follows gets the 405 that explains).
      const write =
        (request.method !== 'GET' && request.method !== 'HEAD') ||
        (o.allowWriteThrough && /[?&]write=true(&|$)/.test(request.raw.url ?? ''));
      const audit = rawPath.startsWith('/-/npm/v1/security/');
      if (audit) {
        o.authorize(request, 'read');
        return reply.code(501).send({
          error: {
            code: 'HOARD_EBAD_REQUEST',
            message: 'hoard does not proxy npm audit; run it against the registry directly',
          },
        });
      }
      // Writes are refused (or forwarded) whatever their path: publish, dist-tag and
      // unpublish URLs take forms (`/-rev/…`, `/-/package/…`) no read ever does.
      if (write) {
        if (!o.allowWriteThrough) {
          o.authorize(request, 'read');
          return reply
            .code(405)
            .header('allow', 'GET, HEAD')
            .send({
              error: {
                code: 'HOARD_EBAD_REQUEST',
                message: `hoard's npm cache is read-only: ${request.method} is not forwarded (publish to the upstream registry directly, or enable [npm] allow-write-through)`,
              },
            });
        }
        o.authorize(request, 'write');
        let target: Target | undefined;
        try {
          target = parseTarget(rawPath);
        } catch {
          target = undefined; // a write-only form: the default upstream
        }
        return forward(request, reply, o, target, rawPath);
      }
      const target = parseTarget(rawPath);
      if (target.kind === 'audit') throw new HoardError('HOARD_EBAD_REQUEST', 'npm audit is a POST');
      o.authorize(request, 'read');
      switch (target.kind) {
        case 'ping':
          return reply.send({});
        case 'search':
        case 'dist-tags':
          return forward(request, reply, o, target, rawPath);
        case 'document': {
          const form: DocForm = wantsAbbreviated(request) ? 'abbreviated' : 'full';
          const r = await o.documents.get(target.name, form);
          if (r.staleSeconds !== undefined) stale(reply, r.staleSeconds);
          const b = base(request, o);
          const body = o.bodies.get(r.digest, `${form}\n${target.name}`, b, () =>
            JSON.stringify(rewrite(r.doc, target.name, b)),
          );
          return sendDocument(
            request,
            reply,
            body,
            form === 'abbreviated' ? ABBREVIATED : 'application/json',
          );
        }
        case 'version': {
          const r = await o.documents.get(target.name, 'full');
          if (r.staleSeconds !== undefined) stale(reply, r.staleSeconds);
          const version = r.doc.versions?.[target.version]
            ? target.version
            : (r.doc['dist-tags']?.[target.version] ?? '');
          const v = r.doc.versions?.[version];
          if (!v)
            throw new HoardError('HOARD_EBLOB_NOT_FOUND', `no version ${target.version} of ${target.name}`);
          const doc = rewrite({ versions: { [version]: v } }, target.name, base(request, o)).versions?.[
            version
          ];
          return reply
            .type('application/json')
            .send(request.method === 'HEAD' ? undefined : JSON.stringify(doc));
        }
        case 'tarball':
          return tarball(request, reply, o, target.name, target.file);
      }
    },
  });
}

async function tarball(
  request: FastifyRequest,
  reply: FastifyReply,
  o: NpmRouteOptions,
  name: string,
  file: string,
): Promise<FastifyReply> {
  // Which version the file is: its document names it (a version published
  // since the cached document was fetched asks the upstream once more).
  let doc = await o.documents.anyCached(name);
  let dist = doc && distOf(doc, name, file);
  if (!dist) {
    doc = (await o.documents.get(name, 'abbreviated', doc !== undefined)).doc;
    dist = distOf(doc, name, file);
  }
  if (!dist?.tarball)
    throw new HoardError('HOARD_EBLOB_NOT_FOUND', `no tarball ${file} in the document of ${name}`);
  const expected = expectedOf(dist);
  if (!expected)
    throw new HoardError(
      'HOARD_EREMOTE',
      `the document of ${name} names no integrity for ${file}: not cached`,
    );
  let url: URL;
  try {
    url = new URL(dist.tarball, o.upstreams.of(name).url);
  } catch {
    throw new HoardError('HOARD_EREMOTE', `the document of ${name} names an invalid tarball URL`);
  }
  const t = await o.tarballs.open(name, expected, url);
  if (t.hit) {
    // A stored tarball is sent as any stored content is (Range, the memory tier's bytes
    // without a stream), with its digest as a strong ETag; a client that has it gets a 304.
    const { entry, handle } = t.opened;
    if (noneMatch(headerString(request.headers['if-none-match']), blobEtag(hexOf(entry.digest)))) {
      handle.close();
      return reply
        .code(304)
        .header('etag', blobEtag(hexOf(entry.digest)))
        .send();
    }
    return o.tarballs.send(request, reply, t.opened, {
      etag: entry.digest,
      headers: { 'x-hoard-cache': 'hit' },
    });
  }
  reply.type('application/octet-stream').header('content-length', t.size).header('x-hoard-cache', 'miss');
  if (request.method === 'HEAD') {
    t.body.destroy();
    return reply.send();
  }
  return reply.send(t.body);
}

/** Each parsed document's tarballs by file name (documents are immutable once parsed; big ones name thousands of versions). */
const tarballFiles = new WeakMap<PackageDocument, Map<string, Dist>>();

function distOf(doc: PackageDocument, name: string, file: string): Dist | undefined {
  let files = tarballFiles.get(doc);
  if (!files) {
    files = new Map();
    for (const [version, v] of Object.entries(doc.versions ?? {})) {
      const t = v?.dist?.tarball;
      if (typeof t !== 'string') continue;
      const f = fileOf(name, version, t);
      if (!files.has(f)) files.set(f, v.dist as Dist);
    }
    tarballFiles.set(doc, files);
  }
  return files.get(file);
}

/**
 * Sends a document body: a 304 when the client holds it (If-None-Match), the
 * gzip copy when the client takes gzip and the body is big enough to gain,
 * else the bytes as they are. `Vary`: the form follows Accept, the coding
 * Accept-Encoding.
 */
async function sendDocument(
  request: FastifyRequest,
  reply: FastifyReply,
  body: DocumentBody,
  type: string,
): Promise<FastifyReply> {
  reply.type(type).header('etag', body.etag).header('vary', 'accept, accept-encoding');
  if (noneMatch(headerString(request.headers['if-none-match']), body.etag.slice(2)))
    return reply.code(304).send();
  let bytes = body.bytes;
  if (acceptsGzip(headerString(request.headers['accept-encoding']))) {
    const zipped = await body.gzip()?.catch(() => undefined);
    if (zipped) {
      bytes = zipped;
      reply.header('content-encoding', 'gzip');
    }
  }
  reply.header('content-length', bytes.byteLength);
  return reply.send(request.method === 'HEAD' ? undefined : bytes);
}

/** Whether Accept-Encoding admits gzip: `gzip` or `x-gzip` with a q above 0, else `*` with one. */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let named: boolean | undefined;
  let any: boolean | undefined;
  for (const part of header.split(',')) {
    const [coding, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const admits = q === undefined || Number(q.slice(2)) > 0;
    if (coding === 'gzip' || coding === 'x-gzip') named = named === true || admits;
    else if (coding === '*') any = admits;
  }
  return named ?? any ?? false;
}

function headerString(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h.join(',') : h;
}

/**
 * The file name a tarball is served under at `/npm/<name>/-/<file>`: the
 * upstream's own when it is a `.tgz` (the usual `<name>-<version>.tgz`), else
 * `<name>-<version>.tgz` (registries that serve tarballs at other URLs).
 */
function fileOf(name: string, version: string, tarball: string): string {
  const own = tarball.slice(tarball.lastIndexOf('/') + 1).split('?')[0];
  if (FILE.test(own)) return own;
  return `${name.slice(name.indexOf('/') + 1)}-${version}.tgz`;
}

/** A copy of the document whose `dist.tarball` URLs point at this server (the cached one is left as it is). */
function rewrite(doc: PackageDocument, name: string, base: string): PackageDocument {
  if (!doc.versions) return doc;
  const versions: NonNullable<PackageDocument['versions']> = {};
  for (const [v, m] of Object.entries(doc.versions)) {
    const t = m?.dist?.tarball;
    versions[v] =
      typeof t === 'string'
        ? { ...m, dist: { ...m.dist, tarball: `${base}/npm/${name}/-/${fileOf(name, v, t)}` } }
        : m;
  }
  return { ...doc, versions };
}

function wantsAbbreviated(request: FastifyRequest): boolean {
  const accept = request.headers.accept;
  return typeof accept === 'string' && accept.includes(ABBREVIATED);
}

function base(request: FastifyRequest, o: NpmRouteOptions): string {
  const configured = o.publicUrl();
  if (configured) return configured.replace(/\/+$/, '');
  return `${request.protocol}://${request.host}`;
}

function stale(reply: FastifyReply, seconds: number): void {
  reply.header('warning', '110 hoard "Response is Stale"').header('x-hoard-stale', String(seconds));
}

/**
 * The upstream URL of a client's raw path, resolved against the registry's
 * base. Encoded dot segments (`%2e%2e`) climb out of the base and a scheme
 * (`https:host/…`) replaces the host, and the request carries the upstream's
 * token: only paths under the configured registry are forwarded (400 else).
 */
function underRegistry(base: URL, rawPath: string): URL {
  const refuse = () =>
    new HoardError(
      'HOARD_EBAD_REQUEST',
      `npm path ${JSON.stringify(rawPath.slice(0, 200))} leaves the upstream registry`,
    );
  let url: URL;
  try {
    url = new URL(rawPath.replace(/^\/+/, ''), base);
  } catch {
    throw refuse();
  }
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) throw refuse();
  return url;
}

/** Passes a request through to the upstream (search; writes when enabled), with the upstream's credentials. */
async function forward(
  request: FastifyRequest,
  reply: FastifyReply,
  o: NpmRouteOptions,
  target: Target | undefined,
  rawPath: string,
): Promise<FastifyReply> {
  // A write goes to its package's upstream (a scope may have its own), whatever its form.
  const pkg = target && 'name' in target ? target.name : packageOfWrite(rawPath);
  const up = pkg ? o.upstreams.of(pkg) : o.upstreams.default;
  const query = (request.raw.url ?? '').includes('?')
    ? `?${(request.raw.url ?? '').split('?').slice(1).join('?')}`
    : '';
  const url = target?.kind === 'document' ? documentUrl(up, target.name) : underRegistry(up.url, rawPath);
  url.search = query;
  const headers: Record<string, string> = { ...o.upstreams.authorization(url) };
  for (const h of ['accept', 'content-type', 'npm-otp', 'content-length'])
    if (typeof request.headers[h] === 'string') headers[h] = request.headers[h] as string;
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  const res = await httpRequest(request.method, url, {
    headers,
    body: hasBody ? (request.body as Readable) : undefined,
    accept: 'any',
    retries: 0,
  });
  if (hasBody && pkg && res.status < 300) {
    // Read your own writes (npm-documents.ts): marked now, and again once the upstream's
    // answer ended, before the client sees its end (this listener runs before the pipe's).
    o.documents.invalidate(pkg);
    (res.body as Readable).once('end', () => o.documents.invalidate(pkg));
  }
  reply.code(res.status);
  if (typeof res.headers['content-type'] === 'string') reply.type(res.headers['content-type']);
  return reply.send(res.body);
}
