// The ranged download's whole suite again, on the node:http transport that
// `hoard git restore` uses (src/http/node-http-transport.ts): cut ranges,
// changed ETags, timeouts and retries must behave the same on both transports.

import { useNodeHttpTransport } from '../../src/http/http-client.ts';

useNodeHttpTransport();
await import('./ranged-download.test.ts');
