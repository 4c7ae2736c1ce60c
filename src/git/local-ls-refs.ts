// A v2 `ls-refs` answered from a mirror's ref files instead of a `git
// upload-pack` process, for the case that is nearly every request: the refs
// the client asks about are all in `packed-refs` (a mirror's clone and its
// maintenance pack them), HEAD names a branch, and the repository's config
// neither hides refs nor changes how ls-refs answers.
//
// Why (issue 16): every clone and every `hoard git restore` starts with
// ls-refs; the upload-pack process for it cost 24–54 ms of the server at
// load 7 (Node's synchronous spawn 14–23 ms of it, blocking the event loop
// that also serves the restore's ranged downloads), for an answer that is a
// filtered listing of one file.
//
// The answer is byte-for-byte git's (ls-refs.c of git 2.39: HEAD first, then
// the refs under the requested prefixes in refname order, `symref-target:`
// for HEAD with `symrefs`, `peeled:` with `peel`; test/git/local-ls-refs.test.ts
// compares it with `git upload-pack` for every argument combination). Anything
// this module cannot answer exactly gives null, and the caller asks git:
//   - a loose ref under a requested prefix (its object's type, for `peel`,
//     needs the object; git also prefers it over a packed entry), a loose or
//     missing HEAD target, a detached or unusual HEAD;
//   - `packed-refs` without the `fully-peeled` and `sorted` traits;
//   - a refname or argument outside plain ASCII refname characters;
//   - config that matters: hidden refs (`uploadpack.hideRefs`,
//     `transfer.hideRefs`), `lsrefs.unborn`, namespaces (hoard sets none),
//     `include`/`includeIf` (config this module would not read);
//   - too many prefixes, an unknown argument.
// Freshness is the caller's: the mirror is opened with `{ refs: true }`
// (fetched first when older than its bound) before this reads its files.
//
// Races with git writing refs: `packed-refs` is replaced by rename (a pack-refs
// writes the new file, then deletes the loose refs it packed), loose refs by
// rename. The file's identity is read before and after the loose refs are
// listed; a change in between (a pack-refs that moved loose refs into it)
// gives null rather than an answer missing them.

import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fileIdentity } from './mirror-disk.ts';
import { FLUSH_PKT, pktLine } from './pkt-line.ts';

/** More prefixes than this: git's own answer (it ignores prefixes beyond 65,536; hoard asks it). */
export const LOCAL_LS_REFS_MAX_PREFIXES = 1024;
/** A refname this module answers for: plain characters, no component git would refuse. */
const PLAIN_REFNAME = /^refs\/(?:[A-Za-z0-9_+=,-][A-Za-z0-9._+=,-]*\/)*[A-Za-z0-9_+=,-][A-Za-z0-9._+=,-]*$/;
const OID = /^[0-9a-f]{40}$/;
/** A ref-prefix value accepted: printable ASCII without spaces. */
const PLAIN_PREFIX = /^[\x21-\x7e]*$/;
/** Config that changes what ls-refs shows or how, or includes other config (any occurrence: ask git). */
const CONFIG_THAT_MATTERS = /hiderefs|unborn|namespace|include/i;

interface Packed {
  oid: string;
  peeled: string | null;
}

/**
 * `packed-refs` parsed (null: not answerable), per repository directory, with
 * the identity of the file it came from: git replaces the file by rename, so
 * new content is a new identity. A few repositories only (eslint's 10,000
 * refs are ≈ 2 MB parsed); the others are parsed again when asked.
 */
const packedCache = new Map<string, { identity: string; refs: Map<string, Packed> | null }>();
export const LOCAL_LS_REFS_CACHED_REPOS = 16;

async function packedRefs(file: string, identity: string): Promise<Map<string, Packed> | null> {
  const cached = packedCache.get(file);
  if (cached?.identity === identity) return cached.refs;
  let refs: Map<string, Packed> | null;
  try {
    refs = parsePacked(await readFile(file, 'latin1'));
  } catch {
    return null;
  }
  // Cached under the identity read before the content: a file replaced in between is
  // read again at the next request (and the identity check after the loose listing catches it now).
  packedCache.delete(file);
  if (packedCache.size >= LOCAL_LS_REFS_CACHED_REPOS)
    packedCache.delete(packedCache.keys().next().value as string);
  packedCache.set(file, { identity, refs });
  return refs;
}

function plainRefname(name: string): boolean {
  if (!PLAIN_REFNAME.test(name)) return false;
  // Components git refuses (check_refname_format): `..`, a trailing `.lock`, leading dots (the regex).
  return !name.includes('..') && !name.split('/').some((c) => c.endsWith('.lock') || c.endsWith('.'));
}

