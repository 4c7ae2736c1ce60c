// The pieces of the cold fill that need no server: pkt-line reading and
// framing of untrusted bytes, v2 request parsing, the ls-refs answer, which
// fetches a fill's pack satisfies, upstream answers validated, the stream
// checks a pack passes before a client is told it is complete, and the spool
// read by clients slower and faster than its writer.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { clonesFromFill, lsRefsAnswer } from '../../src/git/git-fill-answers.ts';
import { PackSpool } from '../../src/git/mirror-pack-spool.ts';
import {
  FallBack,
  lsRefs,
  parseCapabilities,
  safeRefName,
  type V2Transport,
} from '../../src/git/mirror-upstream-v2.ts';
import { PackStreamCheck } from '../../src/git/pack-stream-check.ts';
import {
  DELIM_PKT,
  FLUSH_PKT,
  PKT_MAX,
  parseV2Request,
  pktLine,
  readPkts,
  sidebandPkts,
} from '../../src/git/pkt-line.ts';
import { GIT_ENV, makeUpstream, tempDir } from './helpers/harness.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);

async function pkts(bytes: Buffer, chunk = 3) {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  const out = [];
  for await (const p of readPkts(Readable.from(parts))) out.push(p);
  return out;
}

describe('pkt-lines from an untrusted stream', () => {
  test('packets split across chunks are reassembled; special packets are reported', async () => {
    const got = await pkts(Buffer.concat([pktLine('hello\n'), DELIM_PKT, pktLine('x'), FLUSH_PKT]));
    assert.deepEqual(
      got.map((p) => (p.kind === 'data' ? p.payload.toString() : p.kind)),
      ['hello\n', 'delim', 'x', 'flush'],
    );
  });
  test('bad lengths, oversized packets and a truncated stream throw', async () => {
    await assert.rejects(pkts(Buffer.from('zzzzabc')), /not a pkt-line length/);
    await assert.rejects(pkts(Buffer.from('0004')), /bad pkt-line length 4/);
    await assert.rejects(pkts(Buffer.from('fff1')), /bad pkt-line length/);
    await assert.rejects(pkts(Buffer.from('000ahel')), /ended inside a pkt-line/);
  });
  test('sideband framing splits data at the largest packet', () => {
    const data = Buffer.alloc(PKT_MAX * 2 + 10, 1);
    const framed = Buffer.concat(sidebandPkts(1, data));
    let pos = 0;
    let total = 0;
    while (pos < framed.length) {
      const len = Number.parseInt(framed.subarray(pos, pos + 4).toString(), 16);
      assert.ok(len <= PKT_MAX);
      assert.equal(framed[pos + 4], 1);
      total += len - 5;
      pos += len;
    }
    assert.equal(total, data.length);
  });
});

describe('v2 requests', () => {
  const req = (args: string[], caps = ['agent=git/2.39.5', 'object-format=sha1']) =>
    Buffer.concat([
      pktLine('command=fetch\n'),
      ...caps.map((c) => pktLine(`${c}\n`)),
      DELIM_PKT,
      ...args.map((a) => pktLine(`${a}\n`)),
      FLUSH_PKT,
    ]);
  test('parsed whole, or not at all', () => {
    assert.deepEqual(parseV2Request(req(['want x', 'done'])), {
      command: 'fetch',
      capabilities: ['agent=git/2.39.5', 'object-format=sha1'],
      args: ['want x', 'done'],
    });
    const whole = req(['done']);
    assert.equal(parseV2Request(whole.subarray(0, whole.length - 4)), null, 'no flush');
    assert.equal(parseV2Request(Buffer.concat([whole, pktLine('more')])), null, 'bytes after the flush');
    assert.equal(parseV2Request(Buffer.concat([pktLine('want x\n'), FLUSH_PKT])), null, 'no command');
    assert.equal(parseV2Request(Buffer.from('00zz')), null);
  });
  test('only a fresh full-pack clone of the fill’s tips is served from its pack', () => {
    const fill = { hasTip: (o: string) => o === A || o === B };
    assert.equal(
      clonesFromFill(
        [`want ${A}`, `want ${B}`, 'thin-pack', 'no-progress', 'include-tag', 'ofs-delta', 'done'],
        fill,
      ),
      true,
    );
    assert.equal(clonesFromFill([`want ${A}`, 'ofs-delta', 'done'], fill), true, 'a subset of the tips');
    assert.equal(clonesFromFill([`want ${C}`, 'ofs-delta', 'done'], fill), false, 'not a tip');
    assert.equal(clonesFromFill([`want ${A}`, 'ofs-delta'], fill), false, 'no done: a negotiation');
    assert.equal(clonesFromFill([`want ${A}`, `have ${B}`, 'ofs-delta', 'done'], fill), false, 'haves');
    assert.equal(clonesFromFill([`want ${A}`, 'deepen 1', 'ofs-delta', 'done'], fill), false, 'shallow');
    assert.equal(clonesFromFill([`want ${A}`, 'filter blob:none', 'ofs-delta', 'done'], fill), false);
    assert.equal(clonesFromFill([`want ${A}`, 'done'], fill), false, 'no ofs-delta');
    assert.equal(clonesFromFill(['ofs-delta', 'done'], fill), false, 'no wants');
    assert.equal(clonesFromFill([`want ${A}`, 'sideband-all', 'ofs-delta', 'done'], fill), false);
  });
  test('the ls-refs answer honours prefixes, symrefs and unborn like upload-pack; no peeled values', () => {
    const refs = {
      refs: [
        { name: 'HEAD', oid: A, symref: 'refs/heads/main' },
        { name: 'refs/heads/main', oid: A },
        { name: 'refs/tags/v1', oid: B },
      ],
    };
    const lines = (b: Buffer | null) => {
      const out: string[] = [];
      let pos = 0;
      while (b && pos < b.length) {
        const len = Number.parseInt(b.subarray(pos, pos + 4).toString(), 16);
        out.push(
          len === 0
            ? '0000'
            : b
                .subarray(pos + 4, pos + len)
                .toString()
                .trimEnd(),
        );
        pos += len === 0 ? 4 : len;
      }
      return out;
    };
    assert.deepEqual(
      lines(lsRefsAnswer(refs, ['symrefs', 'peel', 'ref-prefix HEAD', 'ref-prefix refs/tags/'])),
      [`${A} HEAD symref-target:refs/heads/main`, `${B} refs/tags/v1`, '0000'],
      'peel is accepted, and adds nothing before the pack is indexed',
    );
    assert.deepEqual(lines(lsRefsAnswer(refs, [])), [
      `${A} HEAD`,
      `${A} refs/heads/main`,
      `${B} refs/tags/v1`,
      '0000',
    ]);
    assert.deepEqual(
      lines(lsRefsAnswer({ refs: [], unbornHead: 'refs/heads/main' }, ['symrefs', 'unborn'])),
      ['unborn HEAD symref-target:refs/heads/main', '0000'],
    );
    assert.equal(lsRefsAnswer(refs, ['something-new']), null, 'an unknown argument: served by upload-pack');
  });
});

