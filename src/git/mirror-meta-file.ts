// One mirror's hoard.json (its path, when created, last fetched and last
// used): loaded once per directory, written atomically, writes in order. A
// failed write is only logged: the file feeds the warm-up order and the
// X-Hoard-Stale header, never the freshness bound.

import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { writeFileAtomic } from '../store/fs-atomic.ts';
import type { MirrorContext } from './mirror-context.ts';
import { type MirrorMeta, readMeta } from './mirror-disk.ts';
import type { RepoId } from './upstreams.ts';

export class MirrorMetaFile {
  readonly #id: RepoId;
  readonly #dir: string;
  /** Its logger is read at each use (the manager's may be set after construction). */
  readonly #ctx: Pick<MirrorContext, 'log'>;
  #meta: MirrorMeta;
  #loaded = false;
  #write: Promise<void> = Promise.resolve();
  /** Wall-clock time lastUsedAt was last written (Date.now(): it is persisted). */
  #lastUsedWritten = 0;

  constructor(id: RepoId, dir: string, ctx: Pick<MirrorContext, 'log'>) {
    this.#id = id;
    this.#dir = dir;
    this.#ctx = ctx;
    this.#meta = { path: id.path };
  }

  get meta(): Readonly<MirrorMeta> {
    return this.#meta;
  }

  /** The directory was replaced: load its hoard.json again at the next load(). */
  forget(): void {
    this.#loaded = false;
  }

  /** Loads hoard.json once per directory: the meta read, or null (already loaded, or none on disk). */
  async load(): Promise<MirrorMeta | null> {
    if (this.#loaded) return null;
    const meta = await readMeta(this.#dir);
    this.#loaded = true;
    if (meta) this.#meta = { ...meta, path: this.#meta.path ?? meta.path };
    return meta;
  }

  /** The mirror was just created with `meta` in its hoard.json. */
  created(meta: MirrorMeta): void {
    this.#meta = meta;
    this.#loaded = true;
    this.#lastUsedWritten = Date.now();
  }

  write(patch: Partial<MirrorMeta>): Promise<void> {
    this.#meta = { ...this.#meta, ...patch };
    const snapshot = { ...this.#meta };
    this.#write = this.#write.then(async () => {
      try {
        await writeFileAtomic(join(this.#dir, 'hoard.json'), `${JSON.stringify(snapshot)}\n`, this.#dir);
      } catch (err) {
        this.#ctx.log.debug(
          { repo: this.#id.key, err: (err as Error).message },
          'git: could not write hoard.json',
        );
      }
    });
    return this.#write;
  }

  /** Records a use (persisted lastUsedAt orders the warm-up), at most once per interval. */
  touch(): void {
    const now = Date.now();
    if (now - this.#lastUsedWritten < DEFAULTS.gitLastUsedWriteIntervalMs) return;
    this.#lastUsedWritten = now;
    void this.write({ lastUsedAt: now });
  }
}
