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

/**
 * A list page size from `?limit=`: absent (or empty) gives `fallback`;
 * otherwise a decimal integer from 1 to `max`, else 400. A bad limit used to
 * fall back quietly: a client asking for `limit=0` or `limit=5e3` got pages of
 * a size it did not ask for and no word why.
 */
export function pageLimit(raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = /^[0-9]{1,9}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= 1 && n <= max))
    throw new HoardError('HOARD_EBAD_REQUEST', `limit must be an integer from 1 to ${max}`, {
      details: { limit: raw.slice(0, 40) },
    });
  return n;
}
