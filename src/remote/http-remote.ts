// The http(s):// remote: another hoard server (`hoard push/pull http://host:7777`,
// or `hoard serve --remote https://central` for a regional cache in front of a
// central server). A path in the URL is a mount point of the server, not a
// prefix of names. The token comes from HOARD_TOKEN (or the URL's password,
// which is never printed).

import { HttpBlobStore } from './http-blob-store.ts';
import { HoardHttpClient } from './http-client.ts';
import { HttpRefStore } from './http-ref-store.ts';
import type { Remote } from './remote-types.ts';

export function openHttpRemote(url: URL, token?: string): Remote {
  const http = new HoardHttpClient(url, token);
  const shown = new URL(http.base.href);
  return {
    url: shown.href,
    blobs: new HttpBlobStore(http),
    refs: new HttpRefStore(http),
    close: async () => {},
  };
}
