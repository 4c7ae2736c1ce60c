// The routes of one key URL of a build-tool protocol: GET and HEAD by one
// handler (HEAD answers the headers of the GET), PUT, and DELETE where the
// protocol has it. Every one authorizes itself (config scope 'none'): the
// server-wide hook cannot know the key's namespace, and the protocols' own
// credentials (HTTP Basic with the token as password) go through the cache
// core's authorize().

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

type Handler<P> = (request: FastifyRequest<{ Params: P }>, reply: FastifyReply) => Promise<FastifyReply>;

export function keyRoute<P>(
  app: FastifyInstance,
  url: string,
  handlers: { get: Handler<P>; put: Handler<P>; delete?: Handler<P> },
): void {
  const config = { scope: 'none' as const };
  app.route<{ Params: P }>({
    method: ['GET', 'HEAD'],
    url,
    exposeHeadRoute: false,
    config,
    handler: handlers.get,
  });
  app.put<{ Params: P }>(url, { config }, handlers.put);
  if (handlers.delete) app.delete<{ Params: P }>(url, { config }, handlers.delete);
}
