// The REAPI messages an action cache reads — ActionResult and the Tree of an
// output directory — decoded with protobufjs from the vendored proto subset
// (proto/build/bazel/remote/execution/v2/remote_execution.proto, Apache-2.0),
// reduced to what hoard needs of them: the blobs they reference. Protocol
// neutral: the Bazel HTTP cache uses it today, a gRPC REAPI front-end later.
//
// Bodies are untrusted: anything protobufjs cannot decode as the message, and
// any digest that is not 64 lowercase hex with a size ≥ 0, is HOARD_EBAD_REQUEST.
// Unknown fields are accepted (newer REAPI versions add fields) and kept,
// since the stored bytes are the client's own.

import { join } from 'node:path';
import protobuf from 'protobufjs';
import { type Digest, digestFromHex, sha256 } from '../../core/digest.ts';
import { HoardError } from '../../core/errors.ts';

/** The digest of no bytes: Bazel never uploads it and treats it as always present. */
export const EMPTY_DIGEST: Digest = sha256('');

/** What an ActionResult makes a client download on a hit. */
export interface ActionResultRefs {
  /** Output files, stdout/stderr and output directory roots: each must be in the CAS. */
  readonly blobs: readonly Digest[];
  /** Tree blobs of output directories: each must be in the CAS, and every file it lists. */
  readonly trees: readonly Digest[];
}

interface WireDigest {
  hash?: string;
  sizeBytes?: number | { toNumber(): number };
}

interface WireActionResult {
  outputFiles?: { path?: string; digest?: WireDigest }[];
  outputDirectories?: { path?: string; treeDigest?: WireDigest; rootDirectoryDigest?: WireDigest }[];
  stdoutDigest?: WireDigest;
  stderrDigest?: WireDigest;
}

interface WireDirectory {
  files?: { name?: string; digest?: WireDigest }[];
}

interface WireTree {
  root?: WireDirectory;
  children?: WireDirectory[];
}

const PROTO = join(import.meta.dirname, 'proto/build/bazel/remote/execution/v2/remote_execution.proto');
const PACKAGE = 'build.bazel.remote.execution.v2';

let types: { actionResult: protobuf.Type; tree: protobuf.Type } | undefined;

/** The message types, parsed from the .proto on first use (the server pays for it only with Bazel traffic). */
function reapi(): { actionResult: protobuf.Type; tree: protobuf.Type } {
  if (!types) {
    const root = protobuf.loadSync(PROTO);
    types = {
      actionResult: root.lookupType(`${PACKAGE}.ActionResult`),
      tree: root.lookupType(`${PACKAGE}.Tree`),
    };
  }
  return types;
}

function decode<T>(type: protobuf.Type, bytes: Uint8Array, what: string): T {
  try {
    return type.decode(bytes) as unknown as T;
  } catch (err) {
    throw new HoardError('HOARD_EBAD_REQUEST', `not a valid ${what}: ${(err as Error).message}`, {
      hint: `the body must be a serialized REAPI ${what} message`,
    });
  }
}

/** A Digest field as a hoard digest; undefined when the field is absent or names the empty blob. */
function digestOf(d: WireDigest | null | undefined, what: string, field: string): Digest | undefined {
  if (!d) return undefined;
  const hash = d.hash ?? '';
  const raw = d.sizeBytes ?? 0;
  const size = typeof raw === 'number' ? raw : raw.toNumber();
  if (!/^[0-9a-f]{64}$/.test(hash) || !Number.isSafeInteger(size) || size < 0)
    throw new HoardError(
      'HOARD_EBAD_REQUEST',
      `not a valid ${what}: ${field} is not a SHA-256 digest (hash ${JSON.stringify(hash.slice(0, 80))}, size ${size})`,
    );
  const digest = digestFromHex(hash);
  return digest === EMPTY_DIGEST ? undefined : digest;
}

/** Validates an ActionResult and lists the blobs it references (without duplicates, the empty blob left out). */
export function decodeActionResult(bytes: Uint8Array): ActionResultRefs {
  const what = 'ActionResult';
  const msg = decode<WireActionResult>(reapi().actionResult, bytes, what);
  const blobs = new Set<Digest>();
  const trees = new Set<Digest>();
  const add = (set: Set<Digest>, d: Digest | undefined) => d && set.add(d);
  for (const [i, f] of (msg.outputFiles ?? []).entries())
    add(blobs, digestOf(f.digest, what, `output_files[${i}].digest`));
  for (const [i, d] of (msg.outputDirectories ?? []).entries()) {
    add(trees, digestOf(d.treeDigest, what, `output_directories[${i}].tree_digest`));
    add(blobs, digestOf(d.rootDirectoryDigest, what, `output_directories[${i}].root_directory_digest`));
  }
  add(blobs, digestOf(msg.stdoutDigest, what, 'stdout_digest'));
  add(blobs, digestOf(msg.stderrDigest, what, 'stderr_digest'));
  return { blobs: [...blobs], trees: [...trees] };
}

/** The file blobs a Tree lists (root and children), without duplicates, the empty blob left out. */
export function treeFileDigests(bytes: Uint8Array): Digest[] {
  const what = 'Tree';
  const msg = decode<WireTree>(reapi().tree, bytes, what);
  const out = new Set<Digest>();
  const dirs = [...(msg.root ? [msg.root] : []), ...(msg.children ?? [])];
  for (const [i, dir] of dirs.entries())
    for (const [j, f] of (dir.files ?? []).entries()) {
      const d = digestOf(f.digest, what, `directory[${i}].files[${j}].digest`);
      if (d) out.add(d);
    }
  return [...out];
}

/** Encodes an ActionResult from a plain object (camelCase fields): for tests and tools. */
export function encodeActionResult(fields: Record<string, unknown>): Uint8Array {
  const type = reapi().actionResult;
  return type.encode(type.fromObject(fields)).finish();
}

/** Encodes a Tree from a plain object (camelCase fields): for tests and tools. */
export function encodeTree(fields: Record<string, unknown>): Uint8Array {
  const type = reapi().tree;
  return type.encode(type.fromObject(fields)).finish();
}
