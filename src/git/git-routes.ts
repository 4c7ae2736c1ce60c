// The git smart-HTTP routes, as a self-contained fastify plugin, registered
// with the prefix `/git` (`app.register(gitPlugin, { prefix: '/git', mirrors })`):
//
//   GET  /git/<repo>/info/refs?service=git-upload-pack   ref advertisement (v0) / capabilities (v2)
//   POST /git/<repo>/git-upload-pack                      negotiation and pack (v0, v2 ls-refs and fetch)
//   GET  /git/<repo>/info/refs?service=git-receive-pack   403, or forwarded upstream (--git-allow-push-through)
//   POST /git/<repo>/git-receive-pack                     idem
//
// Served by `git upload-pack --stateless-rpc` on the local mirror, streamed
// both ways (gzip request bodies are inflated on the fly). Freshness is
// enforced where refs are advertised: the v0 info/refs and the v2 ls-refs
// command. Wanted objects the mirror lacks trigger a fetch before upload-pack
// starts (afterwards nothing could be retried).

import { PassThrough, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError, httpStatusOf, redactSecrets, toHoardError } from '../core/errors.ts';
import { header, httpRequest } from '../http/http-client.ts';
import { gitFailure, pipeCompleted, spawnGit } from './git-process.ts';
import { localLsRefs } from './local-ls-refs.ts';
import type { ColdFill } from './mirror-cold-fill.ts';
import type { MirrorManager } from './mirror-manager.ts';
import type { UpstreamRefs } from './mirror-upstream-v2.ts';
import { FLUSH_PKT, parseV2Request, pktLine, readChunk, readRequestHead, sidebandPkts } from './pkt-line.ts';
import { parseRepoPath, Upstreams, upstreamHttpTarget } from './upstreams.ts';
import { v2Capabilities } from './v2-capabilities.ts';

/** An extra route under `/git/<repo>/…` (e.g. snapshots), matched on the path after `/git/`. */
export interface GitSubRoute {
  method: 'GET' | 'POST';
  /** Matched against the path after `/git/`; group 1 must capture the repo path. */
  match: RegExp;
  handler: (request: FastifyRequest, reply: FastifyReply, match: RegExpExecArray) => Promise<unknown>;
}

export interface GitPluginOptions {
  mirrors: MirrorManager;
  /** Forward pushes to the upstream instead of refusing them with 403. */
  allowPushThrough?: boolean;
  /** Start the manager (discovery, background warm-up) when the plugin loads (default true). */
  start?: boolean;
  routes?: GitSubRoute[];
  /**
   * Throws when the request may not push to the repo `key` (the server checks
   * the `write` scope and the token's ref prefixes against `git/<key>`, see
   * pushScopeName); default: anyone who may read.
   */
  authorizePush?: (request: FastifyRequest, key: string) => void;
  /**
   * Push-through may forward the client's own HTTP Basic credentials to the
   * upstream: only when the server has no tokens file (else they are a hoard token).
   */
  forwardClientBasicAuth?: boolean;
}

const NO_CACHE = {
  'cache-control': 'no-cache, max-age=0, must-revalidate',
  pragma: 'no-cache',
  expires: 'Fri, 01 Jan 1980 00:00:00 GMT',
};

const INFO_REFS = /^(.+)\/info\/refs$/;
const RPC = /^(.+)\/(git-upload-pack|git-receive-pack)$/;

