// The framing of a batched blob read (POST /v1/blobs/batch, docs/api.md):
// an 8-byte magic, then exactly one record per requested digest, in request
// order. A record is a fixed 37-byte head — the raw 32-byte SHA-256, a
// status byte, a big-endian uint32 length — followed by `length` bytes when
// the status is "present". Fixed-size heads keep the reader a small state
// machine with no delimiter scanning, and binary digests cannot be confused
// with content.
//
// The reader here trusts nothing: every record must name the next digest
// asked for, a present record's length must equal the size the caller
// expects (so a hostile length never allocates), its bytes must hash to its
// digest before they are handed over, and the stream must end exactly after
// the last record (a short stream is HOARD_ETRUNCATED, extra bytes are an
// error). Bytes reach the caller only whole and verified.

import { type Digest, digestFromHex, hexOf, sha256 } from './digest.ts';
import { DigestMismatchError, HoardError } from './errors.ts';

export const BATCH_MAGIC = Buffer.from('HOARDBB1', 'latin1');
export const BATCH_CONTENT_TYPE = 'application/vnd.hoard.blob-batch.v1';
export const RECORD_HEAD_BYTES = 37;

export const BatchStatus = {
  /** `length` bytes of the blob follow. */
  present: 0,
  /** No tier has the blob; length 0. */
  missing: 1,
  /** Not sent: it would pass the response's byte budget; length 0. Fetch it alone (or in another batch). */
  notSent: 2,
} as const;
export type BatchStatus = (typeof BatchStatus)[keyof typeof BatchStatus];

/** The head of one record. */
export function recordHead(digest: Digest, status: BatchStatus, length: number): Buffer {
  const head = Buffer.allocUnsafe(RECORD_HEAD_BYTES);
  writeRecordHead(head, 0, digest, status, length);
  return head;
}

/** Writes the head of one record into `buf` at `at` (RECORD_HEAD_BYTES). */
export function writeRecordHead(
  buf: Buffer,
  at: number,
  digest: Digest,
  status: BatchStatus,
  length: number,
): void {
  buf.write(hexOf(digest), at, 32, 'hex');
  buf[at + 32] = status;
  buf.writeUInt32BE(length, at + 33);
}

/** What the caller expects of one record: the digest asked for and the size its tree gives. */
export interface BlobWant {
  digest: Digest;
  size: number;
}

/** A record as handed over: verified bytes, or why there are none. */
/** One record head, decoded (its digest not yet checked against anything). */
interface RecordHead {
  digest: Digest;
  status: number;
  length: number;
}

/**
 * The part both readers share: the stream's magic, then 37-byte record
 * heads, either of which a chunk boundary may cut anywhere. `step` consumes
 * magic or head bytes from `chunk` at `off` and returns the new offset, with
 * the head once it is whole; the caller handles the bodies in between.
 */
class RecordHeads {
  readonly #magic: Buffer;
  readonly #badMagic: () => HoardError;
  #magicSeen = 0;
  readonly #head = Buffer.allocUnsafe(RECORD_HEAD_BYTES);
  #fill = 0;

  constructor(magic: Buffer, badMagic: () => HoardError) {
    this.#magic = magic;
    this.#badMagic = badMagic;
  }

  get magicDone(): boolean {
    return this.#magicSeen === this.#magic.length;
  }

  /** Whether the stream stopped inside the magic or a head. */
  get partial(): boolean {
    return this.#magicSeen < this.#magic.length || this.#fill > 0;
  }

