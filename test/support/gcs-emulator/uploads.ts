// Upload endpoints of the GCS emulator (a test fixture):
//   POST /upload/storage/v1/b/<b>/o?uploadType=media&name=…      body = data
//   POST …?uploadType=multipart     multipart/related: JSON metadata, then data
//   POST …?uploadType=resumable     JSON metadata → 200 + Location (session URI)
//   PUT  <session URI>              chunks, status queries, final commit
//   DELETE <session URI>            cancels the session (499, as GCS)
//
// Resumable protocol, as the official client (v7) drives it:
// - Default (no chunkSize): one PUT carrying the whole stream with
//   `Content-Range: bytes 0-*/*` (or `bytes 0-*/<len>` if the length was
//   declared). An open end means "the body is the rest of the object", so it is
//   committed when the body ends.
// - With chunkSize: `bytes a-b/*` per chunk → 308 with `Range: bytes=0-<last>`;
//   the last chunk names the total (`bytes a-b/<total>`) → 200 + object JSON.
// - `bytes */*` (or `bytes */<total>`) is a status query: 308 with the
//   persisted Range (none when nothing is persisted), or the commit if
//   <total> bytes are already there. After commit, any PUT returns the object.
// Preconditions given at initiation are checked then and again at commit.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { badRequest, GcsError, readBody, readChunks, sendJson } from './http.ts';
import {
  checkPreconditions,
  metaFromResource,
  type ObjectMeta,
  objectResource,
  type Preconditions,
  parsePreconditions,
  type Stats,
  type Store,
} from './store.ts';

interface Session {
  bucket: string;
  name: string;
  meta: ObjectMeta;
  pre: Preconditions;
  expected: { crc32c?: string; md5Hash?: string };
  /** From X-Upload-Content-Length, if the client declared it. */
  declaredSize?: number;
  chunks: Buffer[];
  received: number;
  /** The object resource once committed (replayed to late PUTs). */
  result?: Record<string, unknown>;
}

/** Checksums declared in an `X-Goog-Hash: crc32c=…,md5=…` header. */
function parseGoogHash(header: string | string[] | undefined): { crc32c?: string; md5Hash?: string } {
  const out: { crc32c?: string; md5Hash?: string } = {};
  for (const pair of [header ?? []].flat().join(',').split(',')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const [key, value] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
    if (key === 'crc32c') out.crc32c = value;
    else if (key === 'md5') out.md5Hash = value;
  }
  return out;
}

/** Declared checksums from an object resource; X-Goog-Hash (if any) wins. */
function expectedHashes(resource: Record<string, unknown>, header: string | string[] | undefined) {
  const fromMeta = {
    ...(typeof resource.crc32c === 'string' && { crc32c: resource.crc32c }),
    ...(typeof resource.md5Hash === 'string' && { md5Hash: resource.md5Hash }),
  };
  return { ...fromMeta, ...parseGoogHash(header) };
}

function parseJsonPart(buf: Buffer): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(buf.toString('utf8') || '{}');
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {}
  throw badRequest('Metadata part is not a JSON object.');
}

/** Splits a multipart/related body into its parts (headers lower-cased). */
function parseMultipart(body: Buffer, boundary: string): { headers: Record<string, string>; body: Buffer }[] {
  const malformed = () => badRequest('Malformed multipart body.');
  const delimiter = Buffer.from(`--${boundary}`);
  const nextDelimiter = Buffer.from(`\r\n--${boundary}`);
  const parts: { headers: Record<string, string>; body: Buffer }[] = [];
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw malformed();
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // closing `--boundary--`
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) throw malformed();
    pos += 2;
    const headerEnd = body.subarray(pos, pos + 2).toString() === '\r\n' ? pos : body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw malformed();
    const headers: Record<string, string> = {};
    for (const line of body.subarray(pos, headerEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const start = headerEnd === pos ? pos + 2 : headerEnd + 4;
    const end = body.indexOf(nextDelimiter, start);
    if (end < 0) throw malformed();
    parts.push({ headers, body: body.subarray(start, end) });
    pos = end + 2;
  }
}

type ContentRange =
  | { kind: 'query'; total?: number }
  | { kind: 'data'; start: number; total?: number; openEnded: boolean };

/** Parses a resumable PUT's Content-Range against the body length received. */
function parseContentRange(header: string | undefined, bodyLength: number): ContentRange {
  // No header: the body is the whole object.
  if (header === undefined) return { kind: 'data', start: 0, total: bodyLength, openEnded: false };
  const m = /^bytes (\*|(\d+)-(\d+|\*))\/(\d+|\*)$/.exec(header.trim());
  if (!m) throw badRequest(`Invalid Content-Range: ${header}`);
  const total = m[4] === '*' ? undefined : Number(m[4]);
  if (m[1] === '*') {
    if (bodyLength !== 0) throw badRequest('A Content-Range of bytes */… must come with an empty body.');
    return { kind: 'query', total };
  }
  const start = Number(m[2]);
  if (m[3] !== '*' && Number(m[3]) - start + 1 !== bodyLength) {
    throw badRequest(`Content-Range ${header} does not match the ${bodyLength} bytes sent.`);
  }
  return { kind: 'data', start, total, openEnded: m[3] === '*' };
}

export class Uploads {
  readonly #store: Store;
  readonly #stats: Stats;
  readonly #sessions = new Map<string, Session>();

  constructor(store: Store, stats: Stats) {
    this.#store = store;
    this.#stats = stats;
  }

