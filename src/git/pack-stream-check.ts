// The checks a pack passes on its way through, before a client served from a
// cold fill is told it is complete (mirror-cold-fill.ts): a pack header
// (`PACK`, version 2 or 3) and a trailer that is the SHA-1 of every byte
// before it. That is what "the whole pack arrived" can mean without parsing
// its objects: the end of a pack is only known by its trailer, and a pack cut
// short, padded or spliced does not end with the hash of what came before.
// The objects themselves (zlib streams, deltas, connectivity) are verified
// by each client's own `git index-pack` and by the mirror's.
//
// Memory: the hash state and the last 20 bytes seen (the trailer candidate).

import { createHash, type Hash } from 'node:crypto';

const HEADER_BYTES = 12;
const TRAILER_BYTES = 20;

/** The bytes are not (or not all of) a pack. */
export class PackStreamError extends Error {}

export class PackStreamCheck {
  readonly #hash: Hash = createHash('sha1');
  /** The last bytes seen (at most TRAILER_BYTES): not hashed yet, the trailer if the pack ends here. */
  #tail: Buffer = Buffer.alloc(0);
  #header: Buffer = Buffer.alloc(0);
  #bytes = 0;

  get bytes(): number {
    return this.#bytes;
  }

  /** Takes the next bytes of the pack; throws when its header is not a pack's. */
  update(data: Buffer): void {
    this.#bytes += data.length;
    if (this.#header.length < HEADER_BYTES) {
      this.#header = Buffer.concat([this.#header, data.subarray(0, HEADER_BYTES - this.#header.length)]);
      if (this.#header.length >= 4 && this.#header.subarray(0, 4).toString('latin1') !== 'PACK')
        throw new PackStreamError('not a pack (no PACK signature)');
      if (this.#header.length === HEADER_BYTES) {
        const version = this.#header.readUInt32BE(4);
        if (version !== 2 && version !== 3) throw new PackStreamError(`unsupported pack version ${version}`);
      }
    }
    if (data.length >= TRAILER_BYTES) {
      this.#hash.update(this.#tail);
      this.#hash.update(data.subarray(0, data.length - TRAILER_BYTES));
      this.#tail = Buffer.from(data.subarray(data.length - TRAILER_BYTES));
    } else {
      const joined = Buffer.concat([this.#tail, data]);
      const keep = Math.max(0, joined.length - TRAILER_BYTES);
      this.#hash.update(joined.subarray(0, keep));
      this.#tail = joined.subarray(keep);
    }
  }

  /** The pack ended: throws unless it had a header and its trailer is the SHA-1 of the bytes before. */
  finish(): void {
    if (this.#bytes < HEADER_BYTES + TRAILER_BYTES) throw new PackStreamError('pack too short');
    if (!this.#hash.digest().equals(this.#tail))
      throw new PackStreamError('pack trailer does not match its bytes');
  }
}
