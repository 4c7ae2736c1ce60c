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
//
// The parts: git-request-body.ts (inflation, reading the rest, body failures
// as 400s), upload-pack-start.ts (upload-pack fed the request, the answer
// held until git's first output), git-fill-answers.ts (v2 answered from a
// cold fill before the mirror exists), git-receive-pack.ts (pushes),
// git-child-response.ts (a git child as a response body), git-http-replies.ts
// (no-cache headers, failures as a git client shows them).

import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';
import { abortOnDisconnect, pipeChild } from './git-child-response.ts';
import { plainCapability, serveFromFill } from './git-fill-answers.ts';
import { NO_CACHE, replyFailure } from './git-http-replies.ts';
import { spawnGit } from './git-process.ts';
import { type PushThroughOptions, receivePack } from './git-receive-pack.ts';
import { bodyFailure, readRest, requestBody } from './git-request-body.ts';
import { localLsRefs } from './local-ls-refs.ts';
import type { MirrorManager } from './mirror-manager.ts';
import { FLUSH_PKT, parseV2Request, pktLine, readRequestHead } from './pkt-line.ts';
import { startUploadPack } from './upload-pack-start.ts';
import { v2Capabilities } from './v2-capabilities.ts';

/** An extra route under `/git/<repo>/…` (e.g. snapshots), matched on the path after `/git/`. */
export interface GitSubRoute {
  method: 'GET' | 'POST';
  /** Matched against the path after `/git/`; group 1 must capture the repo path. */
  match: RegExp;
  handler: (request: FastifyRequest, reply: FastifyReply, match: RegExpExecArray) => Promise<unknown>;
}

/** The plugin's options; how pushes are treated are PushThroughOptions (git-receive-pack.ts). */
export interface GitPluginOptions extends PushThroughOptions {
  mirrors: MirrorManager;
  /** Start the manager (discovery, background warm-up) when the plugin loads (default true). */
  start?: boolean;
  routes?: GitSubRoute[];
}

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
    if (!m || !service) return replyFailure(reply, dumbProtocol());
    try {
      if (service === 'git-receive-pack') return await receivePack(mirrors, opts, request, reply, m[1], true);
      if (service !== 'git-upload-pack')
        throw new HoardError('HOARD_EBAD_REQUEST', `unsupported git service ${JSON.stringify(service)}`);
      return await infoRefs(request, reply, m[1]);
    } catch (err) {
      return replyFailure(reply, err);
    }
  });

  app.post('/*', { config: { scope: 'read' } }, async (request, reply) => {
    const rest = (request.params as { '*': string })['*'];
    for (const r of extra) {
      const m = r.method === 'POST' ? r.match.exec(rest) : null;
      if (m) return r.handler(request, reply, m);
    }
    const m = RPC.exec(rest);
    if (!m) return replyFailure(reply, dumbProtocol());
    try {
      if (m[2] === 'git-receive-pack') return await receivePack(mirrors, opts, request, reply, m[1], false);
      return await uploadPack(request, reply, m[1]);
    } catch (err) {
      return replyFailure(reply, err);
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
      if (await serveFromFill(mirrors, request, reply, repo, fill, head.bytes, t0)) return reply;
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
    const out = await startUploadPack({ request, reply, repo, dir: o.dir, proto, head: head.bytes, body });
    reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-result');
    if (o.staleSeconds !== null) reply.header('x-hoard-stale', String(o.staleSeconds));
    return reply.send(out);
  }
}

function dumbProtocol(): HoardError {
  return new HoardError('HOARD_EBAD_REQUEST', 'hoard serves git over the smart HTTP protocol only', {
    hint: 'use a git client >= 1.6.6 and the URL /git/<repo>(.git)',
  });
}