export async function gitPlugin(app: FastifyInstance, opts: GitPluginOptions): Promise<void> {
  const { mirrors } = opts;
  mirrors.useLoggerIfUnset(app.log.child({ component: 'git' }));
  if (opts.start !== false) {
    await mirrors.start();
    app.addHook('onClose', async () => {
      await mirrors.close();
    });
  }
  const extra = opts.routes ?? [];

  app.addContentTypeParser(
    ['application/x-git-upload-pack-request', 'application/x-git-receive-pack-request'],
    (_req, payload, done) => done(null, payload),
  );

  app.get('/*', { config: { scope: 'read' } }, async (request, reply) => {
    const rest = (request.params as { '*': string })['*'];
    for (const r of extra) {
      const m = r.method === 'GET' ? r.match.exec(rest) : null;
      if (m) return r.handler(request, reply, m);
    }
    const m = INFO_REFS.exec(rest);
    const service = (request.query as { service?: string }).service;
    if (!m || !service) return fail(reply, dumbProtocol());
    try {
      if (service === 'git-receive-pack') return await receivePack(request, reply, m[1], true);
      if (service !== 'git-upload-pack')
        throw new HoardError('HOARD_EBAD_REQUEST', `unsupported git service ${JSON.stringify(service)}`);
      return await infoRefs(request, reply, m[1]);
    } catch (err) {
      return fail(reply, err);
    }
  });

  app.post('/*', { config: { scope: 'read' } }, async (request, reply) => {
    const rest = (request.params as { '*': string })['*'];
    for (const r of extra) {
      const m = r.method === 'POST' ? r.match.exec(rest) : null;
      if (m) return r.handler(request, reply, m);
    }
    const m = RPC.exec(rest);
    if (!m) return fail(reply, dumbProtocol());
    try {
      if (m[2] === 'git-receive-pack') return await receivePack(request, reply, m[1], false);
      return await uploadPack(request, reply, m[1]);
    } catch (err) {
      return fail(reply, err);
    }
  });

  function gitProtocol(request: FastifyRequest): string | undefined {
    const v = request.headers['git-protocol'];
    const s = Array.isArray(v) ? v.join(':') : v;
    // Passed to git as GIT_PROTOCOL; only the characters git itself uses.
    return s && /^[A-Za-z0-9=:._-]{1,256}$/.test(s) ? s : undefined;
  }

  function isV2(proto: string | undefined): boolean {
    return proto?.split(':').includes('version=2') ?? false;
  }

  /** Kills the git child when the client goes away before the response is complete. */
  function abortOnDisconnect(reply: FastifyReply): AbortController {
    const ac = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) {
        reply.log.debug('git: client went away before the response was complete; killing git');
        ac.abort();
      }
    });
    return ac;
  }

  async function infoRefs(request: FastifyRequest, reply: FastifyReply, repo: string) {
    const proto = gitProtocol(request);
    const v2 = isV2(proto);
    mirrors.metrics.requests.inc({ service: 'info-refs' });
    // A v2 client before the mirror exists: the capabilities a mirror advertises (an empty
    // repository configured like one), once the upstream's refs are known (a missing or
    // unreachable upstream fails here, as it did when this request waited for the clone).
    const fill = v2 ? await mirrors.coldFill(repo) : null;
    const cold =
      fill !== null &&
      (await fill.refs.then(
        () => true,
        () => false,
      ));
    // v2 advertises capabilities here and refs in ls-refs; v0 advertises refs here.
    const o = cold ? null : await mirrors.open(repo, { refs: !v2 });
    if (v2) {
      // Capabilities only: the same bytes while the repository's config is the same,
      // kept once git wrote them (v2-capabilities.ts), so no git process per fetch.
      const caps = await v2Capabilities(o ? o.dir : await mirrors.templateDir(), proto as string, {
        timeoutMs: mirrors.processTimeoutMs,
      });
      reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-advertisement');
      return reply.send(caps);
    }
    const ac = abortOnDisconnect(reply);
    const g = spawnGit(['upload-pack', '--stateless-rpc', '--advertise-refs', '.'], {
      cwd: o ? o.dir : await mirrors.templateDir(),
      env: { GIT_PROTOCOL: proto },
      signal: ac.signal,
    });
    const out = new PassThrough();
    // Like git http-backend: the `# service=` preamble (v0 only).
    out.write(Buffer.concat([pktLine('# service=git-upload-pack\n'), FLUSH_PKT]));
    pipeChild(g, out, request, repo, 'upload-pack --advertise-refs');
    reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-advertisement');
    if (o && o.staleSeconds !== null) reply.header('x-hoard-stale', String(o.staleSeconds));
    return reply.send(out);
  }

  async function uploadPack(request: FastifyRequest, reply: FastifyReply, repo: string) {
    const proto = gitProtocol(request);
    mirrors.metrics.requests.inc({ service: 'upload-pack' });
    const t0 = mirrors.clock.now();
    // Before the mirror exists, a v2 request may be answered from the fill creating it.
    const fill = isV2(proto) ? await mirrors.coldFill(repo) : null;
    let o = fill ? null : await mirrors.open(repo, { refs: false });
    const body = requestBody(request);
    let head: Awaited<ReturnType<typeof readRequestHead>>;
    try {
      head = await readRequestHead(body, DEFAULTS.gitRequestHeadMaxBytes);
      if (fill && head.complete && !head.malformed)
        head = { ...head, bytes: await readRest(body, head.bytes, DEFAULTS.gitRequestHeadMaxBytes) };
    } catch (err) {
      throw bodyFailure(err);
    }
    if (head.malformed) {
      request.log.info({ repo }, 'git: upload-pack request is not pkt-line framed; refused');
      throw new HoardError('HOARD_EBAD_REQUEST', 'malformed git request: not pkt-line framed', {
        hint: 'POST …/git-upload-pack takes a git protocol request (pkt-lines), as git sends it',
      });
    }
    if (fill) {
      // (A boolean: a FastifyReply is a thenable, awaiting it waits for the response.)
      if (await serveFromFill(request, reply, repo, fill, head.bytes, t0)) return reply;
    }
    if (head.command === 'ls-refs') {
      o = await mirrors.open(repo, { refs: true });
      // Fresh now (open waited for a fetch when the refs were older than the bound):
      // answered from the mirror's ref files when they say exactly what git would.
      if (head.complete) {
        try {
          head = { ...head, bytes: await readRest(body, head.bytes, DEFAULTS.gitRequestHeadMaxBytes) };
        } catch (err) {
          throw bodyFailure(err);
        }
        const req = isV2(proto) ? parseV2Request(head.bytes) : null;
        const answer =
          req?.command === 'ls-refs' && req.capabilities.every(plainCapability)
            ? await localLsRefs(o.dir, req.args)
            : null;
        if (answer) {
          request.log.debug(
            { repo, args: req?.args.slice(0, 4).map((a) => a.slice(0, 200)) },
            'git: ls-refs answered from the ref files',
          );
          reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-result');
          if (o.staleSeconds !== null) reply.header('x-hoard-stale', String(o.staleSeconds));
          return reply.send(answer);
        }
      }
    } else {
      o ??= await mirrors.open(repo, { refs: false });
      // A fetch (v0/v1, or v2's `command=fetch`) serves a pack: a clone or fetch served from the mirror.
      mirrors.countUploadPack(o.key);
    }
    if (head.wants.length > 0) {
      const missing = await mirrors.ensureObjects(repo, head.wants);
      if (missing.length)
        request.log.info(
          { repo, missing: missing.slice(0, 10) },
          'git: wanted objects unknown even after a fetch',
        );
    }
    const ac = abortOnDisconnect(reply);
    const g = spawnGit(['upload-pack', '--stateless-rpc', '.'], {
      cwd: o.dir,
      env: { GIT_PROTOCOL: proto },
      signal: ac.signal,
      stdin: true,
    });
    const stdin = g.child.stdin!;
    stdin.write(head.bytes);
    // A body that fails later (mid-stream) must not leave git waiting for the rest of stdin.
    body.on('error', () => g.kill());
    body.pipe(stdin);
    // The answer starts only once git said something: a body that fails to
    // inflate (or is cut off) before that kills git and is a 400, and a
    // request git rejects is a 4xx, instead of a 200 cut off mid-way (or a
    // child left waiting for stdin that never ends).
    const first = await firstOf(g, body);
    if (first === 'body-error') {
      g.kill();
      await g.done;
      throw bodyFailure(body.errored);
    }
    if (first === 'failed') {
      // git exited non-zero before answering: nobody will read its output.
      g.child.stdout?.resume();
      const exit = await g.done;
      const stderr = exit.stderr.trim();
      if (body.errored) throw bodyFailure(body.errored);
      if (
        !exit.aborted &&
        !exit.timedOut &&
        /protocol error|invalid command|expected|bad line/i.test(stderr)
      ) {
        request.log.info({ repo, stderr }, 'git: upload-pack rejected the request');
        throw new HoardError('HOARD_EBAD_REQUEST', 'malformed git request: git upload-pack rejected it');
      }
      throw new HoardError('HOARD_EGIT', 'git upload-pack failed', {
        cause: gitFailure(['upload-pack'], exit),
      });
    }
    const out = new PassThrough();
    pipeChild(g, out, request, repo, 'upload-pack');
    reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-result');
    if (o.staleSeconds !== null) reply.header('x-hoard-stale', String(o.staleSeconds));
    return reply.send(out);
  }

  /**
   * Answers a v2 request from the cold fill creating the mirror, when it can:
   * `ls-refs` with the fill's refs (if they are fresh enough for a request
   * that arrived at `t0`), and a clone's `fetch` (wants among the fill's tips,
   * no haves, no shallow or filter) with the fill's pack, read from its spool
   * as it arrives. Anything else returns null: the request waits for the
   * mirror and is served by upload-pack as usual.
   */
  async function serveFromFill(
    request: FastifyRequest,
    reply: FastifyReply,
    repo: string,
    fill: ColdFill,
    bytes: Buffer,
    t0: number,
  ): Promise<boolean> {
    const req = parseV2Request(bytes);
    if (!req?.capabilities.every(plainCapability)) return false;
    if (req.command === 'ls-refs') {
      if (!mirrors.fillFreshFor(fill, t0)) return false;
      const refs = await fill.refs.catch(() => null);
      const answer = refs && lsRefsAnswer(refs, req.args);
      if (!answer) return false;
      reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-result');
      void reply.send(answer);
      return true;
    }
    if (req.command !== 'fetch' || !clonesFromFill(req.args, fill)) return false;
    const pack = await fill.openPack();
    if (!pack) return false;
    mirrors.countUploadPack(parseRepoPath(repo).key);
    request.log.debug({ repo }, 'git: serving a clone from the pack being mirrored');
    reply.raw.on('close', () => pack.destroy());
    const out = Readable.from(packfileSection(pack, request), { objectMode: false });
    reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-result');
    void reply.send(out);
    return true;
  }

  /**
   * The `packfile` section of a v2 fetch answer around the pack's bytes
   * (sideband 1), its final flush as soon as the whole pack arrived and
   * passed the fill's stream checks (the client's own git verifies the
   * objects and their connectivity; it does not wait for the mirror's
   * indexing). A pack that fails before (the upstream cut off or reporting an
   * error, a bad header or trailer) ends with a sideband-3 error, which the
   * client reports and fails on.
   */
  async function* packfileSection(pack: Readable, request: FastifyRequest): AsyncGenerator<Buffer> {
    yield pktLine('packfile\n');
    try {
      // One write per spool read (256 KiB), not two per pkt-line: fewer chunks of the HTTP
      // response's chunked encoding and fewer socket writes for the same bytes.
      for await (const chunk of pack) yield Buffer.concat(sidebandPkts(1, chunk as Buffer));
    } catch (err) {
      request.log.warn({ err: (err as Error).message }, 'git: the pack being mirrored failed mid-stream');
      yield Buffer.concat(
        sidebandPkts(3, Buffer.from(`hoard: upstream fetch failed (request id ${request.id})\n`)),
      );
      return;
    }
    yield FLUSH_PKT;
  }

  /**
   * Waits for git's first output byte, its exit, or a failure of the request
   * body, whichever comes first. A zero exit counts as output (what it wrote
   * may still be in the pipe): the normal streaming path handles it.
   */
  function firstOf(
    g: ReturnType<typeof spawnGit>,
    body: Readable,
  ): Promise<'output' | 'failed' | 'body-error'> {
    const { child } = g;
    const stdout = child.stdout!;
    if (body.errored) return Promise.resolve('body-error');
    return new Promise((resolve) => {
      const finish = (v: 'output' | 'failed' | 'body-error') => {
        stdout.off('readable', onReadable);
        body.off('error', onBodyError);
        child.off('exit', onExit);
        resolve(v);
      };
      // 'readable' also fires at end of stream; only bytes count as an answer.
      const onReadable = () => {
        if (stdout.readableLength > 0) finish('output');
      };
      const onBodyError = () => finish('body-error');
      const onExit = (code: number | null) => finish(code === 0 ? 'output' : 'failed');
      stdout.on('readable', onReadable);
      body.once('error', onBodyError);
      child.once('exit', onExit);
      if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode);
    });
  }

  function pipeChild(
    g: ReturnType<typeof spawnGit>,
    out: PassThrough,
    request: FastifyRequest,
    repo: string,
    what: string,
  ): void {
    pipeCompleted(g, out, (exit) => {
      if (!exit.aborted)
        request.log.warn(
          {
            repo,
            code: exit.code,
            signal: exit.signal,
            timedOut: exit.timedOut,
            stderr: exit.stderr.trim(),
          },
          `git: ${what} failed`,
        );
      return new Error(`git ${what} failed`);
    });
  }

  /**
   * The request body, inflated when the client sent it gzip-compressed. Its
   * failures (bad gzip, a client that went away) surface as an 'error' event
   * or `errored` on the returned stream, whenever they happen: a listener is
   * attached at once, so one emitted before anyone listens is not lost.
   */
  function requestBody(request: FastifyRequest): Readable {
    const raw = request.body as Readable;
    if (!(raw instanceof Readable)) throw new HoardError('HOARD_EBAD_REQUEST', 'missing git request body');
    const enc = String(request.headers['content-encoding'] ?? '').toLowerCase();
    let body: Readable = raw;
    if (enc === 'gzip' || enc === 'x-gzip') {
      // Not pipeline(): it would destroy the request on a gzip error, i.e. the socket,
      // and the client would get a reset instead of the 400. The rest of the body is
      // drained instead (the server's request timeouts bound how long).
      const gunzip = createGunzip();
      raw.on('error', (err) => gunzip.destroy(err));
      gunzip.on('error', () => {
        raw.unpipe(gunzip);
        raw.resume();
      });
      body = raw.pipe(gunzip);
    } else if (enc && enc !== 'identity')
      throw new HoardError('HOARD_EBAD_REQUEST', `unsupported Content-Encoding ${JSON.stringify(enc)}`);
    body.on('error', () => {});
    return body;
  }

  async function receivePack(request: FastifyRequest, reply: FastifyReply, repo: string, advertise: boolean) {
    mirrors.metrics.requests.inc({ service: 'receive-pack' });
    if (!opts.allowPushThrough) {
      let upstream = '';
      try {
        upstream = ` (${redactSecrets(mirrors.upstreamOf(repo))})`;
      } catch {}
      throw new HoardError(
        'HOARD_EFORBIDDEN',
        `hoard is a read-only git mirror: pushes are not accepted; push to the upstream${upstream} directly`,
        { hint: 'or start hoard serve with --git-allow-push-through to forward pushes upstream' },
      );
    }
    opts.authorizePush?.(request, parseRepoPath(repo).key);
    const upstream = mirrors.upstreamOf(repo);
    const local = Upstreams.localPath(upstream);
    if (local !== null) {
      // A file:// upstream: run receive-pack on it, like git http-backend would.
      const ac = abortOnDisconnect(reply);
      const args = advertise
        ? ['receive-pack', '--stateless-rpc', '--advertise-refs', local]
        : ['receive-pack', '--stateless-rpc', local];
      const g = spawnGit(args, { signal: ac.signal, stdin: !advertise });
      const out = new PassThrough();
      if (advertise) out.write(Buffer.concat([pktLine('# service=git-receive-pack\n'), FLUSH_PKT]));
      else {
        const body = requestBody(request);
        if (body.errored) g.kill();
        body.on('error', () => g.kill());
        body.pipe(g.child.stdin!);
        void g.done.then((e) => {
          if (e.code === 0) mirrors.invalidate(repo);
        });
      }
      pipeChild(g, out, request, repo, 'receive-pack');
      reply
        .code(200)
        .headers(NO_CACHE)
        .header(
          'content-type',
          advertise
            ? 'application/x-git-receive-pack-advertisement'
            : 'application/x-git-receive-pack-result',
        );
      return reply.send(out);
    }
    // An HTTP(S) upstream: forward the request, credentials included.
    const target = upstreamHttpTarget(upstream);
    const url = new URL(
      advertise ? `${target.url}/info/refs?service=git-receive-pack` : `${target.url}/git-receive-pack`,
    );
    const headers: Record<string, string> = {};
    for (const h of [
      'authorization',
      'content-type',
      'content-encoding',
      'git-protocol',
      'user-agent',
      'accept',
    ]) {
      const v = request.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    // hoard's own credentials never go upstream: with a tokens file every Authorization a
    // request may carry here is a hoard token (Bearer, or Basic with the token as the
    // password), so only loopback mode forwards a client's Basic credentials.
    if (headers.authorization && (!opts.forwardClientBasicAuth || !/^basic\s/i.test(headers.authorization)))
      delete headers.authorization;
    if (target.headers.authorization && !headers.authorization)
      headers.authorization = target.headers.authorization;
    // Through the one HTTP client; every status is the upstream's answer to pass on, and a
    // push is never retried (its body streams once) nor redirected.
    const res = await httpRequest(advertise ? 'GET' : 'POST', url, {
      headers,
      body: advertise ? undefined : (request.body as Readable),
      accept: 'any',
      retries: 0,
    });
    if (!advertise && res.status < 300) {
      mirrors.invalidate(repo);
      // The upstream moves its refs while it streams the report after these headers: a fetch
      // started in between would read the old ones. Again at the report's end, before the
      // client sees it (this listener runs before the pipe's end handler, added by send).
      res.body.once('end', () => mirrors.invalidate(repo));
    }
    reply.code(res.status).headers(NO_CACHE);
    for (const h of ['content-type', 'www-authenticate', 'location']) {
      const v = header(res, h);
      if (v) reply.header(h, v);
    }
    return reply.send(res.body);
  }

  function fail(reply: FastifyReply, err: unknown) {
    const e = toHoardError(err, 'HOARD_EGIT');
    const status = httpStatusOf(e);
    if (status >= 500) logFailure(reply.request, e);
    // text/plain: the git client shows it to the user as "remote: …".
    return reply
      .code(status)
      .headers(NO_CACHE)
      .header('content-type', 'text/plain; charset=utf-8')
      .header('x-hoard-error', e.code)
      .header('x-hoard-request-id', String(reply.request.id))
      .send(`${clientMessage(e, reply.request)}\n`);
  }
}

