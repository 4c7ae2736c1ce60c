// Pull-based reading of a byte stream in lines and exact-length pieces, for
// parsing framed output such as `git cat-file --batch` without buffering more
// than one chunk of it.

export class ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #buf: Buffer = Buffer.alloc(0);
  #ended = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const r = await this.#it.next();
    if (r.done) {
      this.#ended = true;
      return false;
    }
    const chunk = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    this.#buf = this.#buf.byteLength === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    return true;
  }

  /** The next line without its `\n`, or null at the end. Lines are capped at `max` bytes. */
  async readLine(max = 64 * 1024): Promise<string | null> {
    for (;;) {
      const nl = this.#buf.indexOf(0x0a);
      if (nl >= 0) {
        const line = this.#buf.subarray(0, nl).toString('utf8');
        this.#buf = this.#buf.subarray(nl + 1);
        return line;
      }
      if (this.#buf.byteLength > max) throw new Error(`line longer than ${max} bytes`);
      if (!(await this.#fill())) {
        if (this.#buf.byteLength === 0) return null;
        throw new Error('stream ended inside a line');
      }
    }
  }

  /** Yields exactly `n` bytes in pieces; throws if the stream ends first. */
  async *readExactly(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.#buf.byteLength === 0 && !(await this.#fill()))
        throw new Error(`stream ended ${left} bytes early`);
      const take = Math.min(left, this.#buf.byteLength);
      const piece = this.#buf.subarray(0, take);
      this.#buf = this.#buf.subarray(take);
      left -= take;
      yield piece;
    }
  }

  /** Reads exactly `n` bytes into one buffer (only for small, bounded pieces). */
  async readBuffer(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const p of this.readExactly(n)) parts.push(p);
    return Buffer.concat(parts, n);
  }
}
