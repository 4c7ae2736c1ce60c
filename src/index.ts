// hoard as a library: the one entry point of the npm package (`import * as
// hoard from 'hoard'`, package.json `exports`). Every function here is the
// one the matching CLI command runs, resolving to the object its `--json`
// prints; docs/library.md has examples and says what is stable.
//
// What is here: push, pull and status (library/sync.ts); log, diff, listRefs,
// catFile, removeRef (library/history.ts); progress events; remotes of every
// scheme (openRemote) and a hoard server's HTTP API client (connect); the
// store interfaces a Remote exposes; digests; the error classes and codes.
// An operation is one export statement; the cache commands are the `cache`
// namespace (library/cache.ts). Nothing heavy is imported here:
// bucket SDKs and the HTTP client load when a remote of their scheme opens.

export { type Digest, digestOf, isDigest, sha256 } from './core/digest.ts';
export {
  BlobNotFoundError,
  DigestMismatchError,
  ERROR_CODES,
  type ErrorCode,
  HoardError,
  isHoardError,
  NoSpaceError,
  RefConflictError,
  RefNotFoundError,
  SyncConflictError,
} from './core/errors.ts';
/** `hoard cache save|restore|list|delete`: hoard.cache.save({ remote, key, paths }), … */
export * as cache from './library/cache.ts';
export { type ConnectOptions, connect } from './library/client.ts';
export {
  type CatFileOptions,
  type CatResult,
  catFile,
  type DiffDirectoryOptions,
  type DiffOptions,
  type DiffResult,
  type DiffStat,
  type DiffVersionsOptions,
  diff,
  type ListRefsOptions,
  type ListRefsResult,
  type LogEntry,
  type LogOptions,
  type LogResult,
  listRefs,
  log,
  type RefInfo,
  type RemoveRefOptions,
  type RemoveRefResult,
  removeRef,
  type TreeDiff,
} from './library/history.ts';
export type { ProgressEvent, ProgressListener, ProgressOperation } from './library/progress-events.ts';
export type { RemoteArg } from './library/remote-arg.ts';
export {
  type PullOptions,
  type PullResult,
  type PushOptions,
  type PushResult,
  pull,
  push,
  type RemoteCallOptions,
  type StatusOptions,
  type StatusResult,
  type SyncSummary,
  status,
  type VerifyResult,
} from './library/sync.ts';
export { type OpenRemoteOptions, openRemote, type Remote } from './remote/remote.ts';
export type {
  BlobInfo,
  BlobStore,
  ByteRange,
  ByteSource,
  WriteOptions,
  WriteResult,
} from './store/blob-store.ts';
export type { RefListing, RefStore, RefValue } from './store/ref-store.ts';
