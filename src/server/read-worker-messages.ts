// The messages between a server's primary process (read-workers.ts) and its
// read workers (read-worker.ts), over the IPC channel of child_process.fork
// ('advanced' serialization: Buffers and Sets pass as they are).

import type { Digest } from '../core/digest.ts';
import type { TokenEntry } from './auth.ts';
import type { ConnectionLimits } from './connection-limits.ts';

/** primary → worker, once: everything the worker needs (it reads no settings itself). */
export interface WorkerStart {
  type: 'start';
  /** 1-based, for logs and the x-hoard-worker header. */
  index: number;
  host: string;
  port: number;
  dataDir: string;
  /** The primary's worker socket, and the secret its requests must carry. */
  socketPath: string;
  secret: string;
  tokens: TokenEntry[] | undefined;
  publicRead: boolean;
  authFailureLimit: number;
  authFailureWindowMs: number;
  /** Lockout keys in force now (a restarted worker starts with them). */
  locked: string[];
  logLevel: string;
  limits: ConnectionLimits;
  drainTimeoutMs: number;
  statsIntervalMs: number;
}

export type ToWorker =
  | WorkerStart
  /** An address got locked out on the primary: forward its requests from now on. */
  | { type: 'lockout'; key: string }
  /** Stop accepting, finish what is in flight (closing the rest after drainTimeoutMs), exit. */
  | { type: 'close' };

/** Requests a worker answered, per (method, route, status), since its last report. */
export interface WorkerRequestStats {
  method: string;
  route: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  seconds: number[];
}

export interface WorkerStats {
  type: 'stats';
  requests: WorkerRequestStats[];
  /** Disk-tier reads served, per blob: metrics, the most-read tally, LRU recency of --max-disk. */
  hits: [Digest, number][];
  /** Large files that did not hash to their name while streamed: the primary checks (quarantines) them. */
  corrupt: Digest[];
}

export type FromWorker =
  | { type: 'listening' }
  | { type: 'failed'; message: string; code: string | undefined }
  | WorkerStats;
