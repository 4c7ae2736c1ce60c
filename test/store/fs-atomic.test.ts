// Temp names (fs-atomic.ts tempName): unique within a process without drawing
// random bytes per name, and carrying the writer's pid so that a later
// process can tell a dead writer's leftovers from a live writer's work.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pidOfTempName, tempName } from '../../src/store/fs-atomic.ts';
import { isTempName } from '../../src/sync/ignore-rules.ts';

describe('tempName', () => {
  it('is unique across many names of one process and carries its pid', () => {
    const names = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const n = tempName();
      assert.equal(pidOfTempName(n), process.pid);
      names.add(n);
    }
    assert.equal(names.size, 100_000);
    for (const n of [...names].slice(0, 10)) assert.ok(isTempName(n), n);
  });

  it('keeps the prefix and suffix it is given', () => {
    const n = tempName('.pack-', '.part');
    assert.ok(n.startsWith(`.pack-${process.pid}.`) && n.endsWith('.part'), n);
    assert.equal(pidOfTempName(n, '.pack-'), process.pid);
  });
});
