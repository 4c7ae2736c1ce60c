// JSON-API handlers of the GCS emulator (a test fixture): buckets, object
// metadata (GET/PATCH/DELETE), listing with prefixes and paging, and media
// downloads with Range support and the headers the official client validates.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { badRequest, GcsError, readBody, readJson, sendJson } from './http.ts';
import {
  bucketResource,
  objectEtag,
  objectResource,
  type Stats,
  type Store,
  type StoredObject,
} from './store.ts';

// Bucket names as GCS accepts them (dotted names are allowed up to 222 chars).
const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

export async function createBucket(store: Store, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req);
  const name = body.name;
  if (typeof name !== 'string' || !BUCKET_NAME.test(name))
    throw badRequest(`Invalid bucket name: ${String(name)}`);
  if (store.buckets.has(name)) {
    throw new GcsError(
      409,
      'conflict',
      'Your previous request to create the named bucket succeeded and you already own it.',
    );
  }
  sendJson(res, 200, bucketResource(store.createBucket(name)));
}

export function listBuckets(store: Store, res: ServerResponse): void {
  const items = [...store.buckets.values()].map(bucketResource);
  sendJson(res, 200, { kind: 'storage#buckets', ...(items.length > 0 && { items }) });
}

export function deleteBucket(store: Store, res: ServerResponse, bucketName: string): void {
  const bucket = store.bucket(bucketName);
  if (bucket.objects.size > 0)
    throw new GcsError(409, 'conflict', 'The bucket you tried to delete is not empty.');
  store.buckets.delete(bucketName);
  res.writeHead(204).end();
}

export async function patchObject(
  store: Store,
  req: IncomingMessage,
  res: ServerResponse,
  bucket: string,
  name: string,
  q: URLSearchParams,
  baseUrl: string,
): Promise<void> {
  // Read the body first: the precondition check and the change then happen in
  // one synchronous step, so a concurrent writer cannot slip in between.
  const patch = await readJson(req);
  const obj = store.getObject(bucket, name, q, false);
  store.patch(obj, patch);
  sendJson(res, 200, objectResource(obj, baseUrl));
}

export async function deleteObject(
  store: Store,
  req: IncomingMessage,
  res: ServerResponse,
  bucket: string,
  name: string,
  q: URLSearchParams,
): Promise<void> {
  await readBody(req);
  const obj = store.getObject(bucket, name, q, false);
  store.bucket(bucket).objects.delete(obj.name);
  res.writeHead(204).end();
}

/** Sorts by UTF-8 bytes, the order GCS lists in (differs from UTF-16 order past U+D7FF). */
function sortedNames(names: Iterable<string>): string[] {
  return [...names]
    .map((name) => ({ name, key: Buffer.from(name) }))
    .sort((a, b) => Buffer.compare(a.key, b.key))
    .map((e) => e.name);
}

const byteLess = (a: string, b: string): boolean => Buffer.compare(Buffer.from(a), Buffer.from(b)) < 0;

/**
 * objects.list. Page tokens carry the last name consumed, so a page resumes
 * right after it. With a delimiter, all names under one rolled-up prefix are
 * contiguous in sorted order and are consumed together as one result.
 */