/** Reads the rest of a request body after `head` (at most `max` bytes in all; then what was read). */
async function readRest(body: Readable, head: Buffer, max: number): Promise<Buffer> {
  const parts = [head];
  let n = head.length;
  while (n < max) {
    const c = await readChunk(body);
    if (c === null) break;
    parts.push(c);
    n += c.length;
  }
  return Buffer.concat(parts);
}

/** Capability lines of a client's v2 command that a fill's answer honours. */
function plainCapability(line: string): boolean {
  return line.startsWith('agent=') || line.startsWith('session-id=') || line === 'object-format=sha1';
}

/**
 * The answer to a client's `ls-refs` (its arguments: `symrefs`, `peel`,
 * `unborn`, `ref-prefix`) from a fill's refs, as upload-pack would write it,
 * except that `peel` adds nothing: a fill's tags are not peeled until its pack
 * is indexed (mirror-cold-fill.ts), and the client's git peels the tags it
 * writes itself. null for an argument it does not know.
 */
export function lsRefsAnswer(refs: UpstreamRefs, args: string[]): Buffer | null {
  let symrefs = false;
  let unborn = false;
  const prefixes: string[] = [];
  for (const a of args) {
    if (a === 'symrefs') symrefs = true;
    else if (a === 'peel') continue;
    else if (a === 'unborn') unborn = true;
    else if (a.startsWith('ref-prefix ')) prefixes.push(a.slice(11));
    else return null;
  }
  const wanted = (name: string) => prefixes.length === 0 || prefixes.some((p) => name.startsWith(p));
  const lines: Buffer[] = [];
  if (unborn && refs.unbornHead && wanted('HEAD'))
    lines.push(pktLine(`unborn HEAD${symrefs ? ` symref-target:${refs.unbornHead}` : ''}\n`));
  for (const r of refs.refs) {
    if (!wanted(r.name)) continue;
    let line = `${r.oid} ${r.name}`;
    if (symrefs && r.symref) line += ` symref-target:${r.symref}`;
    lines.push(pktLine(`${line}\n`));
  }
  lines.push(FLUSH_PKT);
  return Buffer.concat(lines);
}

