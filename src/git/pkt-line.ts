// git pkt-line framing: just enough to write the `# service=` preamble and to
// read the head of an upload-pack request (the command and the `want` lines)
// without consuming the rest of the stream.

import type { Readable } from 'node:stream';
import { isObjectId } from './object-id.ts';

export const FLUSH_PKT = Buffer.from('0000');

export function pktLine(text: string): Buffer {
  // One allocation: a long listing (ls-refs of 10,000 refs) is a pkt-line per ref.
  const n = Buffer.byteLength(text, 'utf8') + 4;
  const out = Buffer.allocUnsafe(n);
  out.write(n.toString(16).padStart(4, '0'), 0, 'latin1');
  out.write(text, 4, 'utf8');
  return out;
}

export interface RequestHead {
  /** Every byte read from the stream so far; write these before piping the rest. */
  bytes: Buffer;
  /** v2 `command=…` value, if any. */
  command: string | null;
  /** Object ids from `want` lines. */
  wants: string[];
  /** Whether the head was fully parsed (false when the cap was hit or the body was malformed). */
  complete: boolean;
  /** Whether the bytes are not pkt-line framing at all (a length that is not 4 hex digits). */
  malformed?: boolean;
}

/** The next chunk of a paused stream, waiting for one; null at its end. */
export async function readChunk(s: Readable): Promise<Buffer | null> {
  for (;;) {
    const c = s.read() as Buffer | null;
    if (c !== null) return c;
    // A stream that failed before we listened (bad gzip) reports it here, not as end of input.
    if (s.errored) throw s.errored;
    if (s.readableEnded || s.destroyed) return null;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        s.off('readable', done);
        s.off('end', done);
        s.off('close', done);
        s.off('error', fail);
        resolve();
      };
      const fail = (err: Error) => {
        done();
        reject(err);
      };
      s.on('readable', done);
      s.on('end', done);
      s.on('close', done);
      s.on('error', fail);
    });
  }
}

/**
 * Reads pkt-lines from the start of an upload-pack request until the wants
 * are over (a flush, `have`, or `done`), at most `maxBytes`. The stream is left
 * paused right after the bytes returned.
 */
export async function readRequestHead(s: Readable, maxBytes = 1024 * 1024): Promise<RequestHead> {
  let buf: Buffer = Buffer.alloc(0);
  let pos = 0;
  const head: RequestHead = { bytes: buf, command: null, wants: [], complete: false };
  for (;;) {
    // Parse what is buffered.
    while (buf.length - pos >= 4) {
      const hex = buf.subarray(pos, pos + 4).toString('latin1');
      if (!/^[0-9a-f]{4}$/i.test(hex)) return { ...head, bytes: buf, complete: false, malformed: true };
      const len = Number.parseInt(hex, 16);
      if (len === 0) return { ...head, bytes: buf, complete: true }; // flush: end of wants / request
      if (len < 4) {
        pos += 4; // delim (0001) or response-end (0002)
        continue;
      }
      if (buf.length - pos < len) break;
      const line = buf
        .subarray(pos + 4, pos + len)
        .toString('latin1')
        .replace(/\n$/, '');
      pos += len;
      if (line.startsWith('command=')) head.command = line.slice(8);
      else if (line.startsWith('want ')) {
        const id = line.slice(5, line.indexOf(' ', 5) === -1 ? undefined : line.indexOf(' ', 5));
        if (isObjectId(id)) head.wants.push(id);
      } else if (line.startsWith('have ') || line === 'done') return { ...head, bytes: buf, complete: true };
    }
    if (buf.length >= maxBytes) return { ...head, bytes: buf, complete: false };
    const c = await readChunk(s);
    if (c === null) return { ...head, bytes: buf, complete: true };
    buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
  }
}

/** The delimiter packet of protocol v2 (ends the capability list of a command). */
export const DELIM_PKT = Buffer.from('0001');