describe('upstream answers', () => {
  const adv = (lines: string[]) => Buffer.concat([...lines.map((l) => pktLine(`${l}\n`)), FLUSH_PKT]);
  test('capabilities: v2 with ls-refs and fetch in sha1, else FallBack to git clone', () => {
    const caps = parseCapabilities(
      adv(['version 2', 'agent=x', 'ls-refs=unborn', 'fetch=shallow', 'object-format=sha1']),
    );
    assert.equal(caps.get('ls-refs'), 'unborn');
    assert.throws(() => parseCapabilities(adv([`${A} HEAD\0multi_ack`])), FallBack);
    assert.throws(
      () => parseCapabilities(adv(['version 2', 'ls-refs', 'fetch', 'object-format=sha256'])),
      FallBack,
    );
    assert.throws(() => parseCapabilities(adv(['version 2', 'fetch'])), FallBack);
    assert.throws(() => parseCapabilities(Buffer.from('<html>')), FallBack);
  });
  test('ref names are checked as git would, and kept to the namespaces asked for', () => {
    for (const ok of ['refs/heads/main', 'refs/tags/v1.0', 'refs/heads/feat/x-1'])
      assert.equal(safeRefName(ok, ['refs/heads/', 'refs/tags/']), true, ok);
    for (const bad of [
      'refs/heads/a..b',
      'refs/heads/x.lock',
      'refs/heads/.hidden',
      'refs/heads/a b',
      'refs/heads/a\x01',
      'refs/heads/a@{1}',
      'refs/heads/',
      'refs/heads//x',
      'refs/heads/x.',
      'refs/heads/a:b',
      'refs/pull/1/head',
      '../../etc/passwd',
    ])
      assert.equal(safeRefName(bad, ['refs/heads/', 'refs/tags/']), false, bad);
  });
  test('ls-refs: a list without its flush, a malformed or duplicate line, an ERR is an error', async () => {
    const caps = new Map([
      ['ls-refs', ''],
      ['fetch', ''],
    ]);
    const t = (body: Buffer): V2Transport => ({
      advertise: async () => Buffer.alloc(0),
      rpc: async () => Readable.from([body]),
    });
    const ok = await lsRefs(
      t(adv([`${A} HEAD symref-target:refs/heads/main`, `${A} refs/heads/main`])),
      caps,
      ['refs/heads/'],
    );
    assert.equal(ok.refs.length, 2);
    await assert.rejects(
      lsRefs(t(pktLine(`${A} refs/heads/main\n`)), caps, ['refs/heads/']),
      /without a flush/,
    );
    await assert.rejects(
      lsRefs(t(adv([`${A} refs/heads/main x:y`])), caps, ['refs/heads/']),
      /unknown ref attribute/,
    );
    await assert.rejects(
      lsRefs(t(adv([`${A} refs/heads/main`, `${B} refs/heads/main`])), caps, ['refs/heads/']),
      /duplicate/,
    );
    await assert.rejects(lsRefs(t(adv(['ERR go away'])), caps, ['refs/heads/']), /reported an error/);
    await assert.rejects(
      lsRefs(t(adv([`${B} refs/tags/v1 peeled:xyz`])), caps, ['refs/tags/']),
      /bad peeled id/,
    );
    await assert.rejects(lsRefs(t(Buffer.from('0003')), caps, ['refs/heads/']), /unexpected packet/);
  });
  test('ls-refs: hoard does not ask for peeled tags; an upstream that sends them anyway has them dropped', async () => {
    const caps = new Map([
      ['ls-refs', ''],
      ['fetch', ''],
    ]);
    let sent: Buffer = Buffer.alloc(0);
    const t: V2Transport = {
      advertise: async () => Buffer.alloc(0),
      rpc: async (body) => {
        sent = body;
        return Readable.from([adv([`${A} refs/heads/main`, `${B} refs/tags/v1 peeled:${C}`])]);
      },
    };
    const got = await lsRefs(t, caps, ['refs/heads/', 'refs/tags/']);
    assert.doesNotMatch(sent.toString('latin1'), /peel/);
    assert.deepEqual(got.refs, [
      { name: 'refs/heads/main', oid: A, symref: undefined },
      { name: 'refs/tags/v1', oid: B, symref: undefined },
    ]);
    assert.doesNotMatch(lsRefsAnswer(got, ['peel'])!.toString('latin1'), /peeled/);
  });
});

