// Runs the real @actions/cache (saveCache / restoreCache) once, in a process
// of its own so the toolkit's globals and environment never reach the test
// runner. argv[2]: JSON {module, op, paths, key, restoreKeys, lookupOnly,
// azureAlias}; the service is chosen by the environment the parent sets
// (ACTIONS_CACHE_SERVICE_V2, ACTIONS_RESULTS_URL, ACTIONS_CACHE_URL,
// ACTIONS_RUNTIME_TOKEN). Prints one `@@RESULT {json}` line at the end.
//
// azureAlias: names ending in `.blob.core.windows.net` resolve to 127.0.0.1.
// The toolkit downloads in parallel segments (Range / x-ms-range) only from
// hosts so named; with the alias, a hoard server reached by such a name gets
// exactly the requests Azure would.

import dns from 'node:dns';
import { pathToFileURL } from 'node:url';

const req = JSON.parse(process.argv[2]);

if (req.azureAlias) {
  const lookup = dns.lookup;
  dns.lookup = (host, options, callback) => {
    const cb = typeof options === 'function' ? options : callback;
    const opts =
      typeof options === 'function' ? {} : typeof options === 'number' ? { family: options } : options;
    if (typeof host === 'string' && host.endsWith('.blob.core.windows.net')) {
      if (opts?.all) return process.nextTick(cb, null, [{ address: '127.0.0.1', family: 4 }]);
      return process.nextTick(cb, null, '127.0.0.1', 4);
    }
    return lookup.call(dns, host, options, callback);
  };
}

const cache = await import(pathToFileURL(`${req.module}/lib/cache.js`).href);
let result;
if (req.op === 'save') result = await cache.saveCache(req.paths, req.key);
else if (req.op === 'restore')
  result = await cache.restoreCache(req.paths, req.key, req.restoreKeys ?? [], {
    lookupOnly: req.lookupOnly === true,
  });
else throw new Error(`unknown op ${req.op}`);
process.stdout.write(`\n@@RESULT ${JSON.stringify({ result: result ?? null })}\n`);
