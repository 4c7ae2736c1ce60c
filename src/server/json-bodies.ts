// Shared by the JSON routes: the lenient JSON body parser (any content type,
// bounded by --max-json-body, a parse failure a 400) and list paging.

import type { FastifyInstance } from 'fastify';
import { HoardError } from '../core/errors.ts';

/** Replaces `app`'s content-type parsers with one JSON parser for any content type. */
export function acceptJsonBodies(app: FastifyInstance, maxBytes: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: maxBytes }, (_req, text, done) => {
    try {
      done(null, JSON.parse(String(text)));
    } catch {
      done(new HoardError('HOARD_EBAD_REQUEST', 'request body is not valid JSON'), undefined);
    }
  });
}

/** A list page size from `?limit=`: a positive integer up to `max`; absent or invalid gives `fallback`. */
export function pageLimit(raw: string | undefined, fallback: number, max: number): number {
  const n = Math.trunc(Number(raw ?? fallback));
  return Math.min(n >= 1 ? n : fallback, max);
}
