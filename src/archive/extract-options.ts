// What a caller of the safe extractor (safe-extract.ts) passes and gets
// back, in a module of its own so the extractor's parts (tar-entry-writer.ts,
// extract-path-checks.ts) and its callers share these types without a cycle.

export interface ExtractOptions {
  signal?: AbortSignal;
  /**
   * Set each entry's mtime from the archive (default true). False leaves the
   * time of extraction, like `git clone`, and saves a system call per file.
   */
  mtimes?: boolean;
  /**
   * Also set directories' mtimes from the archive (default: as `mtimes`).
   * One `utimes` by path per directory after the last entry; false leaves
   * them at the time of extraction, as `git clone` does (restore: git never
   * looks at a directory's mtime).
   */
  directoryMtimes?: boolean;
  /** Called after each entry with the running count of body bytes written. */
  onProgress?: (bytesWritten: number) => void;
  /** Refuse (HOARD_ETOO_LARGE) once the uncompressed tar stream exceeds this many bytes. */
  maxBytes?: number;
  /** Refuse (HOARD_ETOO_LARGE) once the archive has more headers than this. */
  maxEntries?: number;
  /**
   * Decides each entry (name already validated) before it is written:
   * 'extract', 'skip' (not written; its body is dropped), or throw to refuse.
   */
  policy?: (entry: EntryInfo) => 'extract' | 'skip';
  /**
   * Sees what is written, as it is written (restore derives the git index
   * from it instead of re-reading every file): each regular file's body
   * pieces, then its descriptor before it is closed; symlinks, hard links
   * and directories after they are made. Pieces are views of reused buffers,
   * valid only during the call.
   */
  recorder?: ExtractRecorder;
  /**
   * Decode zstd with zlib's stream instead of the synchronous decoder: the
   * path a Node without the decoder's internals takes (zstd-decoder.ts).
   * Tests set it so that path is checked on this Node too.
   */
  zstdStream?: boolean;
}

/** Observer of an extraction (see ExtractOptions.recorder); names are validated relative paths. */
export interface ExtractRecorder {
  fileStart(name: string, size: number): void;
  fileData(piece: Buffer): void;
  /** The body is complete (and its mtime set); `fd` is still open. */
  fileEnd(fd: number): void;
  symlink(name: string, target: string, path: string): void;
  hardlink(name: string, linkname: string): void;
  directory(name: string): void;
}

/** What a policy sees of an entry. */
export interface EntryInfo {
  /** Validated relative path, no trailing slash. */
  name: string;
  type: string;
  /** Permission bits (mode & 0o777). */
  mode: number;
  size: number;
  /** Symlink target, or the validated path a hard link points at. */
  linkname: string;
}

export interface ExtractResult {
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  /** Total bytes of file bodies written. */
  bytes: number;
}
