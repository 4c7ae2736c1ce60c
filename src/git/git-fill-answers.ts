// v2 requests answered from a cold fill (mirror-cold-fill.ts) before the
// mirror it creates exists: `ls-refs` from the fill's refs, and a clone's
// `fetch` from the fill's pack, read from its spool as it arrives. Anything
// else is left to the mirror and upload-pack (git-routes.ts).

import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { NO_CACHE } from './git-http-replies.ts';
import type { ColdFill } from './mirror-cold-fill.ts';
import type { MirrorManager } from './mirror-manager.ts';
import type { UpstreamRefs } from './mirror-upstream-v2.ts';
import { FLUSH_PKT, parseV2Request, pktLine, sidebandPkts } from './pkt-line.ts';
import { parseRepoPath } from './upstreams.ts';

/**
 * Answers a v2 request from the cold fill creating the mirror, when it can:
 * `ls-refs` with the fill's refs (if they are fresh enough for a request
 * that arrived at `t0`), and a clone's `fetch` (wants among the fill's tips,
 * no haves, no shallow or filter) with the fill's pack, read from its spool
 * as it arrives. Anything else returns false: the request waits for the
 * mirror and is served by upload-pack as usual. (A boolean: a FastifyReply
 * is a thenable, awaiting it waits for the response.)
 */
export async function serveFromFill(
  mirrors: Pick<MirrorManager, 'fillFreshFor' | 'countUploadPack'>,
  request: FastifyRequest,
  reply: FastifyReply,
  repo: string,
  fill: ColdFill,
  bytes: Buffer,
  t0: number,
): Promise<boolean> {
  const req = parseV2Request(bytes);
  if (!req?.capabilities.every(plainCapability)) return false;
  if (req.command === 'ls-refs') {
    if (!mirrors.fillFreshFor(fill, t0)) return false;
    const refs = await fill.refs.catch(() => null);
    const answer = refs && lsRefsAnswer(refs, req.args);
    if (!answer) return false;
    reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-result');
    void reply.send(answer);
    return true;
  }
  if (req.command !== 'fetch' || !clonesFromFill(req.args, fill)) return false;
  const pack = await fill.openPack();
  if (!pack) return false;
  mirrors.countUploadPack(parseRepoPath(repo).key);
  request.log.debug({ repo }, 'git: serving a clone from the pack being mirrored');
  reply.raw.on('close', () => pack.destroy());
  const out = Readable.from(packfileSection(pack, request), { objectMode: false });
  reply.code(200).headers(NO_CACHE).header('content-type', 'application/x-git-upload-pack-result');
  void reply.send(out);
  return true;
}

/**
 * The `packfile` section of a v2 fetch answer around the pack's bytes
 * (sideband 1), its final flush as soon as the whole pack arrived and
 * passed the fill's stream checks (the client's own git verifies the
 * objects and their connectivity; it does not wait for the mirror's
 * indexing). A pack that fails before (the upstream cut off or reporting an
 * error, a bad header or trailer) ends with a sideband-3 error, which the
 * client reports and fails on.
 */
async function* packfileSection(pack: Readable, request: FastifyRequest): AsyncGenerator<Buffer> {
  yield pktLine('packfile\n');
  try {
    // One write per spool read (256 KiB), not two per pkt-line: fewer chunks of the HTTP
    // response's chunked encoding and fewer socket writes for the same bytes.
    for await (const chunk of pack) yield Buffer.concat(sidebandPkts(1, chunk as Buffer));
  } catch (err) {
    request.log.warn({ err: (err as Error).message }, 'git: the pack being mirrored failed mid-stream');
    yield Buffer.concat(
      sidebandPkts(3, Buffer.from(`hoard: upstream fetch failed (request id ${request.id})\n`)),
    );
    return;
  }
  yield FLUSH_PKT;
}

/**
 * Capability lines of a client's v2 command that hoard's own answers honour
 * (a fill's, and ls-refs from the ref files): anything else goes to git.
 */
export function plainCapability(line: string): boolean {
  return line.startsWith('agent=') || line.startsWith('session-id=') || line === 'object-format=sha1';
}

/**
 * The answer to a client's `ls-refs` (its arguments: `symrefs`, `peel`,
 * `unborn`, `ref-prefix`) from a fill's refs, as upload-pack would write it,
 * except that `peel` adds nothing: a fill's tags are not peeled until its pack
 * is indexed (mirror-cold-fill.ts), and the client's git peels the tags it
 * writes itself. null for an argument it does not know.
 */
export function lsRefsAnswer(refs: UpstreamRefs, args: string[]): Buffer | null {
  let symrefs = false;
  let unborn = false;
  const prefixes: string[] = [];
  for (const a of args) {
    if (a === 'symrefs') symrefs = true;
    else if (a === 'peel') continue;
    else if (a === 'unborn') unborn = true;
    else if (a.startsWith('ref-prefix ')) prefixes.push(a.slice(11));
    else return null;
  }
  const wanted = (name: string) => prefixes.length === 0 || prefixes.some((p) => name.startsWith(p));
  const lines: Buffer[] = [];
  if (unborn && refs.unbornHead && wanted('HEAD'))
    lines.push(pktLine(`unborn HEAD${symrefs ? ` symref-target:${refs.unbornHead}` : ''}\n`));
  for (const r of refs.refs) {
    if (!wanted(r.name)) continue;
    let line = `${r.oid} ${r.name}`;
    if (symrefs && r.symref) line += ` symref-target:${r.symref}`;
    lines.push(pktLine(`${line}\n`));
  }
  lines.push(FLUSH_PKT);
  return Buffer.concat(lines);
}

/**
 * Whether a client's v2 `fetch` arguments ask for what a fill's full pack
 * gives: a fresh clone (wants only, each one of the fill's tips, `done`, no
 * haves, no shallow/deepen, no filter) that accepts ofs-deltas. Extra objects
 * (a single-branch clone gets every branch's) are accepted by git: it keeps
 * what it received and checks its refs are connected.
 */
export function clonesFromFill(args: string[], fill: Pick<ColdFill, 'hasTip'>): boolean {
  let wants = 0;
  let done = false;
  let ofsDelta = false;
  for (const a of args) {
    if (a.startsWith('want ')) {
      if (!fill.hasTip(a.slice(5))) return false;
      wants++;
    } else if (a === 'done') done = true;
    else if (a === 'ofs-delta') ofsDelta = true;
    else if (a !== 'thin-pack' && a !== 'no-progress' && a !== 'include-tag') return false;
  }
  return wants > 0 && done && ofsDelta;
}