describe('pack spool', () => {
  test('readers slower and faster than the writer get every byte; a failure reaches them; removal keeps open readers', async () => {
    const tmp = tempDir();
    try {
      const spool = await PackSpool.create(join(tmp.path, 'p.pack'));
      const early = spool.reader()!;
      const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(100_000, i));
      const expected = Buffer.concat(chunks);
      const fast = (async () => Buffer.concat(await early.toArray()))();
      for (const c of chunks.slice(0, 20)) await spool.append(c);
      const late = spool.reader()!; // joins half-way, reads from the start
      for (const c of chunks.slice(20)) await spool.append(c);
      spool.finish();
      await spool.remove();
      assert.equal(existsSync(join(tmp.path, 'p.pack')), false);
      assert.equal(spool.reader(), null, 'no new readers once removed');
      assert.ok((await fast).equals(expected));
      assert.ok(
        Buffer.concat(await late.toArray()).equals(expected),
        'a reader opened before removal still reads',
      );

      const failing = await PackSpool.create(join(tmp.path, 'q.pack'));
      const r = failing.reader()!;
      await failing.append(Buffer.alloc(10));
      const reading = r.toArray();
      failing.fail(new Error('upstream cut'));
      await assert.rejects(reading, /upstream cut/);
      assert.equal(failing.reader(), null);
      await failing.remove();
    } finally {
      tmp.cleanup();
    }
  });
});

describe('pack stream checks', () => {
  const tmp = tempDir();
  const up = makeUpstream(join(tmp.path, 'up'), 'src', 5);
  const pack = execFileSync('git', ['pack-objects', '--stdout', '--revs'], {
    cwd: up,
    env: GIT_ENV,
    input: 'main\n',
  });
  const run = (bytes: Buffer, chunk: number) => {
    const c = new PackStreamCheck();
    for (let i = 0; i < bytes.length; i += chunk) c.update(bytes.subarray(i, i + chunk));
    c.finish();
    return c.bytes;
  };

  test('a whole pack passes in chunks of any size (split inside the header and the trailer too)', () => {
    for (const chunk of [1, 3, 19, 20, 21, 64, pack.length]) assert.equal(run(pack, chunk), pack.length);
  });
  test('a pack cut short, padded, changed or spliced fails; so does a header that is not a pack', () => {
    for (const chunk of [1, 20, 4096]) {
      assert.throws(() => run(pack.subarray(0, pack.length - 1), chunk), /trailer/, 'one byte short');
      assert.throws(() => run(pack.subarray(0, pack.length - 20), chunk), /trailer/, 'no trailer');
      assert.throws(() => run(Buffer.concat([pack, Buffer.alloc(1)]), chunk), /trailer/, 'a byte after');
      const changed = Buffer.from(pack);
      changed[40] ^= 1;
      assert.throws(() => run(changed, chunk), /trailer/, 'a byte changed');
      assert.throws(() => run(Buffer.concat([pack, pack]), chunk), /trailer/, 'two packs');
    }
    assert.throws(() => run(Buffer.alloc(5000, 7), 100), /not a pack/);
    const v4 = Buffer.from(pack);
    v4.writeUInt32BE(4, 4);
    assert.throws(() => run(v4, 7), /unsupported pack version 4/);
    assert.throws(() => run(pack.subarray(0, 20), 20), /too short/);
    tmp.cleanup();
  });
});