/**
 * Whether a client's v2 `fetch` arguments ask for what a fill's full pack
 * gives: a fresh clone (wants only, each one of the fill's tips, `done`, no
 * haves, no shallow/deepen, no filter) that accepts ofs-deltas. Extra objects
 * (a single-branch clone gets every branch's) are accepted by git: it keeps
 * what it received and checks its refs are connected.
 */
export function clonesFromFill(args: string[], fill: Pick<ColdFill, 'hasTip'>): boolean {
  let wants = 0;
  let done = false;
  let ofsDelta = false;
  for (const a of args) {
    if (a.startsWith('want ')) {
      if (!fill.hasTip(a.slice(5))) return false;
      wants++;
    } else if (a === 'done') done = true;
    else if (a === 'ofs-delta') ofsDelta = true;
    else if (a !== 'thin-pack' && a !== 'no-progress' && a !== 'include-tag') return false;
  }
  return wants > 0 && done && ofsDelta;
}

function dumbProtocol(): HoardError {
  return new HoardError('HOARD_EBAD_REQUEST', 'hoard serves git over the smart HTTP protocol only', {
    hint: 'use a git client >= 1.6.6 and the URL /git/<repo>(.git)',
  });
}

/**
 * Logs a failed git request with everything known (git's stderr, the
 * upstream's HTTP error, the cause chain); the request logger carries reqId.
 */
