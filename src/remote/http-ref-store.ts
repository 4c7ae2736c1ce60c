// RefStore over a hoard server's /v1/refs API. The version token is the
// ref's ETag without its quotes; compare-and-set sends it back as If-Match,
// "must not exist" as If-None-Match: *.
//
// A retried PUT whose first attempt succeeded but whose response was lost
// answers 412 on the retry; the store then reads the ref and treats it as a
// success if it now holds our target at a version we did not see before.

import type { Digest } from '../core/digest.ts';
import { isDigest } from '../core/digest.ts';
import { HoardError, isHoardError, RefConflictError, RefNotFoundError } from '../core/errors.ts';
import { validateRefName, validateRefPrefix } from '../core/ref-name.ts';
import type { RefListing, RefStore, RefValue } from '../store/ref-store.ts';
import { discard, type HoardHttpClient, header, readJson } from './http-client.ts';

function refPath(name: string): string {
  return `v1/refs/${validateRefName(name).split('/').map(encodeURIComponent).join('/')}`;
}

function versionOf(etag: string | string[] | undefined, name: string): string {
  const v = Array.isArray(etag) ? etag[0] : etag;
  const m = v === undefined ? null : /^"(.*)"$/.exec(v);
  if (!m) throw new HoardError('HOARD_EREMOTE', `server sent no valid ETag for ref ${name}`);
  return m[1];
}

export class HttpRefStore implements RefStore {
  readonly description: string;
  readonly #http: HoardHttpClient;

  constructor(http: HoardHttpClient) {
    this.#http = http;
    this.description = http.base.origin + http.base.pathname.replace(/\/$/, '');
  }

  async get(name: string, signal?: AbortSignal): Promise<RefValue | undefined> {
    const res = await this.#http.request('GET', refPath(name), { signal, accept: [404] });
    if (res.status === 404) {
      discard(res);
      return undefined;
    }
    const body = (await readJson(res)) as { target?: unknown };
    if (!isDigest(body?.target))
      throw new HoardError('HOARD_EREMOTE', `server sent no valid target for ref ${name}`);
    return { target: body.target, version: versionOf(header(res, 'etag'), name) };
  }

  async set(name: string, target: Digest, expected: string | null, signal?: AbortSignal): Promise<RefValue> {
    const headers: Record<string, string> =
      expected === null ? { 'if-none-match': '*' } : { 'if-match': `"${expected}"` };
    try {
      const { res } = await this.#http.json('PUT', refPath(name), { target }, { headers, signal });
      return { target, version: versionOf(header(res, 'etag'), name) };
    } catch (err) {
      if (isHoardError(err, 'HOARD_EREF_CONFLICT')) throw new RefConflictError(name, expected);
      throw err;
    }
  }

  async delete(name: string, expected: string, signal?: AbortSignal): Promise<void> {
    try {
      const res = await this.#http.request('DELETE', refPath(name), {
        headers: { 'if-match': `"${expected}"` },
        signal,
      });
      discard(res);
    } catch (err) {
      if (isHoardError(err, 'HOARD_EREF_CONFLICT')) throw new RefConflictError(name, expected);
      if (isHoardError(err, 'HOARD_EREF_NOT_FOUND')) throw new RefNotFoundError(name);
      throw err;
    }
  }

  async *list(prefix = '', signal?: AbortSignal): AsyncIterable<RefListing> {
    validateRefPrefix(prefix);
    let after = '';
    for (;;) {
      const q = new URLSearchParams({ prefix });
      if (after) q.set('after', after);
      const res = await this.#http.request('GET', `v1/refs?${q}`, { signal });
      const page = (await readJson(res)) as {
        refs: { name: string; target: Digest; etag: string }[];
        next: string | null;
      };
      for (const r of page.refs) yield { name: r.name, target: r.target, version: versionOf(r.etag, r.name) };
      if (!page.next) return;
      after = page.next;
    }
  }
}
