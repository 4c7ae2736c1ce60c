// HTTP plumbing for the GCS emulator (a test fixture): errors in the JSON
// shape GCS returns, JSON responses and request-body collection.

import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * An error answered in GCS's JSON error shape. `reason` is what GCS puts in
 * `errors[0].reason` (e.g. `notFound`, `conditionNotMet`, `invalid`).
 */
export class GcsError extends Error {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export const notFoundBucket = (): GcsError =>
  new GcsError(404, 'notFound', 'The specified bucket does not exist.');
export const notFoundObject = (bucket: string, name: string): GcsError =>
  new GcsError(404, 'notFound', `No such object: ${bucket}/${name}`);
export const badRequest = (message: string): GcsError => new GcsError(400, 'invalid', message);
export const conditionNotMet = (): GcsError =>
  new GcsError(412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
/** GCS answers a failed *NotMatch condition on a read with a bodiless 304, not 412. */
export const notModified = (): GcsError => new GcsError(304, 'notModified', 'Not Modified');

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: GcsError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err.status === 304) {
    res.writeHead(304).end();
    return;
  }
  sendJson(res, err.status, {
    error: {
      code: err.status,
      message: err.message,
      errors: [{ message: err.message, domain: 'global', reason: err.reason }],
    },
  });
}

/**
 * Collects a request body as the list of chunks it arrived in: storing the
 * chunks and concatenating once at the end keeps large uploads linear.
 */
export async function readChunks(req: IncomingMessage): Promise<{ chunks: Buffer[]; length: number }> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    length += chunk.length;
  }
  return { chunks, length };
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const { chunks, length } = await readChunks(req);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length);
}

/** Parses an optional JSON request body (an object); empty means `{}`. */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readBody(req);
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw badRequest('Parse Error: request body is not valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badRequest('Request body must be a JSON object.');
  }
  return parsed as Record<string, unknown>;
}
