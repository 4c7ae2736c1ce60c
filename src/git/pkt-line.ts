// git pkt-line framing: just enough to write the `# service=` preamble and to
// read the head of an upload-pack request (the command and the `want` lines)
// without consuming the rest of the stream.

import type { Readable } from 'node:stream';

export const FLUSH_PKT = Buffer.from('0000');

export function pktLine(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0')), body]);
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

async function readChunk(s: Readable): Promise<Buffer | null> {
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
        if (/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(id)) head.wants.push(id);
      } else if (line.startsWith('have ') || line === 'done') return { ...head, bytes: buf, complete: true };
    }
    if (buf.length >= maxBytes) return { ...head, bytes: buf, complete: false };
    const c = await readChunk(s);
    if (c === null) return { ...head, bytes: buf, complete: true };
    buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
  }
}
