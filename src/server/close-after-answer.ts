// What becomes of the connection of a refused upload. A PUT may be refused
// while its body is still arriving (too large, a digest mismatch, a full
// disk, a store that gave up): destroying the request then would reset the
// connection, and the client, still writing, would see the reset instead of
// the answer. So the answer is sent first (with `Connection: close`), then
// the rest of the body is read and dropped for at most uploadErrorLingerMs,
// and the connection is closed. Shared by /v1/blobs and every build-tool
// front-end that takes uploads (src/features/upload-body.ts).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULTS } from '../core/defaults.ts';

/**
 * Once `res` (the error answer) has been sent: discard what is left of
 * `req`'s body, closing the socket after uploadErrorLingerMs at the latest.
 * The caller sets `Connection: close` on the answer.
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
