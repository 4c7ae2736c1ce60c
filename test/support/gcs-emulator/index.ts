// In-memory emulator of the Google Cloud Storage JSON API, as a test fixture:
// hoard's GCS backend is verified against this emulator (driven through the
// official @google-cloud/storage client), not against Google. It implements
// only what that client uses: buckets, object metadata/list/delete/patch,
// media downloads with ranges, media/multipart/resumable uploads, and the
// generation preconditions. See uploads.ts for the resumable protocol.
//
// Pointing the official client at it (no credentials needed):
//   new Storage({ apiEndpoint: emu.url, projectId: 'test' })
// Any apiEndpoint other than the default marks the endpoint as custom, and for
// a custom endpoint the client skips google-auth-library entirely unless
// `useAuthWithCustomEndpoint: true` (nodejs-common/util.js `authorizeRequest`;
// resumable-upload.js swaps its auth client for plain gaxios when the host is
// not a googleapis.com domain). JSON calls then go to <url>/storage/v1/b/…,
// uploads to <url>/upload/storage/v1/b/…, and downloads are
// GET <url>/storage/v1/b/<b>/o/<name>?alt=media. `projectId` only avoids a
// project-id lookup (it is sent on bucket creation/listing).
// Alternatively STORAGE_EMULATOR_HOST=<url>, read once in the Storage
// constructor, does the same but makes JSON calls without the /storage/v1
// prefix (<url>/b/…); both spellings are routed here, as is the
// /download/storage/v1/… path that `mediaLink` points at.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { badRequest, GcsError, sendError, sendJson } from './http.ts';
import {
  createBucket,
  deleteBucket,
  deleteObject,
  listBuckets,
  listObjects,
  patchObject,
  sendMedia,
} from './objects.ts';
import { bucketResource, objectResource, type Stats, Store } from './store.ts';
import { Uploads } from './uploads.ts';

export interface GcsEmulator {
  /** Base URL, e.g. http://127.0.0.1:PORT (use as `apiEndpoint`). */
  url: string;
  port: number;
  close(): Promise<void>;
  /** Live counters; tests may read or reset them. */
  stats: Stats;
}

export interface GcsEmulatorOptions {
  /** Port to bind on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Buckets that exist from the start. */
  buckets?: string[];
}

// /b, /b/<bucket>, /b/<bucket>/o, /b/<bucket>/o/<object>. The object name is
// percent-encoded by the client (slashes as %2F), but raw slashes are accepted.
const RESOURCE = /^\/b(?:\/([^/]+)(\/o(?:\/(.+))?)?)?\/?$/;

interface Route {
  api: 'json' | 'upload' | 'download';
  /** What the path names: all buckets, a bucket, a bucket's objects, one object. */
  target: 'buckets' | 'bucket' | 'objects' | 'object';
  bucket: string;
  object: string;
}

function route(path: string): Route | undefined {
  let api: Route['api'] = 'json';
  let rest = path;
  for (const [prefix, kind] of [
    ['/upload/storage/v1', 'upload'],
    ['/download/storage/v1', 'download'],
    ['/storage/v1', 'json'],
  ] as const) {
    if (path.startsWith(`${prefix}/`)) {
      api = kind;
      rest = path.slice(prefix.length);
      break;
    }
  }
  const m = RESOURCE.exec(rest);
  if (!m) return undefined;
  const target =
    m[3] !== undefined
      ? 'object'
      : m[2] !== undefined
        ? 'objects'
        : m[1] !== undefined
          ? 'bucket'
          : 'buckets';
  try {
    return { api, target, bucket: decodeURIComponent(m[1] ?? ''), object: decodeURIComponent(m[3] ?? '') };
  } catch {
    throw badRequest(`Malformed percent-encoding in ${path}`);
  }
}

export async function startGcsEmulator(opts: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const store = new Store();
  for (const name of opts.buckets ?? []) store.createBucket(name);
  const stats: Stats = { mediaDownloads: 0, uploads: 0 };
  const uploads = new Uploads(store, stats);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    // The raw path, not URL-normalised: object names may contain `..` or `%2F`.
    const path = queryAt < 0 ? rawUrl : rawUrl.slice(0, queryAt);
    const q = new URLSearchParams(queryAt < 0 ? '' : rawUrl.slice(queryAt + 1));
    // Links we hand out (Location, selfLink) use the host the client used.
    const baseUrl = `http://${req.headers.host ?? `127.0.0.1:${port}`}`;
    const r = route(path);
    const method = req.method ?? 'GET';

    if (!r) {
      req.resume(); // drain the body of an unroutable request
      throw new GcsError(404, 'notFound', `Not Found: ${method} ${path}`);
    }
    switch (`${method} ${r.api} ${r.target}`) {
      case 'POST upload objects':
        if (q.has('upload_id')) return uploads.put(req, res, q, baseUrl);
        return uploads.start(req, res, r.bucket, q, baseUrl);
      case 'PUT upload objects':
        return uploads.put(req, res, q, baseUrl);
      case 'DELETE upload objects':
        return uploads.cancel(req, res, q);
      case 'GET download object':
        return sendMedia(store, stats, req, res, r.bucket, r.object, q);
      case 'GET json buckets':
        return listBuckets(store, res);
      case 'POST json buckets':
        return createBucket(store, req, res);
      case 'GET json bucket':
        return sendJson(res, 200, bucketResource(store.bucket(r.bucket)));
      case 'DELETE json bucket':
        return deleteBucket(store, res, r.bucket);
      case 'GET json objects':
        return listObjects(store, res, r.bucket, q, baseUrl);
      case 'GET json object':
        if (q.get('alt') === 'media') return sendMedia(store, stats, req, res, r.bucket, r.object, q);
        return sendJson(res, 200, objectResource(store.getObject(r.bucket, r.object, q, true), baseUrl));
      case 'PATCH json object':
        return patchObject(store, req, res, r.bucket, r.object, q, baseUrl);
      case 'DELETE json object':
        return deleteObject(store, req, res, r.bucket, r.object, q);
    }
    req.resume();
    throw new GcsError(405, 'methodNotAllowed', `Method ${method} not supported on ${path}`);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof GcsError) return sendError(res, err);
      // The client went away mid-body: nothing to answer.
      if (req.destroyed || res.destroyed) return;
      sendError(res, new GcsError(500, 'internalError', err instanceof Error ? err.message : String(err)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Clients keep sockets alive; without this close() waits for them.
        server.closeAllConnections();
      }),
  };
}
