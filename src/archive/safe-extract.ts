// Safe extraction of untrusted tar (or tar.zst) streams into an empty staging
// directory. An archive can never make hoard write outside that directory:
//
// - entry names must be relative tree paths (no absolute paths, `..`, empty
//   segments, NUL or backslashes);
// - an entry whose parent is a symlink or a file from this archive is refused
//   (a symlink to /etc followed by `link/passwd`), and every file is created
//   with O_EXCL|O_NOFOLLOW, so nothing is ever written through a link;
// - symlink targets must stay inside the directory: absolute targets and
//   targets climbing out are refused when the link is created, and after the
//   last entry every link that resolves is checked physically (realpath), so
//   chains of links cannot escape either;
// - hard links may only point at a regular file extracted earlier;
// - device files, FIFOs and unknown entry types are refused;
// - a path appearing twice is refused (except a directory entry for a
//   directory that already exists);
// - `maxBytes` bounds the decompressed stream and `maxEntries` the number of
//   headers (a zstd bomb is cut off at the bound, not after filling the disk);
// - an optional `policy` sees every entry before anything is written and may
//   refuse it (throw) or skip it (its body is read and dropped): restore uses
//   it to accept only the `.git` files a snapshot may hold.
// Every refusal is a HOARD_EARCHIVE_UNSAFE error naming the entry. Cleaning
// up the staging directory after a failure is the caller's job.
//
// This module runs an extraction; its parts:
//   tar-zst-input.ts        where the tar bytes come from (zstd decoded synchronously, or zlib's stream)
//   tar-stream-parser.ts    the tar state machine, straight from the decompressed chunks, and the bounds
//   tar-header-decoder.ts   one header, pax records
//   tar-entry-writer.ts     each entry checked and written with synchronous calls
//   extract-path-checks.ts  names, symlink targets (lexical and physical), the refusal error
//   extract-options.ts      the options, recorder, policy entry and result types

import { utimesSync } from 'node:fs';
import { readdir, realpath } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HoardError, isHoardError } from '../core/errors.ts';
import type { ExtractOptions, ExtractResult } from './extract-options.ts';
import { checkLinksInside } from './extract-path-checks.ts';
import { TarEntryWriter } from './tar-entry-writer.ts';
import { TarStreamParser } from './tar-stream-parser.ts';
import { feedTar, type TarInput, tarZstInput } from './tar-zst-input.ts';

export type { EntryInfo, ExtractOptions, ExtractRecorder, ExtractResult } from './extract-options.ts';
export { unsafe } from './extract-path-checks.ts';

/** Extracts an uncompressed tar stream into `dir`, which must exist and be empty. */
export async function extractTar(
  source: Readable | AsyncIterable<Uint8Array>,
  dir: string,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  return extractStreams({ stages: [source], feed: feedTar, close() {} }, dir, opts);
}

/** Extracts a zstd-compressed tar stream into `dir`, which must exist and be empty. */
export async function extractTarZst(
  source: Readable | AsyncIterable<Uint8Array>,
  dir: string,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  const input = tarZstInput(source, opts.zstdStream === true);
  try {
    return await extractStreams(input, dir, opts);
  } finally {
    input.close();
  }
}

async function extractStreams(input: TarInput, dir: string, opts: ExtractOptions): Promise<ExtractResult> {
  if ((await readdir(dir)).length > 0)
    throw new HoardError('HOARD_EUSAGE', `staging directory ${dir} is not empty`);
  const root = await realpath(dir);
  const writer = new TarEntryWriter(root, opts);
  const parser = new TarStreamParser(writer, { maxBytes: opts.maxBytes, maxEntries: opts.maxEntries });
  try {
    const sink = async (src: AsyncIterable<Uint8Array>) => {
      await input.feed(src, parser);
      parser.end();
    };
    // biome-ignore lint/suspicious/noExplicitAny: node's pipeline typing does not cover a variable stage list
    await pipeline([...input.stages, sink] as any, { signal: opts.signal });
    // Physical check of every link: chains of in-archive links must not lead out.
    await checkLinksInside(writer.links, root);
    // Directory mtimes last, deepest first, after their contents were written.
    for (const d of writer.dirTimes.reverse()) utimesSync(d.path, d.mtime, d.mtime);
    return writer.result;
  } catch (e) {
    writer.abort();
    if (isHoardError(e)) throw e;
    if (opts.signal?.aborted) throw new HoardError('HOARD_EABORTED', 'extraction aborted', { cause: e });
    throw new HoardError('HOARD_EARCHIVE_UNSAFE', `invalid archive: ${(e as Error).message}`, {
      cause: e,
      hint: 'the archive is corrupt or not a tar.zst',
    });
  }
}
