// The API v1 client of another hoard server (the http(s):// remote): a base
// URL and a bearer token (HOARD_TOKEN, or the URL's password, never
// printed) over the one HTTP client of src/http/http-client.ts, which does
// the pooling, timeouts, error decoding and retries.

import { type HttpRequestOptions, type HttpResponse, httpRequest, readJson } from '../http/http-client.ts';

export type { HttpResponse } from '../http/http-client.ts';
export { discard, header, readJson } from '../http/http-client.ts';

export class HoardHttpClient {
  readonly base: URL;
  readonly #token: string | undefined;

  constructor(base: URL, token: string | undefined = process.env.HOARD_TOKEN || undefined) {
    const u = new URL(base.href);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    if (!u.pathname.endsWith('/')) u.pathname += '/';
    this.base = u;
    this.#token = token || (base.password ? decodeURIComponent(base.password) : undefined);
  }

  /** `path` is relative to the base, e.g. `v1/blobs/sha256/<hex>`. */
  url(path: string): URL {
    return new URL(path, this.base);
  }

  /** Sends a request; resolves with the response (status 2xx/3xx or in `accept`), else throws. */
  request(method: string, path: string, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
    const headers = { ...opts.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    return httpRequest(method, this.url(path), { ...opts, headers });
  }

  async json<T>(
    method: string,
    path: string,
    body: unknown,
    opts: HttpRequestOptions = {},
  ): Promise<{ res: HttpResponse; value: T }> {
    const res = await this.request(method, path, {
      ...opts,
      headers: { 'content-type': 'application/json', ...opts.headers },
      body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
    });
    return { res, value: (await readJson(res)) as T };
  }
}