export function logFailure(request: FastifyRequest, e: HoardError): void {
  const cause = e.cause instanceof Error ? e.cause.message : undefined;
  request.log.warn({ err: e.message, cause, code: e.code, reqId: request.id }, 'git request failed');
}

/**
 * What a client is told about a failure. 4xx messages are hoard's own words
 * about the request. A 5xx may carry an upstream's or git's text (host names,
 * internal addresses, file paths): the client gets a generic message and the
 * request id to find the details in the log, except for messages hoard wrote
 * itself and marked `details.clientSafe` (e.g. "could not mirror X: upstream
 * fetch failed").
 */
export function clientMessage(e: HoardError, request: FastifyRequest): string {
  if (httpStatusOf(e) < 500) return `${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}`;
  const generic = ['HOARD_EGIT', 'HOARD_EREMOTE'].includes(e.code)
    ? 'upstream fetch failed'
    : 'internal error';
  const text = e.details?.clientSafe === true ? e.message : `git request failed: ${generic}`;
  return `${text} (request id ${request.id})${e.hint ? `\nhint: ${e.hint}` : ''}`;
}

/** A failure reading the request body as a client error: bad gzip data is 400, never a 5xx. */
function bodyFailure(err: unknown): HoardError {
  if (err instanceof HoardError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code.startsWith('Z_') || /incorrect header check|unexpected end of file|invalid/i.test(String(err)))
    return new HoardError('HOARD_EBAD_REQUEST', 'invalid gzip request body', {
      cause: err,
      hint: 'the body sent with Content-Encoding: gzip does not inflate',
    });
  return toHoardError(err, 'HOARD_EBAD_REQUEST', 'could not read the git request body');
}

/**
 * The name a push to the repo `key` is authorized as: `git/<key>` (e.g.
 * `git/gh/acme/app`). A token may push through the proxy when it has the
 * `write` scope and its ref prefixes (if any) cover that name, by the same
 * whole-segment rule as ref writes: `refs = ["git/"]` allows pushes to every
 * repo, `["git/gh/acme"]` to the repos under gh/acme, `["cache/"]` to none.
 */
export function pushScopeName(key: string): string {
  return `git/${key}`;
}
