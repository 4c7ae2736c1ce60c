// The console's refs pages: a page of refs under a prefix, each with its
// kind (sync, cache, git snapshot, other blob: read from the small record it
// names), and one ref's view — a sync ref's version, history and one folder
// of its tree (sync/history.ts, the tree codec, tree-folder.ts), a cache
// entry's record and expiry, a blob's size.
//
// Bounds: pages of at most REFS_PAGE_MAX, histories of HISTORY_LIMIT, trees
// read with a smaller bound than the CLI's (CONSOLE_MAX_TREE_BYTES), and at
// most two heavy reads (history, trees) at once across all console users, so
// the console cannot be used to make the server hold large trees in memory
// many times over.

import type { Digest } from '../../core/digest.ts';
import { decodeEntry, MAX_ENTRY_BYTES } from '../../core/entry-record.ts';
import { HoardError, isHoardError, RefNotFoundError } from '../../core/errors.ts';
import { mapLimit, Semaphore } from '../../core/pool.ts';
import { validateRefName, validateRefPrefix } from '../../core/ref-name.ts';
import { decodeSnapshot, MAX_SNAPSHOT_BYTES } from '../../core/snapshot-record.ts';
import { readAllBounded } from '../../core/streams.ts';
import { decodeTree, type Tree } from '../../core/tree.ts';
import type { Remote } from '../../remote/remote.ts';
import type { FeatureContext } from '../../server/feature.ts';
import { log, resolveVersion } from '../../sync/history.ts';
import { iso, type RefKind, type RefPage, type RefView } from './console-views.ts';
import { folder, normalizeDir } from './tree-folder.ts';

/** Trees the console decodes are at most this large (the CLI allows more: it runs on the user's machine). */
export const CONSOLE_MAX_TREE_BYTES = 64 * 1024 * 1024;
export const REFS_PAGE_DEFAULT = 100;
export const REFS_PAGE_MAX = 1000;
export const HISTORY_LIMIT = 50;

export class ConsoleRefs {
  readonly #ctx: FeatureContext;
  /** The server's own stores as a Remote, for sync/history.ts. */
  readonly #remote: Remote;
  readonly #heavy = new Semaphore(2);

  constructor(ctx: FeatureContext) {
    this.#ctx = ctx;
    this.#remote = { url: 'this server', blobs: ctx.blobs, refs: ctx.refs, close: async () => {} };
  }

  /** A page of refs under `prefix`; `visible` drops the ones the asker may not see (before paging). */
  async refs(
    prefix: string,
    after: string,
    limit: number,
    visible: (name: string) => boolean = () => true,
  ): Promise<RefPage> {
    validateRefPrefix(prefix);
    if (after !== '') validateRefName(after);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > REFS_PAGE_MAX)
      throw new HoardError('HOARD_EBAD_REQUEST', `limit must be between 1 and ${REFS_PAGE_MAX}`);
    const page: { name: string; target: Digest }[] = [];
    let more = false;
    for await (const r of this.#ctx.refs.list(prefix)) {
      if (after !== '' && r.name <= after) continue;
      if (!visible(r.name)) continue;
      if (page.length === limit) {
        more = true;
        break;
      }
      page.push({ name: r.name, target: r.target });
    }
    const refs = await mapLimit(page, 8, async (r) => ({ ...r, kind: await this.#kindOf(r.name, r.target) }));
    return {
      prefix,
      after: after || null,
      limit,
      refs,
      next: more ? (page.at(-1)?.name ?? null) : null,
    };
  }

  /** Sync ref (a snapshot record), cache ref (an entry record), git snapshot, or any other blob. */
  async #kindOf(name: string, target: Digest): Promise<RefKind> {
    if (name.startsWith('git-snapshots/')) return 'snapshot';
    const bytes = await this.#small(target, Math.max(MAX_SNAPSHOT_BYTES, MAX_ENTRY_BYTES));
    if (!bytes) return 'blob';
    try {
      if (decodeEntry(bytes)) return 'cache';
    } catch {
      return 'blob';
    }
    try {
      decodeSnapshot(bytes);
      return 'sync';
    } catch {
      return 'blob';
    }
  }

  /** A blob's bytes when it is at most `limit` long; undefined when larger or absent. */
  async #small(digest: Digest, limit: number): Promise<Buffer | undefined> {
    const st = await this.#ctx.blobs.stat(digest).catch(() => undefined);
    if (!st || st.size > limit) return undefined;
    try {
      return await readAllBounded(await this.#ctx.blobs.read(digest), limit);
    } catch (err) {
      if (isHoardError(err)) return undefined;
      throw err;
    }
  }

  async ref(name: string, version: string, path: string): Promise<RefView> {
    validateRefName(name);
    const cur = await this.#ctx.refs.get(name);
    if (!cur) throw new RefNotFoundError(name);
    const kind = await this.#kindOf(name, cur.target);
    const view: RefView = { name, target: cur.target, kind };
    if (kind === 'sync') view.sync = await this.#heavy.run(() => this.#sync(name, version, path));
    else if (kind === 'cache') {
      const bytes = await this.#small(cur.target, MAX_ENTRY_BYTES);
      const entry = bytes ? decodeEntry(bytes) : undefined;
      if (entry) {
        const expiry = this.#ctx.ctx.refExpiry;
        const used = expiry?.isCacheRef(name) ? expiry.lastUsed(name) : undefined;
        view.cache = {
          blob: entry.blob,
          size: entry.size,
          meta: entry.meta,
          lastUsedAt: iso(used),
          expiresAt: used !== undefined && expiry ? iso(used + expiry.opts.ttlMs) : null,
        };
      }
    } else {
      const st = await this.#ctx.blobs.stat(cur.target).catch(() => undefined);
      view.blob = { size: st?.size ?? null };
    }
    return view;
  }

  async #sync(name: string, version: string, path: string): Promise<NonNullable<RefView['sync']>> {
    const dir = normalizeDir(path);
    const history = await log({ remote: this.#remote, ref: name, limit: HISTORY_LIMIT });
    const v = await resolveVersion(this.#remote, name, version === '' ? undefined : version);
    const tree = await this.#tree(v.record.tree);
    const { entries, truncated } = folder(tree, dir);
    if (dir !== '' && entries.length === 0)
      throw new HoardError('HOARD_EBAD_REQUEST', `no folder ${JSON.stringify(dir)} in this version`, {
        details: { path: dir },
      });
    const rec = v.record;
    return {
      version: {
        snapshot: v.snapshot,
        tree: rec.tree,
        createdAt: rec.createdAt,
        ...(rec.meta.message !== undefined ? { message: rec.meta.message } : {}),
        ...(rec.meta.user !== undefined ? { user: rec.meta.user } : {}),
        ...(rec.meta.host !== undefined ? { host: rec.meta.host } : {}),
      },
      history: history.entries,
      more: history.more,
      path: dir,
      entries,
      truncated,
    };
  }

  async #tree(digest: Digest): Promise<Tree> {
    const st = await this.#ctx.blobs.stat(digest);
    if (!st) throw new HoardError('HOARD_EBLOB_NOT_FOUND', `tree ${digest} is not stored`);
    if (st.size > CONSOLE_MAX_TREE_BYTES)
      throw new HoardError(
        'HOARD_ETOO_LARGE',
        `tree ${digest} is too large to list here (${st.size} bytes)`,
        {
          hint: 'use `hoard ls-tree` or `hoard pull` from a client',
        },
      );
    return decodeTree(await readAllBounded(await this.#ctx.blobs.read(digest), CONSOLE_MAX_TREE_BYTES));
  }
}