  /** POST /upload/storage/v1/b/<bucket>/o */
  async start(
    req: IncomingMessage,
    res: ServerResponse,
    bucket: string,
    q: URLSearchParams,
    baseUrl: string,
  ) {
    const uploadType = q.get('uploadType');
    if (uploadType === 'resumable') return this.#initiate(req, res, bucket, q, baseUrl);
    if (uploadType !== 'media' && uploadType !== 'multipart') {
      await readBody(req);
      throw badRequest(`Invalid uploadType: ${uploadType}`);
    }
    // The whole body is read before answering even an error: replying early to
    // a large upload would leave the client writing into a closed request.
    const body = await readBody(req);
    const pre = parsePreconditions(q);
    let name = q.get('name');
    let data = body;
    let meta: ObjectMeta = { contentType: req.headers['content-type'] };
    let expected = parseGoogHash(req.headers['x-goog-hash']);
    if (uploadType === 'multipart') {
      const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(req.headers['content-type'] ?? '');
      if (!m || !/^multipart\/related/i.test(req.headers['content-type'] ?? '')) {
        throw badRequest('uploadType=multipart needs a multipart/related body with a boundary.');
      }
      const parts = parseMultipart(body, m[1] ?? m[2]);
      if (parts.length !== 2) throw badRequest(`Expected 2 multipart parts, got ${parts.length}.`);
      const resource = parseJsonPart(parts[0].body);
      if (typeof resource.name === 'string') name ??= resource.name;
      meta = metaFromResource(resource);
      meta.contentType ??= parts[1].headers['content-type'];
      expected = expectedHashes(resource, req.headers['x-goog-hash']);
      data = parts[1].body;
    }
    if (!name) throw badRequest('Required parameter: name');
    const obj = this.#store.commit(bucket, name, data, meta, pre, expected);
    this.#stats.uploads++;
    sendJson(res, 200, objectResource(obj, baseUrl));
  }

  async #initiate(
    req: IncomingMessage,
    res: ServerResponse,
    bucket: string,
    q: URLSearchParams,
    baseUrl: string,
  ) {
    const body = await readBody(req);
    const resource = body.length > 0 ? parseJsonPart(body) : {};
    const name = q.get('name') ?? (typeof resource.name === 'string' ? resource.name : undefined);
    if (!name) throw badRequest('Required parameter: name');
    const pre = parsePreconditions(q);
    // Fail fast, as GCS does: no session for a write that cannot succeed now.
    checkPreconditions(this.#store.bucket(bucket).objects.get(name), pre, false);
    const meta = metaFromResource(resource);
    const uploadContentType = req.headers['x-upload-content-type'];
    if (typeof uploadContentType === 'string') meta.contentType ??= uploadContentType;
    const declared = req.headers['x-upload-content-length'];
    const id = randomBytes(16).toString('hex');
    this.#sessions.set(id, {
      bucket,
      name,
      meta,
      pre,
      expected: expectedHashes(resource, undefined),
      declaredSize: typeof declared === 'string' && /^\d+$/.test(declared) ? Number(declared) : undefined,
      chunks: [],
      received: 0,
    });
    const location =
      `${baseUrl}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o` +
      `?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
    res.writeHead(200, { Location: location, 'Content-Length': 0 }).end();
  }

  /** PUT <session URI>: a chunk, a status query or the final commit. */
  async put(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, baseUrl: string) {
    const { chunks, length } = await readChunks(req);
    const id = q.get('upload_id') ?? '';
    const session = this.#sessions.get(id);
    if (!session) throw new GcsError(404, 'notFound', `No such upload: ${id}`);
    if (session.result) return sendJson(res, 200, session.result);

    const range = parseContentRange(req.headers['content-range'], length);
    let total = range.total;
    if (range.kind === 'data') {
      if (range.start > session.received) {
        throw badRequest(`Chunk starts at ${range.start} but only ${session.received} bytes are persisted.`);
      }
      // A retried chunk may overlap bytes already persisted; skip those.
      let skip = session.received - range.start;
      for (const chunk of chunks) {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        const part = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        session.chunks.push(part);
        session.received += part.length;
      }
      if (range.openEnded) total ??= range.start + length;
    }
    if (total !== undefined && session.declaredSize !== undefined && total !== session.declaredSize) {
      throw badRequest(`Upload size ${total} differs from X-Upload-Content-Length ${session.declaredSize}.`);
    }
    if (total !== undefined && session.received > total) {
      throw badRequest(`Received ${session.received} bytes, more than the declared total ${total}.`);
    }
    if (total === undefined || session.received < total) {
      res.writeHead(308, session.received > 0 ? { Range: `bytes=0-${session.received - 1}` } : {});
      res.end();
      return;
    }
    this.#commit(id, session, req, res, baseUrl);
  }

  #commit(id: string, session: Session, req: IncomingMessage, res: ServerResponse, baseUrl: string) {
    const data = Buffer.concat(session.chunks, session.received);
    session.chunks = [];
    const expected = { ...session.expected, ...parseGoogHash(req.headers['x-goog-hash']) };
    try {
      const obj = this.#store.commit(session.bucket, session.name, data, session.meta, session.pre, expected);
      session.result = objectResource(obj, baseUrl);
    } catch (err) {
      // A failed commit (precondition, checksum) ends the session, as in GCS.
      this.#sessions.delete(id);
      throw err;
    }
    this.#stats.uploads++;
    sendJson(res, 200, session.result);
  }

  /** DELETE <session URI>: cancel. */
  async cancel(req: IncomingMessage, res: ServerResponse, q: URLSearchParams) {
    await readBody(req);
    const id = q.get('upload_id') ?? '';
    if (!this.#sessions.delete(id)) throw new GcsError(404, 'notFound', `No such upload: ${id}`);
    res.writeHead(499).end();
  }
}
