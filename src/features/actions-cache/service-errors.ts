// Errors of the cache service's three protocols, each answered in its own
// shape (Twirp `{code,msg}`, v1 `{message,typeKey}`, Azure XML) from one
// decision of status and message: statuses from the one error module, except
// the pending-upload bound (429: the toolkit would retry a 503, which cannot
// help) and a status a route names for its protocol (Twirp's bad_route 404).
// Internal failures are logged and answered without their details.

import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { HoardError, httpStatusOf } from '../../core/errors.ts';

export function statusOf(err: HoardError): number {
  if (typeof err.details?.status === 'number') return err.details.status;
  return err.details?.limit === 'pending-uploads' ? 429 : httpStatusOf(err);
}

/** Sets `app`'s error handler: `answer` writes the protocol's body for a decided status and message. */
export function answerErrors(
  app: FastifyInstance,
  answer: (reply: FastifyReply, status: number, message: string, err: FastifyError | HoardError) => void,
): void {
  app.setErrorHandler((err: FastifyError | HoardError, request, reply) => {
    const status = err instanceof HoardError ? statusOf(err) : (err.statusCode ?? 500);
    if (status >= 500) request.log.error({ err }, 'request failed');
    const message = status >= 500 && !(err instanceof HoardError) ? 'internal error' : err.message;
    answer(reply, status, message, err);
  });
}
