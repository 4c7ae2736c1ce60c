// Object checksums for the GCS emulator (a test fixture): MD5 and CRC32C in the
// exact shapes GCS reports them (base64 of the digest; CRC32C as 4 big-endian
// bytes). The official client compares these with what it computed itself and
// deletes an upload whose checksum does not match, so they must be exact.
//
// CRC32C (Castagnoli) is implemented here rather than borrowed from the client
// library, so the client's validation is checked against an independent
// implementation. Slicing-by-8 keeps hashing a few hundred MB around a second.

import { createHash } from 'node:crypto';

const POLY = 0x82f63b78; // Castagnoli polynomial, reflected

const TABLES: Int32Array[] = (() => {
  const t0 = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[n] = c;
  }
  const tables = [t0];
  for (let i = 1; i < 8; i++) {
    const prev = tables[i - 1];
    const t = new Int32Array(256);
    for (let n = 0; n < 256; n++) t[n] = (prev[n] >>> 8) ^ t0[prev[n] & 0xff];
    tables.push(t);
  }
  return tables;
})();

/** CRC32C of `data` as an unsigned 32-bit integer. */
export function crc32c(data: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES;
  let crc = ~0;
  let i = 0;
  const end8 = data.length - (data.length % 8);
  for (; i < end8; i += 8) {
    const lo = crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    crc =
      t7[lo & 0xff] ^
      t6[(lo >>> 8) & 0xff] ^
      t5[(lo >>> 16) & 0xff] ^
      t4[lo >>> 24] ^
      t3[data[i + 4]] ^
      t2[data[i + 5]] ^
      t1[data[i + 6]] ^
      t0[data[i + 7]];
  }
  for (; i < data.length; i++) crc = (crc >>> 8) ^ t0[(crc ^ data[i]) & 0xff];
  return ~crc >>> 0;
}

/** `crc32c` and `md5Hash` fields of an object resource for `data`. */
export function objectHashes(data: Buffer): { crc32c: string; md5Hash: string } {
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32c(data));
  return { crc32c: crc.toString('base64'), md5Hash: createHash('md5').update(data).digest('base64') };
}
