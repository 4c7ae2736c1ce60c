// What becomes of the connection of a refused upload. A PUT may be refused
// while its body is still arriving (too large, a digest mismatch, a full
// disk, a store that gave up): destroying the request then would reset the
// connection, and the client, still writing, would see the reset instead of
// the answer. So the answer is sent first, then the rest of the body is read
// and dropped for at most uploadErrorLingerMs, and only then is the
// connection closed. The answer must not say `Connection: close`: Node then
// destroys the socket right after it, and a client still writing its body
// sees EPIPE or a reset instead of the answer (undici reports the write
// error). A body that ends within the bound leaves the connection usable.
// Shared by /v1/blobs and every build-tool front-end that takes uploads
// (src/features/upload-body.ts).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULTS } from '../core/defaults.ts';

/**
 * Once `res` (the error answer) has been sent: discard what is left of
 * `req`'s body, closing the socket after uploadErrorLingerMs at the latest.
 */
export function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    if (req.complete || req.destroyed) return;
    req.resume();
    const timer = setTimeout(() => req.socket.destroy(), DEFAULTS.uploadErrorLingerMs);
    timer.unref();
    req.socket.once('close', () => clearTimeout(timer));
  });
}