/** Largest pkt-line git writes (LARGE_PACKET_MAX): 4 length bytes + 65516 payload bytes. */
export const PKT_MAX = 65520;

/** A pkt-line with a binary payload (no trailing newline added). */
export function pktData(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload]);
}

/** Sideband pkt-lines (band 1: pack data, 2: progress, 3: fatal error) of `data`, split at PKT_MAX. */
export function sidebandPkts(band: 1 | 2 | 3, data: Buffer): Buffer[] {
  const max = PKT_MAX - 5;
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += max) {
    const part = data.subarray(i, i + max);
    const head = Buffer.alloc(5);
    head.write((part.length + 5).toString(16).padStart(4, '0'), 0, 'latin1');
    head[4] = band;
    out.push(head, part);
  }
  return out;
}

export type Pkt =
  | { kind: 'data'; payload: Buffer }
  | { kind: 'flush' }
  | { kind: 'delim' }
  | { kind: 'response-end' };

/**
 * Reads pkt-lines from a byte stream (a remote's answer: untrusted). Lengths
 * are checked (4 hex digits, 4..PKT_MAX or a special packet); a stream that
 * ends inside a packet throws. Consumers pull one packet at a time, so a slow
 * consumer pauses the source (backpressure), and nothing larger than one
 * packet plus one chunk is held.
 */
export async function* readPkts(src: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<Pkt> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of src) {
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
    let pos = 0;
    while (buf.length - pos >= 4) {
      const hex = buf.subarray(pos, pos + 4).toString('latin1');
      if (!/^[0-9a-f]{4}$/i.test(hex)) throw new PktError(`not a pkt-line length: ${JSON.stringify(hex)}`);
      const len = Number.parseInt(hex, 16);
      if (len < 4) {
        pos += 4;
        yield len === 0 ? { kind: 'flush' } : len === 1 ? { kind: 'delim' } : { kind: 'response-end' };
        continue;
      }
      if (len === 4 || len > PKT_MAX) throw new PktError(`bad pkt-line length ${len}`);
      if (buf.length - pos < len) break;
      const payload = buf.subarray(pos + 4, pos + len);
      pos += len;
      yield { kind: 'data', payload };
    }
    buf = buf.subarray(pos);
  }
  if (buf.length > 0) throw new PktError('the stream ended inside a pkt-line');
}

export class PktError extends Error {}

/** A protocol v2 request: `command=…`, capabilities, delim, arguments, flush. */
export interface V2Request {
  command: string;
  /** Capability lines before the delimiter (`agent=…`, `object-format=…`), without the newline. */
  capabilities: string[];
  /** Argument lines after the delimiter, without the newline. */
  args: string[];
}

/**
 * Parses a whole protocol v2 request held in `bytes` (a client's: untrusted).
 * null when it is not exactly one well-formed v2 command ending in a flush at
 * the end of `bytes`.
 */
export function parseV2Request(bytes: Buffer): V2Request | null {
  let pos = 0;
  let command: string | null = null;
  const capabilities: string[] = [];
  const args: string[] = [];
  let inArgs = false;
  while (bytes.length - pos >= 4) {
    const hex = bytes.subarray(pos, pos + 4).toString('latin1');
    if (!/^[0-9a-f]{4}$/i.test(hex)) return null;
    const len = Number.parseInt(hex, 16);
    if (len === 0) {
      pos += 4;
      return command !== null && pos === bytes.length ? { command, capabilities, args } : null;
    }
    if (len === 1) {
      if (inArgs) return null;
      inArgs = true;
      pos += 4;
      continue;
    }
    if (len < 5 || bytes.length - pos < len) return null;
    const line = bytes
      .subarray(pos + 4, pos + len)
      .toString('latin1')
      .replace(/\n$/, '');
    pos += len;
    if (inArgs) args.push(line);
    else if (command === null) {
      if (!line.startsWith('command=')) return null;
      command = line.slice(8);
    } else capabilities.push(line);
  }
  return null;
}