export function listObjects(
  store: Store,
  res: ServerResponse,
  bucketName: string,
  q: URLSearchParams,
  baseUrl: string,
): void {
  const bucket = store.bucket(bucketName);
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const startOffset = q.get('startOffset') ?? '';
  const endOffset = q.get('endOffset') ?? '';
  const includeTrailingDelimiter = q.get('includeTrailingDelimiter') === 'true';
  const rawMax = q.get('maxResults');
  if (rawMax !== null && !/^\d+$/.test(rawMax)) throw badRequest(`Invalid value for maxResults: ${rawMax}`);
  // GCS caps a page at 1000 results whatever maxResults asks for.
  const maxResults = rawMax === null || Number(rawMax) === 0 ? 1000 : Math.min(Number(rawMax), 1000);
  const token = q.get('pageToken');
  let after: string | undefined;
  if (token) {
    if (!/^[A-Za-z0-9_-]+$/.test(token)) throw badRequest('Invalid pageToken.');
    after = Buffer.from(token, 'base64url').toString('utf8');
  }

  const names = sortedNames(
    [...bucket.objects.keys()].filter(
      (n) =>
        n.startsWith(prefix) &&
        (!startOffset || !byteLess(n, startOffset)) &&
        (!endOffset || byteLess(n, endOffset)) &&
        (after === undefined || byteLess(after, n)),
    ),
  );

  const items: Record<string, unknown>[] = [];
  const prefixes: string[] = [];
  let i = 0;
  let results = 0;
  while (i < names.length && results < maxResults) {
    const name = names[i];
    const cut = delimiter ? name.indexOf(delimiter, prefix.length) : -1;
    results++;
    if (cut < 0) {
      items.push(objectResource(bucket.objects.get(name) as StoredObject, baseUrl));
      i++;
      continue;
    }
    const rolled = name.slice(0, cut + delimiter.length);
    prefixes.push(rolled);
    for (; i < names.length && names[i].startsWith(rolled); i++) {
      if (includeTrailingDelimiter && names[i] === rolled) {
        items.push(objectResource(bucket.objects.get(rolled) as StoredObject, baseUrl));
      }
    }
  }
  const nextPageToken = i < names.length ? Buffer.from(names[i - 1]).toString('base64url') : undefined;
  sendJson(res, 200, {
    kind: 'storage#objects',
    ...(prefixes.length > 0 && { prefixes }),
    ...(items.length > 0 && { items }),
    ...(nextPageToken && { nextPageToken }),
  });
}

type ByteRange = { start: number; end: number } | 'unsatisfiable' | undefined;

/**
 * A single `bytes=` range against an object of `size` bytes. Anything not
 * understood (multiple ranges, garbage) is ignored and the whole object is
 * served, as HTTP allows; the official client only ever sends one range.
 */
export function parseRange(header: string | undefined, size: number): ByteRange {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1) };
}

/**
 * Media download. The client only validates a full download when
 * `x-goog-stored-content-encoding` is `identity` (or gzip served as gzip)
 * and takes the expected checksums from `x-goog-hash`; both are always sent.
 */
export function sendMedia(
  store: Store,
  stats: Stats,
  req: IncomingMessage,
  res: ServerResponse,
  bucket: string,
  name: string,
  q: URLSearchParams,
): void {
  const obj = store.getObject(bucket, name, q, true);
  const size = obj.data.length;
  const headers: Record<string, string | number> = {
    'Content-Type': obj.meta.contentType ?? 'application/octet-stream',
    ETag: `"${objectEtag(obj)}"`,
    'Last-Modified': new Date(obj.updated).toUTCString(),
    'Accept-Ranges': 'bytes',
    'x-goog-generation': String(obj.generation),
    'x-goog-metageneration': String(obj.metageneration),
    'x-goog-hash': `crc32c=${obj.crc32c},md5=${obj.md5Hash}`,
    'x-goog-stored-content-length': String(size),
    'x-goog-stored-content-encoding': obj.meta.contentEncoding ?? 'identity',
  };
  // Stored bytes are served as stored; no decompressive transcoding.
  if (obj.meta.contentEncoding) headers['Content-Encoding'] = obj.meta.contentEncoding;
  if (obj.meta.contentDisposition) headers['Content-Disposition'] = obj.meta.contentDisposition;
  if (obj.meta.cacheControl) headers['Cache-Control'] = obj.meta.cacheControl;

  const range = parseRange(req.headers.range, size);
  if (range === 'unsatisfiable') {
    const message = 'The requested range cannot be satisfied.';
    sendJson(
      res,
      416,
      {
        error: {
          code: 416,
          message,
          errors: [{ message, domain: 'global', reason: 'requestedRangeNotSatisfiable' }],
        },
      },
      { 'Content-Range': `bytes */${size}` },
    );
    return;
  }
  stats.mediaDownloads++;
  if (range === undefined) {
    res.writeHead(200, { ...headers, 'Content-Length': size });
    res.end(obj.data);
    return;
  }
  res.writeHead(206, {
    ...headers,
    'Content-Length': range.end - range.start + 1,
    'Content-Range': `bytes ${range.start}-${range.end}/${size}`,
  });
  // subarray shares memory with the stored object: no copy per request.
  res.end(obj.data.subarray(range.start, range.end + 1));
}