/** `packed-refs` with the traits this module needs, parsed; null otherwise. */
function parsePacked(text: string): Map<string, Packed> | null {
  const lines = text.split('\n');
  const header = lines[0];
  if (!header.startsWith('# pack-refs with:')) return null;
  const traits = new Set(header.slice('# pack-refs with:'.length).trim().split(/\s+/));
  if (!traits.has('fully-peeled') || !traits.has('sorted')) return null;
  const refs = new Map<string, Packed>();
  let last: Packed | null = null;
  let lastName = '';
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') {
      if (i !== lines.length - 1) return null;
      continue;
    }
    if (line.startsWith('^')) {
      const peeled = line.slice(1);
      if (!last || last.peeled !== null || !OID.test(peeled)) return null;
      last.peeled = peeled;
      continue;
    }
    const sp = line.indexOf(' ');
    const oid = line.slice(0, sp);
    const name = line.slice(sp + 1);
    if (sp !== 40 || !OID.test(oid) || !plainRefname(name)) return null;
    // Sorted and unique, as the trait says; anything else is git's to read.
    if (name <= lastName) return null;
    lastName = name;
    last = { oid, peeled: null };
    refs.set(name, last);
  }
  return refs;
}

/** Names of loose ref files under `dir/refs` (`.lock` files excluded, as git's iteration skips them). */
async function looseRefNames(dir: string): Promise<string[] | null> {
  try {
    const entries = await readdir(join(dir, 'refs'), { recursive: true, withFileTypes: true });
    const names: string[] = [];
    for (const e of entries) {
      if (e.isDirectory()) continue;
      if (e.name.endsWith('.lock')) continue;
      names.push(relative(dir, join(e.parentPath, e.name)).split(sep).join('/'));
    }
    return names;
  } catch {
    return null;
  }
}

/**
 * git's answer to `ls-refs` with `args` (the v2 argument lines, without
 * newlines) on the repository `dir`, from its files; null when git must be
 * asked (see the header).
 */
export async function localLsRefs(dir: string, args: string[]): Promise<Buffer | null> {
  let symrefs = false;
  let peel = false;
  let unborn = false;
  const prefixes: string[] = [];
  for (const a of args) {
    if (a === 'symrefs') symrefs = true;
    else if (a === 'peel') peel = true;
    else if (a === 'unborn') unborn = true;
    else if (a.startsWith('ref-prefix ')) {
      const p = a.slice('ref-prefix '.length);
      if (!PLAIN_PREFIX.test(p)) return null;
      prefixes.push(p);
    } else return null;
  }
  if (prefixes.length > LOCAL_LS_REFS_MAX_PREFIXES) return null;
  const wanted = (name: string) => prefixes.length === 0 || prefixes.some((p) => name.startsWith(p));

  let config: string;
  let head: string;
  try {
    [config, head] = await Promise.all([
      readFile(join(dir, 'config'), 'latin1'),
      readFile(join(dir, 'HEAD'), 'latin1'),
    ]);
  } catch {
    return null;
  }
  if (CONFIG_THAT_MATTERS.test(config)) return null;
  const headMatch = /^ref: (refs\/heads\/[^\n]+)\n$/.exec(head);
  if (!headMatch || !plainRefname(headMatch[1])) return null;
  const headTarget = headMatch[1];

  const packedFile = join(dir, 'packed-refs');
  const before = await fileIdentity(packedFile);
  if (before === null) return null;
  const packed = await packedRefs(packedFile, before);
  if (!packed) return null;
  const loose = await looseRefNames(dir);
  if (loose === null) return null;
  // A loose ref that would be shown, or that HEAD resolves through: git reads it (and its object).
  if (loose.some((n) => wanted(n) || n === headTarget)) return null;
  if ((await fileIdentity(packedFile)) !== before) return null;

  const lines: Buffer[] = [];
  const target = packed.get(headTarget);
  if (target) {
    // HEAD is resolved outside the ref iteration: peeled only if its object is a tag.
    if (wanted('HEAD')) {
      let line = `${target.oid} HEAD`;
      if (symrefs) line += ` symref-target:${headTarget}`;
      if (peel && target.peeled) line += ` peeled:${target.peeled}`;
      lines.push(pktLine(`${line}\n`));
    }
  } else if (unborn && symrefs && wanted('HEAD')) {
    lines.push(pktLine(`unborn HEAD symref-target:${headTarget}\n`));
  }
  for (const [name, ref] of packed) {
    if (!wanted(name)) continue;
    let line = `${ref.oid} ${name}`;
    if (peel && ref.peeled) line += ` peeled:${ref.peeled}`;
    lines.push(pktLine(`${line}\n`));
  }
  lines.push(FLUSH_PKT);
  return Buffer.concat(lines);
}
