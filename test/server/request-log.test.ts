// The request line (src/server/request-log.ts): requestLineWriter writes,
// byte for byte, what logger.info({ reqId, ...requestLogFields(r) },
// 'request') writes, for the primary's logger (fastify's, as app.ts makes
// it) and a read worker's; and a logger it cannot shape falls back to
// logger.info.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import pino from 'pino';
import {
  primaryLoggerOptions,
  type RequestLine,
  requestLineWriter,
  requestLogFields,
  workerLogger,
} from '../../src/server/request-log.ts';

/** A log destination that keeps what is written. */
function capture() {
  const lines: string[] = [];
  return { lines, write: (s: string) => lines.push(s), flush() {} };
}

const LINES: RequestLine[] = [
  {
    method: 'GET',
    url: `/v1/blobs/sha256/${'ab'.repeat(32)}`,
    status: 200,
    ms: 0.04,
    bytesIn: 0,
    bytesOut: 4096,
    tier: 'disk',
    client: '127.0.0.1',
  },
  {
    method: 'HEAD',
    url: `/v1/blobs/sha256/${'cd'.repeat(32)}?x="quoted"\\&ü=\u00ff&tab=%09`,
    status: 206,
    ms: 12.345678,
    bytesIn: 0,
    bytesOut: 10,
    tier: undefined,
    client: undefined,
  },
  {
    method: 'GET',
    url: `/v1/blobs/sha256/${'ef'.repeat(32)}?sig=secret-signature&se=1`,
    status: 304,
    ms: 1234567.89,
    bytesIn: 0,
    bytesOut: 0,
    tier: 'memory',
    client: '::ffff:10.0.0.7',
  },
];

/** Both ways of writing each line, times made equal (the only field that may differ between two calls). */
function both(logger: pino.BaseLogger, out: { lines: string[] }): [string[], string[]] {
  const viaInfo: string[] = [];
  const viaWriter: string[] = [];
  const write = requestLineWriter(logger);
  for (const [i, r] of LINES.entries()) {
    out.lines.length = 0;
    logger.info({ reqId: `r-${i}`, ...requestLogFields(r) }, 'request');
    viaInfo.push(...out.lines);
    out.lines.length = 0;
    write(`r-${i}`, r);
    viaWriter.push(...out.lines);
  }
  const untimed = (l: string) => l.replace(/"time":\d+/, '"time":0');
  return [viaInfo.map(untimed), viaWriter.map(untimed)];
}

describe('request lines', () => {
  it('the primary’s logger: the writer’s lines are logger.info’s, byte for byte', async () => {
    const out = capture();
    const app = Fastify({ logger: primaryLoggerOptions('info', out) });
    try {
      const [info, writer] = both(app.log as unknown as pino.BaseLogger, out);
      assert.equal(info.length, LINES.length);
      assert.deepEqual(writer, info);
      const parsed = JSON.parse(writer[1]) as Record<string, unknown>;
      assert.equal(parsed.url, LINES[1].url, 'a URL with quotes and backslashes stays JSON');
      assert.equal('tier' in parsed || 'client' in parsed, false, 'undefined fields are left out');
      assert.ok(!writer[2].includes('secret-signature'), 'a signature is redacted');
    } finally {
      await app.close();
    }
  });

  it('a read worker’s logger: the same, with its worker index', () => {
    const out = capture();
    const log = workerLogger('info', 3, out);
    const [info, writer] = both(log, out);
    assert.deepEqual(writer, info);
    assert.equal((JSON.parse(writer[0]) as { worker: number }).worker, 3);
  });

  it('a logger the writer cannot shape (a mixin, a log formatter, another message key) gets logger.info', () => {
    for (const opts of [
      { mixin: () => ({ extra: 1 }) },
      { formatters: { log: (o: Record<string, unknown>) => ({ ...o, formatted: true }) } },
      { messageKey: 'message' },
      { nestedKey: 'payload' },
    ] as pino.LoggerOptions[]) {
      const out = capture();
      const log = pino(opts, out);
      const [info, writer] = both(log, out);
      assert.deepEqual(writer, info, JSON.stringify(Object.keys(opts)));
    }
  });
});
