// The tar state machine of the safe extractor (safe-extract.ts): fed the
// decompressed chunks in order, it parses headers straight from them (a
// header split across chunks is assembled in one reused block), applies pax
// and GNU long-name headers to the entry after them, and hands each entry to
// a sink (tar-entry-writer.ts) with its body as views of the chunks — no
// per-entry streams, nothing copied but extended headers. The bounds on the
// decompressed size and the number of headers are checked here, as the
// bytes arrive, so a bomb is cut off at the bound.

import { HoardError } from '../core/errors.ts';
import { BLOCK } from './tar-format.ts';
import {
  applyPax,
  cString,
  decodeHeader,
  decodePax,
  invalid,
  isZeroBlock,
  type TarEntryHeader,
} from './tar-header-decoder.ts';

/** Largest pax or GNU long-name body accepted (they are buffered). */
const MAX_META_BYTES = 1024 * 1024;

/** Where the parser's entries go. */
export interface TarEntrySink {
  /**
   * An entry, its extended headers applied. True: its body is a file's,
   * handed to data() piece by piece and then fileEnd(); false: the body (if
   * any) is read and dropped.
   */
  entry(h: TarEntryHeader): boolean;
  /** A piece of the current file's body: a view of a chunk, valid only during the call. */
  data(piece: Buffer): void;
  fileEnd(): void;
}

export interface TarParserLimits {
  /** Refuse (HOARD_ETOO_LARGE) once the uncompressed stream exceeds this many bytes. */
  maxBytes?: number;
  /** Refuse (HOARD_ETOO_LARGE) once the archive has more headers than this. */
  maxEntries?: number;
}

export class TarStreamParser {
  readonly #sink: TarEntrySink;
  readonly #limits: TarParserLimits;
  /** A partial header block carried over between chunks. */
  #hdr = Buffer.alloc(BLOCK);
  #hdrFill = 0;
  /** Bytes of the current body still to come, then padding to skip. */
  #left = 0;
  #pad = 0;
  /** The current body is a file's, going to the sink. */
  #toSink = false;
  /** A pax or GNU long-name body being collected. */
  #meta: Buffer[] | null = null;
  #metaType = '';
  #pax: Map<string, string> | null = null;
  #longName: string | null = null;
  #longLink: string | null = null;
  /** Uncompressed bytes and headers seen, against the limits. */
  #seen = 0;
  #headers = 0;

  constructor(sink: TarEntrySink, limits: TarParserLimits = {}) {
    this.#sink = sink;
    this.#limits = limits;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.byteLength;
    this.#seen += len;
    const maxBytes = this.#limits.maxBytes;
    if (maxBytes !== undefined && this.#seen > maxBytes)
      throw new HoardError('HOARD_ETOO_LARGE', `archive expands to more than ${maxBytes} bytes; refused`, {
        hint: 'the archive is a decompression bomb or larger than the configured bound',
        details: { maxBytes },
      });
    while (pos < len) {
      if (this.#left > 0) {
        const take = Math.min(this.#left, len - pos);
        const piece = chunk.subarray(pos, pos + take);
        if (this.#toSink) this.#sink.data(piece);
        // A copy: the chunk may be a reused buffer, overwritten after this call.
        else if (this.#meta) this.#meta.push(Buffer.from(piece));
        this.#left -= take;
        pos += take;
        if (this.#left === 0) this.#endBody();
        continue;
      }
      if (this.#pad > 0) {
        const take = Math.min(this.#pad, len - pos);
        this.#pad -= take;
        pos += take;
        continue;
      }
      // A header: straight from the chunk when it is whole, else assembled.
      if (this.#hdrFill === 0 && len - pos >= BLOCK) {
        this.#header(chunk, pos);
        pos += BLOCK;
        continue;
      }
      const take = Math.min(BLOCK - this.#hdrFill, len - pos);
      chunk.copy(this.#hdr, this.#hdrFill, pos, pos + take);
      this.#hdrFill += take;
      pos += take;
      if (this.#hdrFill === BLOCK) {
        this.#hdrFill = 0;
        this.#header(this.#hdr, 0);
      }
    }
  }

  /** At the end of the stream: nothing may be left half-read. */
  end(): void {
    if (this.#left > 0 || this.#pad > 0 || this.#hdrFill > 0) throw invalid('unexpected end of data');
    if (this.#meta || this.#pax || this.#longName !== null || this.#longLink !== null)
      throw invalid('unexpected end of data after an extended header');
  }

  #body(size: number): void {
    this.#left = size;
    this.#pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) this.#endBody();
  }

  #endBody(): void {
    if (this.#toSink) {
      this.#toSink = false;
      this.#sink.fileEnd();
    } else if (this.#meta) {
      const data = Buffer.concat(this.#meta);
      this.#meta = null;
      if (this.#metaType === 'pax-header') this.#pax = decodePax(data);
      else {
        const s = cString(data, 0, data.byteLength);
        if (this.#metaType === 'gnu-long-path') this.#longName = s;
        else this.#longLink = s;
      }
    }
  }

  #header(buf: Buffer, at: number): void {
    if (buf[at] === 0 && isZeroBlock(buf, at)) return; // end-of-archive blocks
    const h = decodeHeader(buf, at);
    if (!Number.isSafeInteger(h.size)) throw invalid('bad size');
    const maxEntries = this.#limits.maxEntries;
    if (maxEntries !== undefined && ++this.#headers > maxEntries)
      throw new HoardError('HOARD_ETOO_LARGE', `archive has more than ${maxEntries} entries; refused`, {
        details: { maxEntries },
      });
    switch (h.type) {
      case 'pax-global-header':
        this.#body(h.size); // skipped: neither a file's body nor an extended header
        return;
      case 'pax-header':
      case 'gnu-long-path':
      case 'gnu-long-link-path':
        if (h.size > MAX_META_BYTES) throw invalid(`${h.type} of ${h.size} bytes`);
        this.#meta = [];
        this.#metaType = h.type;
        this.#body(h.size);
        return;
    }
    // Extended headers apply to this entry only.
    if (this.#pax) applyPax(h, this.#pax);
    if (this.#longName !== null) h.name = this.#longName;
    if (this.#longLink !== null) h.linkname = this.#longLink;
    this.#pax = null;
    this.#longName = null;
    this.#longLink = null;
    this.#toSink = this.#sink.entry(h);
    this.#body(h.size);
  }
}
