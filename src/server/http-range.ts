// HTTP conditional and range request handling for immutable blobs (RFC 9110):
// one byte range per request (`bytes=a-b`, `bytes=a-`, `bytes=-n`), strong
// ETags, If-None-Match and If-Range. Multi-range or malformed Range headers
// are ignored (a 200 with the whole blob), as the RFC allows.

export type RangeDecision =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

/** Interprets a Range header against a blob size; `end` is exclusive. */
export function parseRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' }; // malformed or multi-range: ignore
  if (m[1] === '') {
    // Suffix range: the last n bytes.
    const n = Number(m[2]);
    if (!Number.isSafeInteger(n)) return { kind: 'full' };
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? undefined : Number(m[2]);
  if (!Number.isSafeInteger(start) || (last !== undefined && !Number.isSafeInteger(last)))
    return { kind: 'full' };
  if (last !== undefined && last < start) return { kind: 'full' }; // invalid: ignore
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === undefined ? size : Math.min(size, last + 1);
  return { kind: 'partial', start, end };
}

/** Cache-Control of a blob answer: a blob never changes. */
export const BLOB_CACHE_CONTROL = 'public, max-age=31536000, immutable';

/** The headers of every blob answer (200, 206, 304), whichever process or path sends it. */
export function blobBaseHeaders(etag: string): Record<string, string> {
  return { etag, 'accept-ranges': 'bytes', 'cache-control': BLOB_CACHE_CONTROL };
}

/** blobBaseHeaders as a flat [name, value, …] list (writeHead's fast form), in a new array. */
export function blobBaseHeaderList(etag: string): string[] {
  return ['etag', etag, 'accept-ranges', 'bytes', 'cache-control', BLOB_CACHE_CONTROL];
}

/** The ETag of a blob: its hex digest, strong. */
export function blobEtag(hex: string): string {
  return `"${hex}"`;
}

/** Splits an If-None-Match / If-Match list; `*` is returned as is. Weak tags compare weakly. */
export function etagList(header: string | undefined): string[] {
  if (!header) return [];
  return header
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (s.startsWith('W/') ? s.slice(2) : s));
}

/** If-None-Match matches when it lists `*` or the ETag (weak comparison). */
export function noneMatch(header: string | undefined, etag: string): boolean {
  const tags = etagList(header);
  return tags.includes('*') || tags.includes(etag);
}

/** If-Range (strong comparison; dates never match: blobs carry no Last-Modified). */
export function ifRangeHolds(header: string | undefined, etag: string): boolean {
  if (header === undefined) return true;
  const h = header.trim();
  return h === etag;
}
