// A git child process (upload-pack, receive-pack) whose output is an HTTP
// response's body: killed when the client leaves before the answer is
// complete, and a failure after the answer started cuts the response off
// (pipeCompleted), logged with git's stderr.

import type { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type GitChild, pipeCompleted } from './git-process.ts';

/** Kills the git child when the client goes away before the response is complete. */
export function abortOnDisconnect(reply: FastifyReply): AbortController {
  const ac = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) {
      reply.log.debug('git: client went away before the response was complete; killing git');
      ac.abort();
    }
  });
  return ac;
}

/** Pipes the child's output into `out`, which errors (and is logged, unless the client left) if git fails. */
export function pipeChild(
  g: GitChild,
  out: PassThrough,
  request: FastifyRequest,
  repo: string,
  what: string,
): void {
  pipeCompleted(g, out, (exit) => {
    if (!exit.aborted)
      request.log.warn(
        {
          repo,
          code: exit.code,
          signal: exit.signal,
          timedOut: exit.timedOut,
          stderr: exit.stderr.trim(),
        },
        `git: ${what} failed`,
      );
    return new Error(`git ${what} failed`);
  });
}
