// The web console of `hoard serve`: server-rendered pages at /ui/ (Overview,
// Git, Refs, Blobs), the same data as JSON at /v1/status…, and `/` sending a
// browser to /ui/. Read-only; nothing it serves changes a store.
//
// Auth is the API's (server/auth.ts), read scope: an Authorization header
// (scripts), or a session cookie a browser got by signing in with a read
// token (console-sessions.ts: the cookie holds a random session id, never
// the token). `--public-read` opens it; without a tokens file only loopback
// clients get in. A page asked without credentials redirects to the sign-in
// form; JSON answers 401.
//
// Every response carries a strict CSP (scripts and styles from this origin
// only, no inline code, no framing), X-Frame-Options: DENY, nosniff,
// a same-origin referrer policy and no-store. File downloads are attachments, sandboxed.
//
// The charts' samples (console-sampler.ts) are taken on a timer from the
// counters the server keeps anyway: nothing is added to a request's path.

import { readFileSync } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Clock, systemClock } from '../../core/clock.ts';
import { digestFromHex } from '../../core/digest.ts';
import { HoardError, httpStatusOf, isHoardError, toHoardError } from '../../core/errors.ts';
import { gitFeature } from '../../git/git-feature.ts';
import { snapshotFeature } from '../../git/snapshot-feature.ts';
import {
  authorize,
  boundToRefPrefixes,
  mayReadRef,
  type Principal,
  principalOf,
  principalOfChecked,
  refReadForbidden,
} from '../../server/auth.ts';
import type { RouteAuthConfig } from '../../server/context.ts';
import { defineFeature, type Feature, type FeatureContext, type FeatureKey } from '../../server/feature.ts';
import { ConsoleData } from './console-data.ts';
import {
  blobsPage,
  type Chrome,
  errorPage,
  gitPage,
  layout,
  overviewPage,
  refPage,
  refsPage,
  signInPage,
} from './console-pages.ts';
import { REFS_PAGE_DEFAULT } from './console-refs.ts';
import { Sampler } from './console-sampler.ts';
import {
  ConsoleSessions,
  CSRF_COOKIE,
  cookie,
  parseCookies,
  randomToken,
  SESSION_COOKIE,
  type Session,
  sameToken,
} from './console-sessions.ts';
import { consoleSettings } from './console-settings.ts';

export interface ConsoleOptions {
  /** Time of the sampler (tests advance it). */
  clock?: Clock;
}

const SESSION_MAX = 10_000;
const CSRF_TTL_SECONDS = 3600;
const FORM_BODY_LIMIT = 8192;

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // Not no-referrer: with it Chromium sends `Origin: null` on the sign-in POST.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const ASSETS: Record<string, { type: string; file: string }> = {
  'console.css': { type: 'text/css; charset=utf-8', file: 'console.css' },
  'console.js': { type: 'text/javascript; charset=utf-8', file: 'console.js' },
  'favicon.svg': { type: 'image/svg+xml', file: 'favicon.svg' },
};

const VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Who is asking: a session (signed in through the form) or whatever authorize() accepted. */
interface Access {
  who: string;
  session?: Session;
  /** Bounds the refs shown (a prefix-bound token sees only its own, auth.ts mayReadRef). */
  reader?: Principal | Session;
}

