// What the snapshot service (snapshot-service.ts) needs from the rest of the
// server: the mirrors (MirrorManager implements SnapshotMirrors) and a
// logger. Declared apart so the service's parts depend on these shapes only.

/** What the snapshot service needs from the mirror manager (MirrorManager implements it). */
export interface SnapshotMirrors {
  /** Resolves a ref (default: the upstream's HEAD branch) after the freshness check. */
  resolveRef(
    path: string,
    ref?: string,
  ): Promise<{ key: string; dir: string; ref: string; commit: string; staleSeconds: number | null }>;
  /** The mirror of `path` (cloned if needed), without a freshness check. */
  open(
    path: string,
    opts: { refs: boolean },
  ): Promise<{ key: string; dir: string; staleSeconds: number | null }>;
  /** Of `ids`, those still missing after a fetch. */
  ensureObjects(path: string, ids: string[]): Promise<string[]>;
  /**
   * Subscribes to moves of the default branch (MirrorManager.onDefaultBranchMoved);
   * returns the unsubscribe function. Without it, no background generation.
   */
  onDefaultBranchMoved?(
    listener: (ev: { key: string; path: string; dir: string; to: string }) => void,
  ): () => void;
  /**
   * Subscribes to fetches, the mirror's creation included (MirrorManager.onFetched):
   * `after` is HEAD's commit after it. Without it, no anchor prebuilding.
   */
  onFetched?(listener: (ev: { key: string; dir: string; after?: string | null }) => void): () => void;
}

type LogFn = (obj: object | string, msg?: string) => void;
export interface SnapshotLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
}

export const silentSnapshotLogger: SnapshotLogger = { debug() {}, info() {}, warn() {} };
