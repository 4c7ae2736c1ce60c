// The protocol v2 capability advertisement of a mirror (the answer to a v2
// client's GET info/refs), kept once git wrote it.
//
// Under v2, info/refs carries no refs: `version 2`, the agent, and what the
// repository's configuration enables (ls-refs=unborn, fetch features,
// object-format…). hoard used to spawn `git upload-pack --advertise-refs`
// for every one of them: 20–65 ms under load here, on the critical path of
// every fetch and restore (issue 16). The same bytes come back as long as
// the repository's `config` file and the client's GIT_PROTOCOL are the same
// (hoard's git children read no system or global config: gitEnv), so they
// are kept per (directory, protocol, identity of `config`). git replaces
// `config` by rename when it changes it: a new inode, a new entry. A git
// upgraded under a running server keeps the old agent string until restart.
// v0 advertisements hold the refs and are never kept.

import { join } from 'node:path';
import { runGit } from './git-process.ts';
import { fileIdentity } from './mirror-disk.ts';

const cache = new Map<string, Buffer>();
const CACHE_MAX = 256;

/** The v2 advertisement of the repository at `dir` for a client sending GIT_PROTOCOL `proto`. */
export async function v2Capabilities(
  dir: string,
  proto: string,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Buffer> {
  const identity = await configIdentity(dir);
  const key = identity === null ? null : `${dir}\0${proto}\0${identity}`;
  const known = key === null ? undefined : cache.get(key);
  if (known) return known;
  const r = await runGit(['upload-pack', '--stateless-rpc', '--advertise-refs', '.'], {
    cwd: dir,
    env: { GIT_PROTOCOL: proto },
    ...opts,
  });
  const answer = Buffer.from(r.stdout, 'utf8');
  // Only an answer git gave for that very file: had `config` been replaced while git ran,
  // the next request sees another identity and asks git again.
  if (key !== null && identity === (await configIdentity(dir))) {
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(key, answer);
  }
  return answer;
}

const configIdentity = (dir: string) => fileIdentity(join(dir, 'config'));
