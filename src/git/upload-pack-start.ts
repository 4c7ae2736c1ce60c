// `git upload-pack --stateless-rpc` on a mirror, fed a client's request
// (the head already read, then the rest of the body streamed into stdin),
// and the answer held back until git said something: a body that fails to
// inflate (or is cut off) before that kills git and is a 400, and a request
// git rejects is a 4xx, instead of a 200 cut off mid-way (or a child left
// waiting for stdin that never ends).

import { PassThrough, type Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HoardError } from '../core/errors.ts';
import { abortOnDisconnect, pipeChild } from './git-child-response.ts';
import { type GitChild, gitFailure, spawnGit } from './git-process.ts';
import { bodyFailure } from './git-request-body.ts';

export interface UploadPackRequest {
  request: FastifyRequest;
  reply: FastifyReply;
  repo: string;
  /** The mirror's directory. */
  dir: string;
  /** The client's Git-Protocol header, as git is to see it. */
  proto: string | undefined;
  /** What was read of the body so far, and the rest of it (requestBody). */
  head: Buffer;
  body: Readable;
}

/**
 * Starts upload-pack and resolves with its output, once git wrote its first
 * byte (or exited 0). Throws a 400 for a body that failed or a request git
 * rejected, HOARD_EGIT for any other failure before the answer started.
 */
export async function startUploadPack(r: UploadPackRequest): Promise<PassThrough> {
  const { request, reply, repo, body } = r;
  const ac = abortOnDisconnect(reply);
  const g = spawnGit(['upload-pack', '--stateless-rpc', '.'], {
    cwd: r.dir,
    env: { GIT_PROTOCOL: r.proto },
    signal: ac.signal,
    stdin: true,
  });
  const stdin = g.child.stdin!;
  stdin.write(r.head);
  // A body that fails later (mid-stream) must not leave git waiting for the rest of stdin.
  body.on('error', () => g.kill());
  body.pipe(stdin);
  const first = await firstOf(g, body);
  if (first === 'body-error') {
    g.kill();
    await g.done;
    throw bodyFailure(body.errored);
  }
  if (first === 'failed') {
    // git exited non-zero before answering: nobody will read its output.
    g.child.stdout?.resume();
    const exit = await g.done;
    const stderr = exit.stderr.trim();
    if (body.errored) throw bodyFailure(body.errored);
    if (!exit.aborted && !exit.timedOut && /protocol error|invalid command|expected|bad line/i.test(stderr)) {
      request.log.info({ repo, stderr }, 'git: upload-pack rejected the request');
      throw new HoardError('HOARD_EBAD_REQUEST', 'malformed git request: git upload-pack rejected it');
    }
    throw new HoardError('HOARD_EGIT', 'git upload-pack failed', {
      cause: gitFailure(['upload-pack'], exit),
    });
  }
  const out = new PassThrough();
  pipeChild(g, out, request, repo, 'upload-pack');
  return out;
}

/**
 * Waits for git's first output byte, its exit, or a failure of the request
 * body, whichever comes first. A zero exit counts as output (what it wrote
 * may still be in the pipe): the normal streaming path handles it.
 */
function firstOf(g: GitChild, body: Readable): Promise<'output' | 'failed' | 'body-error'> {
  const { child } = g;
  const stdout = child.stdout!;
  if (body.errored) return Promise.resolve('body-error');
  return new Promise((resolve) => {
    const finish = (v: 'output' | 'failed' | 'body-error') => {
      stdout.off('readable', onReadable);
      body.off('error', onBodyError);
      child.off('exit', onExit);
      resolve(v);
    };
    // 'readable' also fires at end of stream; only bytes count as an answer.
    const onReadable = () => {
      if (stdout.readableLength > 0) finish('output');
    };
    const onBodyError = () => finish('body-error');
    const onExit = (code: number | null) => finish(code === 0 ? 'output' : 'failed');
    stdout.on('readable', onReadable);
    body.once('error', onBodyError);
    child.once('exit', onExit);
    if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode);
  });
}