  step(chunk: Buffer, off: number): { off: number; head?: RecordHead } {
    const magic = this.#magic;
    if (this.#magicSeen < magic.length) {
      const n = Math.min(magic.length - this.#magicSeen, chunk.length - off);
      if (!chunk.subarray(off, off + n).equals(magic.subarray(this.#magicSeen, this.#magicSeen + n)))
        throw this.#badMagic();
      this.#magicSeen += n;
      return { off: off + n };
    }
    const n = Math.min(RECORD_HEAD_BYTES - this.#fill, chunk.length - off);
    chunk.copy(this.#head, this.#fill, off, off + n);
    this.#fill += n;
    if (this.#fill < RECORD_HEAD_BYTES) return { off: off + n };
    this.#fill = 0;
    const head = this.#head;
    return {
      off: off + n,
      head: {
        digest: digestFromHex(head.toString('hex', 0, 32)),
        status: head[32],
        length: head.readUInt32BE(33),
      },
    };
  }
}

export type BatchRecord =
  | { digest: Digest; status: 'present'; bytes: Buffer }
  | { digest: Digest; status: 'missing' }
  | { digest: Digest; status: 'not-sent' };

function protocolError(message: string): HoardError {
  return new HoardError('HOARD_EREMOTE', `batched blob read: ${message}`, {
    hint: 'the server sent a malformed batch response; nothing from it past the last good record was used',
  });
}

/**
 * Reads a batch response for `wants` (in request order), calling `each` for
 * every record, awaited before the next is read (so a slow consumer slows
 * the stream: backpressure). Throws on the first violation; records before
 * it have been handed over, nothing after.
 */
export async function readBatchFrames(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
  wants: readonly BlobWant[],
  each: (record: BatchRecord) => void | Promise<void>,
): Promise<void> {
  const heads = new RecordHeads(BATCH_MAGIC, () =>
    protocolError('the response does not start with the batch magic'),
  );
  let index = 0;
  /** The record whose bytes are being gathered. */
  let want: BlobWant | undefined;
  let parts: Buffer[] = [];
  let got = 0;

  const finishBody = async (bytes: Buffer) => {
    const w = want!;
    want = undefined;
    parts = [];
    got = 0;
    const actual = sha256(bytes);
    if (actual !== w.digest) throw new DigestMismatchError(w.digest, actual);
    index++;
    await each({ digest: w.digest, status: 'present', bytes });
  };

  for await (const chunk of body) {
    let off = 0;
    while (off < chunk.length) {
      if (want) {
        const n = Math.min(want.size - got, chunk.length - off);
        const piece = chunk.subarray(off, off + n);
        off += n;
        got += n;
        if (got === want.size) {
          // One chunk holding the whole body: handed over without a copy.
          await finishBody(parts.length === 0 ? piece : Buffer.concat([...parts, piece], got));
        } else parts.push(piece);
        continue;
      }
      if (heads.magicDone && index === wants.length)
        throw protocolError(`bytes after the last of ${wants.length} records`);
      const step = heads.step(chunk, off);
      off = step.off;
      if (!step.head) continue;
      const { digest, status, length } = step.head;
      const expected = wants[index];
      if (digest !== expected.digest)
        throw protocolError(
          `record ${index + 1} is for ${digest}, but ${expected.digest} was asked for at that place`,
        );
      if (status === BatchStatus.present) {
        if (length !== expected.size)
          throw protocolError(
            `record for ${digest} declares ${length} bytes, but that blob has ${expected.size}`,
          );
        want = expected;
        if (length === 0) await finishBody(Buffer.alloc(0));
      } else if (status === BatchStatus.missing || status === BatchStatus.notSent) {
        if (length !== 0)
          throw protocolError(`record for ${digest} has no content but declares ${length} bytes`);
        index++;
        await each(
          status === BatchStatus.missing ? { digest, status: 'missing' } : { digest, status: 'not-sent' },
        );
      } else throw protocolError(`record for ${digest} has an unknown status ${status}`);
    }
  }
  if (heads.partial || want || index < wants.length)
    throw new HoardError(
      'HOARD_ETRUNCATED',
      `batched blob read cut short after ${index} of ${wants.length} records`,
    );
}

// ---- uploads (POST /v1/blobs/batch-upload) ----------------------------------
//
// The same record heads, the other way: an 8-byte magic of its own (a read
// response replayed as an upload is refused at its first byte), then one
// "present" record per blob (head + bytes) until the body ends. The reader
// below is the server's: it trusts nothing either — a record's length is
// checked against the per-record and per-request bounds before a byte of it
// is gathered (so a hostile length never allocates more than the bound), its
// bytes must hash to its digest before they are handed over, and a body that
// ends inside a record is HOARD_ETRUNCATED. Bytes reach the caller only whole
// and verified, so a cut or lying stream publishes nothing unverified.

export const UPLOAD_MAGIC = Buffer.from('HOARDBU1', 'latin1');
export const UPLOAD_CONTENT_TYPE = 'application/vnd.hoard.blob-upload.v1';

export interface UploadLimits {
  /** Largest record. */
  recordBytes: number;
  /** Most blob bytes in one request. */
  totalBytes: number;
  /** Most records in one request. */
  records: number;
}

/** The framed body of an upload (the client's side): magic, then head + bytes per blob. */
export function uploadFrames(blobs: readonly { digest: Digest; bytes: Uint8Array }[]): Buffer[] {
  const out: Buffer[] = [UPLOAD_MAGIC];
  for (const b of blobs) {
    out.push(recordHead(b.digest, BatchStatus.present, b.bytes.byteLength));
    out.push(Buffer.from(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength));
  }
  return out;
}

function badUpload(message: string): HoardError {
  return new HoardError('HOARD_EBAD_REQUEST', `batched blob upload: ${message}`);
}

/**
 * Reads an upload body, calling `each` with every record's verified bytes
 * (a fresh buffer the callee may keep), awaited before the next record is
 * read. Throws on the first violation; records before it have been handed
 * over, nothing after. Returns how many records there were.
 */
export async function readUploadFrames(
  body: AsyncIterable<Uint8Array>,
  limits: UploadLimits,
  each: (digest: Digest, bytes: Buffer) => void | Promise<void>,
): Promise<number> {
  const heads = new RecordHeads(UPLOAD_MAGIC, () =>
    badUpload(`the body does not start with the upload magic (${UPLOAD_CONTENT_TYPE})`),
  );
  let records = 0;
  let total = 0;
  /** The record being gathered: its digest and a buffer of exactly its length. */
  let digest: Digest | undefined;
  let bytes: Buffer | undefined;
  let got = 0;

  const finish = async () => {
    const d = digest!;
    const b = bytes!;
    digest = undefined;
    bytes = undefined;
    got = 0;
    const actual = sha256(b);
    if (actual !== d) throw new DigestMismatchError(d, actual);
    await each(d, b);
  };

  for await (const c of body) {
    const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    let off = 0;
    while (off < chunk.length) {
      if (bytes) {
        const n = Math.min(bytes.length - got, chunk.length - off);
        chunk.copy(bytes, got, off, off + n);
        off += n;
        got += n;
        if (got === bytes.length) await finish();
        continue;
      }
      const step = heads.step(chunk, off);
      off = step.off;
      if (!step.head) continue;
      const { digest: d, status, length } = step.head;
      if (status !== BatchStatus.present)
        throw badUpload(`record for ${d} has status ${status}; uploads carry only present records (0)`);
      if (++records > limits.records)
        throw badUpload(`more than ${limits.records} blobs in one request; split the upload`);
      if (length > limits.recordBytes)
        throw new HoardError(
          'HOARD_ETOO_LARGE',
          `batched blob upload: ${d} declares ${length} bytes, over the ${limits.recordBytes} a batched blob may have`,
          { hint: 'upload larger blobs with PUT /v1/blobs/sha256/<hex>' },
        );
      total += length;
      if (total > limits.totalBytes)
        throw new HoardError(
          'HOARD_ETOO_LARGE',
          `batched blob upload: more than ${limits.totalBytes} bytes in one request`,
          { hint: 'split the upload, or raise --max-batch-bytes on the server' },
        );
      digest = d;
      bytes = Buffer.allocUnsafe(length);
      if (length === 0) await finish();
    }
  }
  if (heads.partial || bytes)
    throw new HoardError('HOARD_ETRUNCATED', `batched blob upload cut short after ${records} records`, {
      hint: 'nothing past the last whole, verified record was stored',
    });
  return records;
}
