// Progress without a terminal: plain lines on an injected clock (one per
// interval, a last one when a phase that printed ends, none for short
// phases), the smoothed rate behind ETAs, the mode choice, and the real CLI
// printing hash and push lines into a pipe.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createProgress, formatDuration, plainProgress, RateMeter } from '../../src/cli/progress.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { waitUntil } from '../support/wait.ts';
import { hoard, tempDir, writeFiles } from '../sync/helpers.ts';

/** Lets the ticker's promise chain run after the clock moved. */
const settle = () => new Promise((r) => setImmediate(r));

describe('plain progress lines', () => {
  it('one line per interval with phase, files, bytes, rate and ETA; a last line at the end', async () => {
    const clock = new ManualClock(0);
    const lines: string[] = [];
    const p = plainProgress({ write: (l) => lines.push(l), clock, intervalMs: 5000 });
    p.start('pull', 4, 400 * 1024 * 1024);
    for (let s = 1; s <= 12; s++) {
      p.bytes(10 * 1024 * 1024); // 10 MiB/s
      if (s % 4 === 0) p.blobDone();
      clock.advance(1000);
      await settle();
    }
    assert.equal(lines.length, 2, lines.join(''));
    assert.equal(
      lines[0],
      'hoard: pull 1/4 files, 50.0 MiB/400.0 MiB (12%), 10.0 MiB/s, ETA 35s, 5s elapsed\n',
    );
    assert.match(
      lines[1],
      /^hoard: pull 2\/4 files, 100\.0 MiB\/400\.0 MiB \(25%\), 10\.0 MiB\/s, ETA 30s, 10s elapsed\n$/,
    );
    p.stop();
    assert.match(lines[2], /^hoard: pull 3\/4 files, 120\.0 MiB\/400\.0 MiB \(30%\), .* done in 12s\n$/);
    clock.advance(60_000);
    await settle();
    assert.equal(lines.length, 3, 'no line after stop');
  });

  it('a phase shorter than one interval prints nothing; a stalled one keeps printing', async () => {
    const clock = new ManualClock(0);
    const lines: string[] = [];
    const p = plainProgress({ write: (l) => lines.push(l), clock, intervalMs: 5000 });
    p.start('hash', 2, 100);
    p.bytes(100);
    clock.advance(4000);
    await settle();
    p.stop();
    assert.deepEqual(lines, []);
    p.start('push', 1, 100);
    for (let i = 0; i < 3; i++) {
      clock.advance(5000);
      await settle();
    }
    assert.equal(lines.length, 3);
    assert.match(lines[2], /^hoard: push 0\/1 files, 0 B\/100 B \(0%\), 0 B\/s, ETA \?, 15s elapsed\n$/);
    p.stop();
  });

  it('the smoothed rate keeps the ETA steady when big and small files alternate', () => {
    const meter = new RateMeter(0, 5000);
    const total = 4000 * 1024 * 1024;
    let done = 0;
    const etas: number[] = [];
    // Bursts: 40 MiB in one 500 ms sample, then 1 MiB in the next (average 41 MiB/s).
    for (let t = 500; t <= 30_000; t += 500) {
      done += (t / 500) % 2 === 1 ? 40 * 1024 * 1024 : 1024 * 1024;
      meter.sample(t, done);
      if (t >= 10_000) etas.push(meter.eta(total - done)!);
    }
    // The raw per-sample rate swings 40x; the smoothed ETA moves by far less between samples.
    for (let i = 1; i < etas.length; i++) {
      const ratio = etas[i - 1] / etas[i];
      assert.ok(
        ratio > 0.85 && ratio < 1.25,
        `ETA jumped ${etas[i - 1].toFixed(1)}s -> ${etas[i].toFixed(1)}s`,
      );
    }
    assert.ok(Math.abs(meter.rate! / (41 * 1024 * 1024) - 1) < 0.25, `rate ${meter.rate}`);
  });

  it('on a terminal: a bar whose rate and ETA are the smoothed ones; nothing with --json', async () => {
    let out = '';
    const tty = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          out += chunk.toString();
          cb();
        },
      }),
      { isTTY: true, columns: 200 },
    ) as unknown as NodeJS.WriteStream;
    const clock = new ManualClock(0);
    const env = { HOARD_PROGRESS: 'auto' };
    const silent = await createProgress({ json: true, stream: tty, clock, env });
    silent.start('pull', 1, 100);
    silent.stop();
    assert.equal(out, '');
    const p = await createProgress({ stream: tty, clock, env });
    p.start('pull', 4, 400 * 1024 * 1024);
    for (let s = 1; s <= 5; s++) {
      clock.advance(1000);
      p.bytes(10 * 1024 * 1024);
    }
    p.blobDone();
    // cli-progress redraws on its own timer: wait for the line, never sleep.
    await waitUntil(() => out.includes('ETA 35s'), 'the bar with the smoothed ETA');
    assert.match(out, /pull \[.*\] 1\/4 files \| 50\.0 MiB \| 10\.0 MiB\/s \| ETA 35s/);
    p.stop();
  });

  it('durations for people', () => {
    assert.deepEqual(
      [
        formatDuration(0.4),
        formatDuration(59),
        formatDuration(185),
        formatDuration(7800),
        formatDuration(undefined),
      ],
      ['0s', '59s', '3m05s', '2h10m', '?'],
    );
  });

  it('the CLI prints hash and push lines into a pipe (HOARD_PROGRESS=plain)', async () => {
    const tmp = await tempDir('hoard-progress-');
    try {
      const dir = join(tmp.dir, 'd');
      await writeFiles(dir, { 'big.bin': Buffer.alloc(64 * 1024 * 1024, 7) });
      const env = { HOARD_PROGRESS: 'plain', HOARD_PROGRESS_INTERVAL_MS: '1' };
      const r = await hoard(['push', dir, join(tmp.dir, 'r'), '--ref', 'p/main', '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json?.filesUploaded, 1, 'stdout is still one JSON object');
      assert.match(r.stderr, /^hoard: hash [01]\/1 files, .*\/64\.0 MiB .*, .*\/s, /m);
      assert.match(r.stderr, /^hoard: push [01]\/1 files, /m);
      const bad = await hoard(['push', dir, join(tmp.dir, 'r'), '--ref', 'p/main'], {
        env: { HOARD_PROGRESS: 'loud' },
      });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /HOARD_PROGRESS="loud" is not a progress mode \[HOARD_EUSAGE\]/);
    } finally {
      await tmp.cleanup();
    }
  });
});
