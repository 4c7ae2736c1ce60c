// `hoard cat <remote> <ref>:<path>`: one file of a version, streamed from the
// remote to a writable (stdout) through a VerifyingStream, so memory stays
// at one chunk whatever the file's size. The bytes are verified as they go:
// a corrupt blob fails the stream at its end (the consumer has already seen
// the bytes, so the exit code is what tells it not to trust them).

import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, isDigest, VerifyingStream } from '../core/digest.ts';
import { HoardError, isHoardError, toHoardError } from '../core/errors.ts';
import { validateTreePath } from '../core/tree-path.ts';
import type { Remote } from '../remote/remote.ts';
import { readTree, resolveVersion } from './history.ts';

export interface CatOptions {
  remote: Remote;
  /** `<ref>:<path>`, `<ref>~N:<path>` or `sha256:<hex>:<path>`. */
  spec: string;
  out: Writable;
  signal?: AbortSignal;
}

export interface CatResult {
  snapshot: Digest;
  path: string;
  digest?: Digest;
  size: number;
}

/** Splits `<version>:<path>`; ref names never contain `:`, a digest has exactly one. */
export function parseCatSpec(spec: string): { version: string; path: string } {
  const digestPart = spec.slice(0, 71);
  const cut = isDigest(digestPart) && spec[71] === ':' ? 71 : spec.indexOf(':');
  if (cut <= 0 || cut === spec.length - 1)
    throw new HoardError('HOARD_EUSAGE', `expected <ref>:<path>, got ${JSON.stringify(spec)}`, {
      hint: 'e.g. hoard cat s3://bucket/prefix team/app/main:config/settings.json',
    });
  return { version: spec.slice(0, cut), path: validateTreePath(spec.slice(cut + 1)) };
}

export async function catFile(opts: CatOptions): Promise<CatResult> {
  const { remote, out } = opts;
  const { version, path } = parseCatSpec(opts.spec);
  const v = await resolveVersion(remote, undefined, version);
  const tree = await readTree(remote, v.record.tree);
  const entry = tree.entries.find((e) => e.path === path);
  if (!entry)
    throw new HoardError('HOARD_EBLOB_NOT_FOUND', `${path} is not in ${version} (${v.snapshot})`, {
      hint: '`hoard diff` or `hoard log` shows which versions have it',
      details: { path, snapshot: v.snapshot },
    });
  if (entry.kind === 'dir')
    throw new HoardError('HOARD_EUSAGE', `${path} is a folder in ${version}`, { details: { path } });
  if (entry.kind === 'symlink') {
    // A symlink's content is its target, stored as data (as `git cat-file` shows it).
    await new Promise<void>((res, rej) => out.write(entry.target, (err) => (err ? rej(err) : res())));
    return { snapshot: v.snapshot, path, size: Buffer.byteLength(entry.target) };
  }
  let source: NodeJS.ReadableStream;
  try {
    source = await remote.blobs.read(entry.digest);
  } catch (err) {
    throw toHoardError(err, 'HOARD_EREMOTE', `reading ${entry.digest} from ${remote.url}`);
  }
  try {
    await pipeline(source, new VerifyingStream(entry.digest, entry.size), out, {
      end: false,
      signal: opts.signal,
    });
  } catch (err) {
    if (isHoardError(err, 'HOARD_EDIGEST_MISMATCH') || isHoardError(err, 'HOARD_ETRUNCATED'))
      throw new HoardError('HOARD_EDIGEST_MISMATCH', `${path} from ${remote.url} was corrupt`, {
        hint: 'discard the output; run `hoard fsck` on the remote',
        cause: err,
      });
    throw toHoardError(err, 'HOARD_EREMOTE', `reading ${path} from ${remote.url}`);
  }
  return { snapshot: v.snapshot, path, digest: entry.digest, size: entry.size };
}