/** The console as a feature; options for tests (a clock, a short interval). */
export function defineConsoleFeature(opts: ConsoleOptions = {}) {
  return defineFeature({
    name: 'console',
    settings: consoleSettings,
    create(ctx, settings): Feature {
      const git = optional(ctx, gitFeature);
      const snapshots = optional(ctx, snapshotFeature);
      const intervalMs = settings.sampleIntervalMs;
      const sampler: Sampler = new Sampler({
        clock: opts.clock ?? systemClock,
        intervalMs,
        capacity: Math.min(3600, Math.max(1, Math.round(3_600_000 / intervalMs))),
        read: () => data.reading(),
        onError: (err) => ctx.log.warn({ err }, 'console: sampling failed'),
      });
      const data = new ConsoleData({
        ctx,
        git,
        snapshots,
        sampler: () => sampler,
        version: VERSION,
        intervalMs,
      });
      const sessions = new ConsoleSessions({ ttlMs: settings.sessionTtlMs, max: SESSION_MAX });
      const assets = new Map(
        Object.entries(ASSETS).map(([name, a]) => [
          name,
          { type: a.type, body: readFileSync(new URL(`./assets/${a.file}`, import.meta.url)) },
        ]),
      );
      const open: { config: RouteAuthConfig } = { config: { scope: 'none' } };

      function access(request: FastifyRequest): Access {
        const session = sessions.lookup(parseCookies(request.headers.cookie).get(SESSION_COOKIE));
        if (session) return { who: session.principal, session, reader: session };
        const who = authorize(
          ctx.auth,
          { remoteAddress: request.socket.remoteAddress, authorization: request.headers.authorization },
          'read',
        );
        // Checked above (and counted by the lockout there): this lookup only finds its prefixes.
        return { who, reader: principalOf(ctx.auth, request.headers.authorization) };
      }

      /** The page of refs `a` may see. */
      const refsFor = (request: FastifyRequest, a: Access) =>
        data.refs(q(request, 'prefix'), q(request, 'after'), limitOf(request), (name) =>
          mayReadRef(a.reader, name),
        );
      /** One ref, if `a` may see it (403 otherwise, before anything is read). */
      const refFor = (request: FastifyRequest, a: Access) => {
        const name = q(request, 'name');
        if (!mayReadRef(a.reader, name)) throw refReadForbidden(a.who, a.reader?.refPrefixes, name);
        return data.ref(name, q(request, 'version'), q(request, 'path'));
      };

      /**
       * The blobs page. Its lists (largest, most read) name digests of every
       * namespace, and a digest is all a blob read needs: a reader bound to
       * ref prefixes gets the lookup of a digest it already knows, no lists
       * (as GET /v1/blobs refuses it the listing).
       */
      const blobsFor = async (request: FastifyRequest, a: Access) => {
        const view = await data.blobs(q(request, 'digest'));
        return boundToRefPrefixes(a.reader)
          ? { ...view, largest: { memory: [], disk: [] }, mostRead: [] }
          : view;
      };

      const secure = (request: FastifyRequest) => request.protocol === 'https';
      const chrome = (a: Access): Chrome => ({ version: VERSION, signOutCsrf: a.session?.csrf });

      /** A page: access checked (no credentials → the sign-in form), errors as an escaped page. */
      function page(
        render: (
          request: FastifyRequest,
          a: Access,
        ) => Promise<{
          tab: Parameters<typeof layout>[0];
          title: string;
          body: ReturnType<typeof overviewPage>;
        }>,
      ) {
        return async (request: FastifyRequest, reply: FastifyReply) => {
          let a: Access;
          try {
            a = access(request);
          } catch (err) {
            const e = toHoardError(err);
            if (e.code === 'HOARD_EUNAUTHORIZED' && ctx.auth.tokens)
              return reply.redirect(`/ui/sign-in?next=${encodeURIComponent(request.url)}`, 303);
            return sendError(reply, e, { version: VERSION });
          }
          try {
            const p = await render(request, a);
            return reply.type('text/html; charset=utf-8').send(layout(p.tab, p.title, chrome(a), p.body));
          } catch (err) {
            return sendError(reply, toHoardError(err), chrome(a));
          }
        };
      }

      function sendError(reply: FastifyReply, e: HoardError, c: Chrome) {
        const status = httpStatusOf(e);
        if (status >= 500) reply.log.error({ err: e }, 'console: page failed');
        const message = status >= 500 && e.code === 'HOARD_EINTERNAL' ? 'internal error' : e.message;
        return reply
          .code(status)
          .type('text/html; charset=utf-8')
          .send(layout('error', `Error ${status}`, c, errorPage(status, e.code, message)));
      }

      function signInForm(
        reply: FastifyReply,
        request: FastifyRequest,
        next: string,
        error?: string,
        status = error ? 401 : 200,
      ) {
        const csrf = randomToken();
        reply.header(
          'set-cookie',
          cookie(CSRF_COOKIE, csrf, {
            path: '/ui/',
            maxAgeSeconds: CSRF_TTL_SECONDS,
            secure: secure(request),
          }),
        );
        return reply
          .code(status)
          .type('text/html; charset=utf-8')
          .send(
            layout(
              'sign-in',
              'Sign in',
              { version: VERSION },
              signInPage({ csrf, next, error, loopbackOnly: ctx.auth.tokens === undefined }),
            ),
          );
      }

      /** Same-origin form posts only (with the CSRF token, the defence in depth). */
      function crossSite(request: FastifyRequest): boolean {
        const site = request.headers['sec-fetch-site'];
        if (site !== undefined && site !== 'same-origin' && site !== 'none') return true;
        // `null` (privacy settings, sandboxed frames) says nothing: the CSRF token decides.
        const origin = request.headers.origin;
        return (
          origin !== undefined && origin !== 'null' && origin !== `${request.protocol}://${request.host}`
        );
      }

      function formOf(request: FastifyRequest): URLSearchParams {
        if (!(request.body instanceof URLSearchParams))
          throw new HoardError('HOARD_EBAD_REQUEST', 'expected a form (application/x-www-form-urlencoded)');
        return request.body;
      }

      const q = (request: FastifyRequest, name: string): string => {
        const v = (request.query as Record<string, unknown>)[name];
        if (v === undefined) return '';
        if (typeof v !== 'string')
          throw new HoardError('HOARD_EBAD_REQUEST', `query parameter ${name} must be given once`);
        if (v.length > 4096)
          throw new HoardError('HOARD_EBAD_REQUEST', `query parameter ${name} is too long`);
        return v;
      };
      const limitOf = (request: FastifyRequest) => {
        const text = q(request, 'limit');
        if (text === '') return REFS_PAGE_DEFAULT;
        if (!/^\d{1,6}$/.test(text)) throw new HoardError('HOARD_EBAD_REQUEST', 'limit must be a number');
        return Number(text);
      };

      return {
        listening() {
          sampler.start();
        },
        close: () => sampler.close(),
        routes(app) {
          app.addHook('onSend', (_request, reply, payload, done) => {
            // A route's own, stricter CSP (downloads: sandbox) stays.
            for (const [k, v] of Object.entries(SECURITY_HEADERS))
              if (!reply.hasHeader(k)) reply.header(k, v);
            done(null, payload);
          });
          app.addContentTypeParser(
            'application/x-www-form-urlencoded',
            { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT },
            (_req, body, done) => done(null, new URLSearchParams(body as string)),
          );

          // Browsers asking for the root get the console; other clients the usual 404.
          app.get('/', open, async (request, reply) => {
            if (/\btext\/html\b/.test(request.headers.accept ?? '')) return reply.redirect('/ui/', 302);
            return reply
              .code(404)
              .send({ error: { code: 'HOARD_EBAD_REQUEST', message: `no route ${request.method} /` } });
          });
          app.get('/ui', open, async (_request, reply) => reply.redirect('/ui/', 301));
          app.get('/ui/assets/:name', open, async (request, reply) => {
            const a = assets.get((request.params as { name: string }).name);
            if (!a) throw new HoardError('HOARD_EBLOB_NOT_FOUND', 'no such asset');
            return reply.type(a.type).header('cache-control', 'no-cache').send(a.body);
          });

          app.get(
            '/ui/',
            open,
            page(async () => ({
              tab: 'overview',
              title: 'Overview',
              body: overviewPage(await data.overview()),
            })),
          );
          app.get(
            '/ui/git',
            open,
            page(async () => ({ tab: 'git', title: 'Git mirrors', body: gitPage(await data.git()) })),
          );
          app.get(
            '/ui/refs',
            open,
            page(async (request, a) => ({
              tab: 'refs',
              title: 'Refs',
              body: refsPage(await refsFor(request, a)),
            })),
          );
          app.get(
            '/ui/ref',
            open,
            page(async (request, a) => {
              const view = await refFor(request, a);
              return {
                tab: 'refs',
                title: `Ref ${q(request, 'name')}`,
                body: refPage(view, q(request, 'version')),
              };
            }),
          );
          app.get(
            '/ui/blobs',
            open,
            page(async (request, a) => {
              const digest = q(request, 'digest');
              return { tab: 'blobs', title: 'Blobs', body: blobsPage(await blobsFor(request, a), digest) };
            }),
          );

          // A file of a synced folder (or any blob), as an attachment: streamed from the tiers like the blob API.
          app.get('/ui/file/sha256/:hex', open, async (request, reply) => {
            access(request);
            const hex = (request.params as { hex: string }).hex;
            if (!/^[0-9a-f]{64}$/.test(hex))
              throw new HoardError('HOARD_EDIGEST_INVALID', 'expected 64 lowercase hex digits');
            const digest = digestFromHex(hex);
            const st = await ctx.blobs.stat(digest);
            if (!st) throw new HoardError('HOARD_EBLOB_NOT_FOUND', `blob ${digest} not found`);
            const name = q(request, 'name') || hex;
            reply.headers({
              'content-type': 'application/octet-stream',
              'content-length': String(st.size),
              'content-disposition': contentDisposition(name),
              'content-security-policy': "default-src 'none'; sandbox; frame-ancestors 'none'",
            });
            return reply.send(await ctx.blobs.read(digest));
          });

          app.get('/ui/sign-in', open, async (request, reply) =>
            signInForm(reply, request, safeNext(q(request, 'next'))),
          );
          app.post('/ui/sign-in', open, async (request, reply) => {
            const form = formOf(request);
            const next = safeNext(form.get('next') ?? '');
            if (crossSite(request))
              throw new HoardError('HOARD_EFORBIDDEN', 'sign-in from another site refused');
            if (
              !sameToken(form.get('csrf') ?? undefined, parseCookies(request.headers.cookie).get(CSRF_COOKIE))
            )
              throw new HoardError(
                'HOARD_EFORBIDDEN',
                'the sign-in form expired or came from elsewhere: reload it',
                {
                  hint: 'open /ui/sign-in again',
                },
              );
            if (!ctx.auth.tokens)
              throw new HoardError(
                'HOARD_EFORBIDDEN',
                'this server accepts local clients only (no tokens file)',
              );
            const token = form.get('token') ?? '';
            const client = request.socket.remoteAddress;
            // The failed-token lockout applies here as on every route (server/auth-failures.ts).
            let p: Principal | undefined;
            try {
              p = principalOfChecked(ctx.auth, client, `Bearer ${token.length <= 4096 ? token : '-'}`);
            } catch (err) {
              if (!isHoardError(err, 'HOARD_EAUTH_LOCKED')) throw err;
              const after = err.details?.retryAfterSeconds;
              reply.header('retry-after', String(after));
              return signInForm(
                reply,
                request,
                next,
                `Too many invalid tokens from this address: try again in ${after} s.`,
                429,
              );
            }
            if (!p || !(p.scopes.has('read') || p.scopes.has('write'))) {
              request.log.info({ client: request.socket.remoteAddress }, 'console: sign-in refused');
              return signInForm(reply, request, next, 'That token is not valid here.');
            }
            const { id } = sessions.create(p.name, p.refPrefixes);
            const ttl = Math.floor(settings.sessionTtlMs / 1000);
            reply.header('set-cookie', [
              cookie(SESSION_COOKIE, id, { path: '/', maxAgeSeconds: ttl, secure: secure(request) }),
              cookie(CSRF_COOKIE, '', { path: '/ui/', maxAgeSeconds: 0, secure: secure(request) }),
            ]);
            request.log.info({ token: p.name }, 'console: signed in');
            return reply.redirect(next, 303);
          });
          app.post('/ui/sign-out', open, async (request, reply) => {
            const form = formOf(request);
            const id = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
            const s = sessions.lookup(id);
            if (crossSite(request) || !s || !sameToken(form.get('csrf') ?? undefined, s.csrf))
              throw new HoardError(
                'HOARD_EFORBIDDEN',
                'sign-out refused: not signed in, or the form came from elsewhere',
              );
            sessions.delete(id);
            reply.header(
              'set-cookie',
              cookie(SESSION_COOKIE, '', { path: '/', maxAgeSeconds: 0, secure: secure(request) }),
            );
            return reply.redirect('/ui/sign-in', 303);
          });

          // The same data as JSON, for scripts (and the pages, which render exactly these objects).
          const json =
            (fn: (request: FastifyRequest, a: Access) => Promise<unknown>) =>
            async (request: FastifyRequest) =>
              fn(request, access(request));
          app.get(
            '/v1/status',
            open,
            json(() => data.overview()),
          );
          app.get(
            '/v1/status/git',
            open,
            json(async () => (await data.git()) ?? { mirrors: [] }),
          );
          app.get('/v1/status/refs', open, json(refsFor));
          app.get('/v1/status/ref', open, json(refFor));
          app.get('/v1/status/blobs', open, json(blobsFor));
        },
      };
    },
  });
}

export const consoleFeature = defineConsoleFeature();

/** A feature this one shows when the server runs it. */
function optional<F extends Feature>(ctx: FeatureContext, def: FeatureKey<F>): F | undefined {
  try {
    return ctx.use(def);
  } catch {
    return undefined;
  }
}

/** Where to go after signing in: a console page of this server, nothing else (no open redirect). */
export function safeNext(next: string): string {
  if (next.startsWith('/ui/') && next.length <= 2048 && !/[\\\s\u0000-\u001f]/.test(next)) return next;
  return '/ui/';
}

/** An attachment named `name`: an ASCII fallback and the exact UTF-8 name (RFC 6266). */
export function contentDisposition(name: string): string {
  const base = name.slice(name.lastIndexOf('/') + 1) || 'download';
  const ascii = base.replace(/[^\x20-\x7e]|["\\%;]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(base)}`;
}
