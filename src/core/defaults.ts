// Every tunable of hoard, named and documented in one place. Modules import
// these instead of writing numbers inline; flags and config files override
// them (see docs/configuration.md). Sizes are bytes, durations milliseconds.

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const DEFAULTS = {
  // ---- stores -----------------------------------------------------------
  /** Read/write buffer size for streaming file I/O. */
  streamChunkBytes: 256 * KiB,
  /** Memory tier bound (LRU by bytes). */
  memoryTierBytes: 256 * MiB,
  /** Blobs larger than this never enter the memory tier (they would evict everything). */
  memoryTierMaxBlobBytes: 8 * MiB,
  /**
   * Chunk size of blob responses streamed from the server's disk. A slow
   * client pins about two chunks (one read ahead, one in the socket's
   * buffer), so 200 stalled readers cost ~25 MiB, not their blobs' sizes.
   */
  serveChunkBytes: 64 * KiB,
  /** Disk files the server remembers as verified (digest → file identity, ~200 bytes each); a forgotten one is hashed again on its next read. */
  trustedDiskFiles: 100_000,
  /** Per server process (the primary, each read worker): bytes of small verified disk blobs kept for reads re-validated by one stat (server/hot-blobs.ts). */
  hotBlobBytes: 8 * MiB,
  /** A temp file whose writer process is gone is removed on open; one older than this is removed even if its pid was reused. */
  staleTempMs: 24 * 60 * 60 * 1000,
  /** How long a filesystem ref lock is waited for before failing with HOARD_ELOCK_TIMEOUT. */
  refLockTimeoutMs: 10_000,
  /** A lock file older than this whose owner cannot be checked is considered abandoned. */
  refLockStaleMs: 30_000,

  // ---- transfers --------------------------------------------------------
  /** Parallel blob uploads/downloads of one push or pull. */
  transferConcurrency: 8,
  /** Parallel file hashing during a scan. */
  hashConcurrency: 4,
  /** Digests per "which blobs are missing" question. */
  missingBatchSize: 1000,
  /**
   * Batched reads (POST /v1/blobs/batch): a pull or cache restore fetches
   * files up to `blobBatchFileBytes` this way, in requests of at most
   * `blobBatchDigests` blobs and `blobBatchBytes` bytes, `blobBatchConcurrency`
   * requests in flight. One request per few hundred small files instead of
   * one each: the per-request cost (a round trip, a tier lookup, a response
   * head) is what dominates a folder of many small files.
   */
  blobBatchFileBytes: 256 * KiB,
  blobBatchDigests: 256,
  blobBatchBytes: 4 * MiB,
  blobBatchConcurrency: 4,
  /**
   * Batched uploads (POST /v1/blobs/batch-upload): requests of at most this
   * many blobs and bytes (within the server's 1,000 records and 64 MiB),
   * `blobBatchConcurrency` in flight. Bigger than the reads' batches because
   * the server settles durability once per request (one fsync per shard
   * folder it touched): 1,000 blobs share ~250 folder fsyncs where 256 blobs
   * need ~160.
   */
  blobUploadDigests: 1000,
  blobUploadBytes: 8 * MiB,
  /** Retries of one remote operation on transient failures (5xx, 429, timeouts, resets). */
  remoteRetries: 5,
  /** First backoff delay; doubles each retry, with full jitter. */
  remoteBackoffBaseMs: 100,
  /** Backoff ceiling. */
  remoteBackoffMaxMs: 5_000,
  /** Per-request timeout of remote calls (headers must arrive within this). */
  remoteRequestTimeoutMs: 60_000,
  /** Times a push re-reads the ref and merges again after losing a compare-and-set race. */
  pushCasRetries: 20,
  /**
   * Backoff before such a retry (full jitter, doubling from this base). Without
   * it, a writer that is slower per round than a busy neighbour can lose every
   * race in a row: the jitter lets it in.
   */
  pushCasBackoffBaseMs: 20,
  /** Backoff ceiling between compare-and-set retries of a push. */
  pushCasBackoffMaxMs: 2_000,

  // ---- sync (push/pull also use transferConcurrency, hashConcurrency, pushCasRetries) --
  /**
   * A stat-cache entry whose mtime or ctime is this close to the moment it was
   * observed is "racy" (the file could change again within the same timestamp
   * tick without changing its stat) and is re-hashed on the next scan.
   */
  syncRacyWindowMs: 100,
  /** Racy window on file systems with whole-second timestamps (ns part always 0). */
  syncRacyWindowCoarseMs: 2_000,
  /** Largest tree blob a pull or push accepts from a remote. */
  syncMaxTreeBytes: 512 * MiB,
  /**
   * Longest a streamed tree decode (gc marking, fsck reachability) runs on the
   * event loop before it yields with setImmediate: requests wait at most about
   * this long behind a tree of any size.
   */
  treeDecodeSliceMs: 10,
  /** fsync every file written by pull before renaming it into place (durability over speed). */
  syncFsyncFiles: true,
  /**
   * Files up to this size are read whole into one reused buffer with
   * synchronous calls, hashed once, and (push to a store that batches, e.g.
   * file://) stored from that same buffer; larger files are streamed.
   */
  syncSmallFileBytes: 1 * MiB,
  /** Small-file writes of one push or pull whose fsync is still in flight (bounds descriptors, not memory). */
  syncFsyncInFlight: 64,
  /**
   * A push to a file:// remote from the CLI makes its batch durable with
   * syncfs(2) (src/store/sync-filesystem.ts) instead of one fsync per blob:
   * a syncfs starts once this many temp files (or syncFsRoundBytes) wait
   * for one, and their links follow it.
   */
  syncFsRoundFiles: 4096,
  /** A batch's first blobs are fsynced one by one; syncfs rounds start after this many (a small push stays cheap). */
  syncFsMinBlobs: 128,
  syncFsRoundBytes: 32 * MiB,
  /** Temp files of one batch waiting for a syncfs at most: add() waits beyond it (bounds the tmp folder). */
  syncFsMaxUnsyncedFiles: 32_768,
  /**
   * The server's small-blob journal (src/store/blob-journal.ts): a segment is
   * sealed and checkpointed (its blobs' files and folders fsynced, then the
   * segment deleted) once it holds this many bytes, or once no blob was
   * journaled for journalIdleCheckpointMs. Bounds the journal on disk and
   * what a restart after a crash replays.
   */
  journalSegmentBytes: 64 * MiB,
  journalIdleCheckpointMs: 2000,
  /** Files fsynced at once by a checkpoint (in the thread pool, beside the journal's own fdatasyncs). */
  journalCheckpointInFlight: 2,

  /**
   * Times a push starts over (scan again, hash again) when a file changed
   * between being hashed and being uploaded; after that the file is
   * HOARD_EFILE_CHANGING, or left out with --skip-changing.
   */
  pushChangingRetries: 3,
  /** Reads of one file a scan tries before calling it "changing" (stat moved during the read). */
  hashChangingAttempts: 5,
  /** Milliseconds between plain progress lines when stderr is not a terminal (CI logs). */
  progressPlainIntervalMs: 5_000,
  /**
   * Time constant of the smoothed transfer rate behind progress ETAs (an
   * exponentially weighted moving average over time): a burst or a stall
   * shorter than this moves the ETA only a little.
   */
  progressRateTauMs: 5_000,

  /** Most snapshot records `hoard log`, `--at` and `R~N` walk through one history (a bound on reads, not a history limit). */
  historyMaxWalk: 100_000,

  // ---- object storage ---------------------------------------------------
  /** Blobs at or above this size are uploaded with multipart (S3) or resumable (GCS) uploads. */
  multipartThresholdBytes: 32 * MiB,
  /**
   * Part size of multipart uploads. Memory per upload is about
   * max(multipartThresholdBytes, partSize × (partConcurrency + 1)): 40 MiB
   * (see docs/benchmarks.md, "S3 large blob").
   */
  multipartPartBytes: 8 * MiB,
  /** Parts of one multipart upload in flight. */
  multipartConcurrency: 4,
  /**
   * An S3 transfer or a restore's download asks V8 for a young-generation GC
   * after this many bytes (core/gc-nudge.ts): the socket and file chunks it
   * leaves behind are otherwise freed only tens of MB later (docs/benchmarks.md,
   * "S3 large blob"). A scavenge costs well under a millisecond, so every 2 MiB
   * (was 8: 5 MiB less of a restore's peak RSS). 0 turns it off.
   */
  transferGcEveryBytes: 2 * MiB,
  /** Parallel HEADs when answering "which are missing" against a bucket. */
  bucketHeadConcurrency: 16,
  /** Above this many digests, list shard prefixes instead of HEADing each one. */
  bucketListThreshold: 2_000,
  /** What one LIST page costs in HEADs (AWS and GCS prices: $0.005 vs $0.0004 per 1000); steers listing vs HEADs. */
  bucketListCostInHeads: 12,
  /** A blob write of at least this declared size (or unknown size) HEADs first; smaller ones rely on the conditional PUT alone. */
  bucketHeadBeforeWriteBytes: 1 * MiB,

  // ---- server -----------------------------------------------------------
  listen: '127.0.0.1:7777',
  dataDir: './.hoard-data',
  /** Largest blob accepted by PUT. */
  maxBlobBytes: 8 * GiB,
  /** Most digests accepted by one POST /v1/blobs/missing. */
  missingMaxBatch: 10_000,
  /** Most digests accepted by one POST /v1/blobs/batch. */
  blobBatchMaxDigests: 1000,
  /**
   * Most blob bytes one POST /v1/blobs/batch response carries; blobs past it
   * are answered "not sent" (the client fetches them alone). Fits the
   * frame's 32-bit lengths.
   */
  blobBatchMaxBytes: 64 * MiB,
  /**
   * Largest blob one record of POST /v1/blobs/batch-upload may carry: the
   * server gathers a record in memory to verify it before storing it, so
   * this bounds that memory per request (bigger blobs go by PUT).
   */
  blobUploadRecordMaxBytes: 1 * MiB,
  /** Disk tier bound; 0 means unbounded. */
  maxDiskBytes: 0,
  /** How long SIGTERM waits for in-flight requests before exiting. */
  drainTimeoutMs: 30_000,
  /** An idle kept-alive connection is closed after this (longer than common load balancers' 60 s idle timeout, so they close first). */
  keepAliveTimeoutMs: 65_000,
  /** The request line and headers must all arrive within this, or the server answers 408 and closes (before authentication: a client that sends nothing holds nothing for long). */
  headersTimeoutMs: 20_000,
  /** While a request body is arriving, a connection that receives nothing for this long is closed. Inactivity, not total time: a slow but progressing upload is never cut. */
  bodyIdleTimeoutMs: 60_000,
  /** Most connections at once; further ones are closed as they are accepted. The default (--max-connections 0, auto) is the smaller of this and the descriptor limit minus connectionFdReserve. */
  maxConnections: 10_000,
  /** Descriptors kept free of connections by the automatic --max-connections: max(this, a quarter of the limit), for blob files, git child pipes and shared-tier sockets. */
  connectionFdReserve: 64,
  /** After an error answer to an upload whose body is still arriving (disk full, too large), the rest is read and discarded at most this long, so the client reads the answer rather than a reset; then the connection is closed. */
  uploadErrorLingerMs: 5_000,
  /** Upper bound on the period of Node's header-timeout check (a quarter of --headers-timeout is used when smaller), so the timeout is enforced promptly. */
  connectionsCheckIntervalMs: 1_000,
  /** Largest JSON request body (refs, POST /v1/blobs/missing). */
  maxJsonBodyBytes: 4 * MiB,
  /** Most refs returned by one GET /v1/refs page. */
  refListMaxPage: 10_000,
  /** A ranged cold read also starts a background fill of the whole blob into the disk tier. */
  fillOnRangeRead: true,
  /** A ranged read follows an in-progress fill when its start is at most this far past the bytes already filled; farther ranges go to the shared tier directly. */
  fillFollowWindowBytes: 8 * MiB,
  /** After SIGTERM, /readyz answers 503 this long before the listener closes, so load balancers stop sending new requests. */
  drainDelayMs: 1_000,
  /** Server log level (pino): fatal, error, warn, info, debug, trace, silent. */
  logLevel: 'info',
  /** Unreferenced blobs used or written more recently than this are never garbage-collected (a push uploads blobs before it moves its ref). */
  gcGraceMs: 60 * 60_000,
  /** Invalid tokens one client address may present per window before it is locked out (server/auth-failures.ts). */
  authFailureLimit: 60,
  /** The failed-token window, and how long a lockout lasts. */
  authFailureWindowMs: 60_000,
  /** How often the disk tier's LRU index is saved (it is also saved at shutdown). */
  indexSaveIntervalMs: 30_000,
  /** A write that cannot fit under --max-disk while other writes are in progress waits this long for them before going ahead (cache) or failing with 507 (authoritative). */
  diskReserveWaitMs: 10_000,
  /** Ref-name prefixes (comma-separated) of cache refs, which may expire when unused (see cacheRefTtlMs). */
  cacheRefPrefixes: 'cache/',
  /** Cache refs unused (no GET or PUT) this long are deleted; 0 = never. */
  cacheRefTtlMs: 0,
  /**
   * Background scrub of the disk tier: bytes re-hashed per second (0 = off).
   * 16 MiB/s is about 1.4 TiB a day, a few % of one disk's bandwidth and of a core.
   */
  scrubBytesPerSecond: 16 * MiB,
  /** The first scrub pass starts this long after start-up (out of the way of start-up work). */
  scrubStartDelayMs: 5 * 60_000,
  /** Pause between the end of one scrub pass and the start of the next. */
  scrubPassPauseMs: 60 * 60_000,

  // ---- git --------------------------------------------------------------
  /**
   * Whether `/git/<host>/<path>` of a host no `--git-upstream` maps is mirrored
   * from `https://<host>/<path>`. Off: only configured upstreams are reachable
   * (anything else is 404), so clients cannot point the server at internal hosts.
   */
  gitImplicitUpstreams: false,
  /** Mirrors copy every upstream ref (refs/pull/* included) instead of branches and tags only. */
  gitMirrorPullRefs: false,
  /**
   * Hosts the implicit mapping never reaches, whatever the allow patterns say
   * (IP literals are refused too). Configured deny patterns are added to these.
   */
  gitImplicitDenyHosts: [
    'localhost',
    '*.localhost',
    '*.local',
    '*.internal',
    '*.lan',
    '*.home.arpa',
  ] as readonly string[],
  /**
   * Upstream fetches one mirror may start, per window, because a request
   * wanted objects it lacks (a commit just pushed upstream, or a random id from
   * anyone). Requests arriving while a fetch is in flight join it; beyond the
   * budget the objects are reported missing without contacting the upstream.
   */
  gitUnknownObjectFetchesPerWindow: 3,
  /** The window of gitUnknownObjectFetchesPerWindow. */
  gitUnknownObjectFetchWindowMs: 60_000,
  /** A ref advertisement is never older than this. */
  gitMaxStalenessMs: 10_000,
  /** An upstream fetch taking longer is abandoned and the mirror served as is (stale). */
  gitFetchTimeoutMs: 30_000,
  /** Timeout for any git child process. */
  gitProcessTimeoutMs: 10 * 60_000,
  /** Mirrors warmed in parallel after start-up. */
  gitWarmConcurrency: 4,
  /** Period of mirror maintenance (geometric repack, commit-graph) of mirrors fetched since the last run; 0 disables. */
  gitMaintenanceIntervalMs: 60 * 60_000,
  /** pack.threads of maintenance repacks (bounds CPU and memory). */
  gitMaintenanceThreads: 1,
  /** pack.windowMemory of maintenance repacks (git size syntax). */
  gitMaintenanceWindowMemory: '256m',
  /** pack.deltaCacheSize of maintenance repacks (git size syntax). */
  gitMaintenanceDeltaCacheSize: '64m',
  /** A mirror's last-used time (warm-up order) is persisted at most this often. */
  gitLastUsedWriteIntervalMs: 60_000,
  /** Bytes of an upload-pack request read to find its `want` lines before streaming the rest. */
  gitRequestHeadMaxBytes: 1 * MiB,
  /** How often a fetch also checks whether the upstream's default branch (HEAD) changed (one extra round trip). */
  gitHeadCheckIntervalMs: 60 * 60_000,
  /** A mirror served stale (upstream down) logs one warning per this interval; the rest are debug (all are counted). */
  gitStaleWarnIntervalMs: 60_000,
  /** Snapshot regeneration after a fetch moves the default branch waits this long for quiet. */
  snapshotDebounceMs: 5_000,
  /** zstd level of snapshots (part of the deterministic format: changing it changes bytes). */
  snapshotZstdLevel: 3,
  /** Snapshot generations running at once per server (each runs a single-threaded `git pack-objects`). */
  snapshotGenerateConcurrency: 2,
  /**
   * First-parent commits per snapshot anchor pack (src/git/snapshot-anchor.ts):
   * the history's pack is rebuilt once per this many commits, not per commit.
   * Part of the deterministic format: servers sharing a bucket must agree.
   */
  snapshotAnchorStep: 512,
  /**
   * First-parent commits per sub-anchor pack between the anchor and the commit
   * (src/git/snapshot-anchor.ts), so the pack built per commit covers fewer than
   * this many commits. Part of the deterministic format too.
   */
  snapshotSubAnchorStep: 64,
  /**
   * Build a mirror's anchor pack (src/git/snapshot-anchor.ts) in the background when
   * the mirror is created and when a fetch moves its default branch, so the first
   * snapshot request of a repository does not pay the full delta search.
   */
  snapshotPrebuildAnchors: true,
  /** Parallel range downloads of `hoard git restore`. */
  restoreConcurrency: 4,
  /**
   * Range size of `hoard git restore`: each of the restoreConcurrency ranges
   * in flight has one reused buffer of this size, so it is most of the
   * download's memory (8 MiB ranges were 24 MiB more peak RSS; issue 16).
   */
  restoreRangeBytes: 2 * MiB,
  /** Per-range timeout of `hoard git restore`. */
  restoreRangeTimeoutMs: 60_000,
  /**
   * `hoard git restore` refuses an archive whose tar stream is larger than
   * this many times the archive (a zstd bomb), but always allows
   * restoreMinUnpackedBytes and never more than restoreMaxUnpackedBytes.
   * Source trees compress 3–10×, packs not at all.
   */
  restoreMaxExpansionRatio: 100,
  /** Uncompressed bytes a restore always allows, whatever the ratio (small archives of many empty files). */
  restoreMinUnpackedBytes: 64 * MiB,
  /** Absolute cap on the uncompressed size of a restored snapshot. */
  restoreMaxUnpackedBytes: 64 * GiB,
  /** Most tar entries (files, directories, links, extended headers) a restored snapshot may have. */
  restoreMaxEntries: 4_000_000,
} as const;

export const UNITS = { KiB, MiB, GiB } as const;

// The value syntaxes (sizes, durations) are the settings schema's: one parser each.
export { parseDuration, parseSize } from './settings.ts';
