// Memory RefStore: for tests and single-process use. Versions are a counter
// per store, never reused, so a deleted-and-recreated ref gets a new version.

import type { Digest } from '../core/digest.ts';
import { RefConflictError, RefNotFoundError } from '../core/errors.ts';
import { validateRefName, validateRefPrefix } from '../core/ref-name.ts';
import type { RefListing, RefStore, RefValue } from './ref-store.ts';

export class MemoryRefStore implements RefStore {
  readonly description = 'memory';
  #refs = new Map<string, RefValue>();
  #counter = 0;

  async get(name: string): Promise<RefValue | undefined> {
    return this.#refs.get(validateRefName(name));
  }

  async set(name: string, target: Digest, expected: string | null): Promise<RefValue> {
    const cur = this.#refs.get(validateRefName(name));
    if ((cur?.version ?? null) !== expected) throw new RefConflictError(name, expected);
    const value = { target, version: String(++this.#counter) };
    this.#refs.set(name, value);
    return value;
  }

  async delete(name: string, expected: string): Promise<void> {
    const cur = this.#refs.get(validateRefName(name));
    if (!cur) throw new RefNotFoundError(name);
    if (cur.version !== expected) throw new RefConflictError(name, expected);
    this.#refs.delete(name);
  }

  async *list(prefix = ''): AsyncIterable<RefListing> {
    validateRefPrefix(prefix);
    const names = [...this.#refs.keys()].filter((n) => n.startsWith(prefix)).sort();
    for (const name of names) {
      const v = this.#refs.get(name);
      if (v) yield { name, ...v };
    }
  }
}
