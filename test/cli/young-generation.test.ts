// keepYoungGenerationSmall (src/cli/young-generation.ts): in a process that
// keeps much of what it allocates (a scan of many files), V8's young
// generation stays at its initial size instead of growing to its maximum.
// Checked in a child process: the flag is process-wide. What is compared is
// the median of the samples, not their maximum: while V8's incremental
// marking of the old generation runs, it lets new space take fresh pages
// without scavenging until the mark-compact ends (then it is back at its
// initial size), and how long that lasts depends on whether the concurrent
// marking threads are scheduled: 4 MiB on a quiet machine, 16.75 MiB once in
// a loaded CI run. The growth the call prevents is the lasting one (a median
// of 64 MiB without it). scavengeOnMainThread:
// no scavenge uses V8's helper threads (their time, traced, is zero).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Median new_space size (MiB) while allocating and keeping 300,000 small objects, with or without the call. */
async function newSpaceMiB(keepSmall: boolean): Promise<number> {
  const src = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { keepYoungGenerationSmall } from ${JSON.stringify(new URL('../../src/cli/young-generation.ts', import.meta.url).href)};
    if (${keepSmall}) keepYoungGenerationSmall();
    const kept = [];
    const sizes = [];
    for (let i = 0; i < 300000; i++) {
      kept.push({ path: 'd/s/file-' + i, size: i, digest: 'sha256:' + i.toString(16).padStart(64, '0') });
      if (i % 1000 === 0) sizes.push(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
    }
    sizes.sort((a, b) => a - b);
    console.log(sizes[sizes.length >> 1] / 2 ** 20, kept.length);
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', src]);
  return Number(stdout.split(' ')[0]);
}

describe('keepYoungGenerationSmall', () => {
  it('keeps the young generation at a few MiB where it would otherwise grow', async () => {
    const small = await newSpaceMiB(true);
    const grown = await newSpaceMiB(false);
    assert.ok(small <= 4, `young generation ${small} MiB with the flag`);
    assert.ok(grown > 4 * small, `young generation ${grown} MiB without it, ${small} MiB with it`);
  });
});

describe('scavengeOnMainThread', () => {
  it('leaves every scavenge to the main thread (no helper-thread time in any)', async () => {
    const src = `
      import { scavengeOnMainThread } from ${JSON.stringify(new URL('../../src/cli/young-generation.ts', import.meta.url).href)};
      scavengeOnMainThread();
      const kept = [];
      for (let i = 0; i < 300000; i++) {
        const o = { path: 'd/s/file-' + i, size: i };
        if (i % 10 === 0) kept.push(o);
      }
      console.log(kept.length);
    `;
    const { stdout } = await run(process.execPath, ['--trace-gc-nvp', '--input-type=module', '-e', src]);
    const scavenges = stdout.split('\n').filter((l) => l.includes('gc=s'));
    assert.ok(scavenges.length > 0, 'no scavenge traced');
    for (const line of scavenges) {
      const helper = /background\.scavenge\.parallel=([\d.]+)/.exec(line);
      assert.ok(helper, `no helper figure in ${line}`);
      assert.equal(Number(helper[1]), 0, line);
    }
  });
});
