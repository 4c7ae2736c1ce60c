// What a cache entry's content references, so that gc keeps it.
//
// gc (gc.ts) keeps every ref's target, a snapshot's tree and files, and a
// cache entry record's content blob. Some entries name more blobs inside
// their content: a Bazel ActionResult names its output files, stdout, stderr
// and output-directory Trees, which live in the CAS without a ref of their
// own. Without following them, a gc empties the CAS under every action
// cache entry, and the action cache's integrity rule then turns each entry
// into a miss: the cache survives, but is useless until rebuilt.
//
// The server layer cannot know the formats features store, so a feature
// declares them (FeatureDefinition.entryReferences), keyed by the entry
// record's `meta.format`; the composition root hands the list to gc and to
// the disk bound's eviction pass.
//
// Everything read here is untrusted content from the disk: a follower that
// throws (content that does not decode) keeps nothing more than the record
// and its content blob, which is the safe side for a cache (the entry is
// then a miss anyway).

import type { Digest } from '../core/digest.ts';

/** Reads another blob's bytes; undefined when absent or larger than `maxBytes`. */
export type ReadBounded = (digest: Digest, maxBytes: number) => Promise<Buffer | undefined>;

export interface EntryReferences {
  /** The entry records' `meta.format` this follows. */
  readonly format: string;
  /** Largest content read; a larger content blob is kept, but nothing it names. */
  readonly maxContentBytes: number;
  /** The blobs `content` needs (the content blob itself is already kept). */
  references(content: Buffer, read: ReadBounded): Promise<Iterable<Digest>>;
}
