// The shapes of the console's data: what /v1/status… returns as JSON and
// what the pages (console-pages.ts) render, one per page, gathered by
// console-overview.ts, console-mirrors.ts, console-refs.ts and
// console-blobs.ts (composed by console-data.ts).

import type { Digest } from '../../core/digest.ts';
import type { TierUsage } from '../../store/tier-usage.ts';
import type { LogEntry } from '../../sync/history.ts';
import type { FeatureCounts, Point } from './console-sampler.ts';

export interface TierReport extends TierUsage {
  hits: number;
  misses: number;
  /** Where the figures come from: the tier's own accounting, or a bounded walk (`truncated` when cut). */
  source: 'accounting' | 'scan';
  truncated?: boolean;
}

export interface FeatureReport extends FeatureCounts {
  name: string;
  /** Averaged over the last minute of samples; null before the first sample. */
  requestsPerSecond: number | null;
  /** hits / (hits + misses) since start; null without reads. */
  hitRate: number | null;
}

export interface MirrorReport {
  key: string;
  upstream: string | null;
  cloned: boolean;
  lastFetchAt: string | null;
  ageSeconds: number | null;
  maxStalenessSeconds: number;
  fresh: boolean;
  fetching: boolean;
  staleServes: number;
  clonesServed: number;
  fetchErrors: number;
  lastError: { at: string; message: string } | null;
  sizeBytes: number | null;
  snapshot: {
    commit: string;
    digest: Digest;
    size: number;
    generatedAt: string;
    url: string;
    stableUrl: string;
  } | null;
}

export interface Overview {
  version: string;
  startedAt: string;
  uptimeSeconds: number;
  tiers: {
    memory: TierReport;
    disk: TierReport;
    shared: { description: string; hits: number; misses: number } | null;
  };
  features: FeatureReport[];
  upstreams: {
    git: { mirrors: number; fresh: number; stale: number; failing: number } | null;
    /** The npm registry cache's upstream: documents served stale (upstream down), tarballs refused. */
    npm: { staleServes: number; integrityFailures: number } | null;
  };
  series: { intervalSeconds: number; points: Point[] };
}

export interface RefSummary {
  name: string;
  target: Digest;
  kind: RefKind;
}

export type RefKind = 'sync' | 'cache' | 'snapshot' | 'blob';

export interface RefPage {
  prefix: string;
  after: string | null;
  limit: number;
  refs: RefSummary[];
  /** The `after` of the next page; null on the last. */
  next: string | null;
}

export interface FolderEntry {
  name: string;
  path: string;
  kind: 'dir' | 'file' | 'exec' | 'symlink';
  size: number;
  digest?: Digest;
  /** Directories: files below. */
  files?: number;
  target?: string;
}

export interface RefView {
  name: string;
  target: Digest;
  kind: RefKind;
  sync?: {
    version: {
      snapshot: Digest;
      tree: Digest;
      createdAt: string;
      message?: string;
      user?: string;
      host?: string;
    };
    history: LogEntry[];
    more: boolean;
    path: string;
    entries: FolderEntry[];
    /** More entries than FOLDER_MAX_ENTRIES. */
    truncated: boolean;
  };
  cache?: {
    blob: Digest;
    size: number;
    meta: Record<string, string>;
    lastUsedAt: string | null;
    expiresAt: string | null;
  };
  blob?: { size: number | null };
}

export interface BlobsView {
  largest: { memory: BlobRow[]; disk: BlobRow[] };
  mostRead: (BlobRow & { reads: number })[];
  lookup: {
    digest: Digest;
    size: number | null;
    memory: boolean;
    disk: boolean;
    shared: boolean | null;
  } | null;
}

export interface BlobRow {
  digest: Digest;
  size: number | null;
}

/** A time in ms since the epoch as ISO 8601; null when there is none. */
export const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString();
