// The one error module of hoard. Every failure a user can see is a HoardError
// with a stable `code` (HOARD_E…), a human `message`, an optional `hint` that
// says what to do about it, and the underlying `cause`. HTTP status codes and
// CLI exit codes are derived from the code here, in one place, so the server,
// the CLI and the remote clients agree on what each failure means.

export type ErrorCode =
  | 'HOARD_EDIGEST_INVALID'
  | 'HOARD_EDIGEST_MISMATCH'
  | 'HOARD_EBLOB_NOT_FOUND'
  | 'HOARD_EREF_NOT_FOUND'
  | 'HOARD_EREF_NAME_INVALID'
  | 'HOARD_EREF_CONFLICT'
  | 'HOARD_EREF_TARGET_MISSING'
  | 'HOARD_EPATH_INVALID'
  | 'HOARD_ETREE_INVALID'
  | 'HOARD_ESNAPSHOT_INVALID'
  | 'HOARD_ERANGE_NOT_SATISFIABLE'
  | 'HOARD_ETOO_LARGE'
  | 'HOARD_ETRUNCATED'
  | 'HOARD_EBAD_REQUEST'
  | 'HOARD_EUNAUTHORIZED'
  | 'HOARD_EFORBIDDEN'
  | 'HOARD_EAUTH_LOCKED'
  | 'HOARD_ENO_SPACE'
  | 'HOARD_ELOCK_TIMEOUT'
  | 'HOARD_ESYNC_CONFLICT'
  | 'HOARD_EFILE_CHANGING'
  | 'HOARD_EREMOTE'
  | 'HOARD_EREMOTE_URL'
  | 'HOARD_ECONFIG'
  | 'HOARD_ELISTEN'
  | 'HOARD_EUSAGE'
  | 'HOARD_EGIT'
  | 'HOARD_EUPSTREAM_UNKNOWN'
  | 'HOARD_EARCHIVE_UNSAFE'
  | 'HOARD_EUNAVAILABLE'
  | 'HOARD_EABORTED'
  | 'HOARD_EINTERNAL'
  | 'HOARD_EPRECONDITION_REQUIRED';

/** HTTP status for each code: the server's only mapping from failure to status. */
const HTTP_STATUS: Record<ErrorCode, number> = {
  HOARD_EDIGEST_INVALID: 400,
  HOARD_EDIGEST_MISMATCH: 400,
  HOARD_EBLOB_NOT_FOUND: 404,
  HOARD_EREF_NOT_FOUND: 404,
  HOARD_EREF_NAME_INVALID: 400,
  HOARD_EREF_CONFLICT: 412,
  HOARD_EREF_TARGET_MISSING: 409,
  HOARD_EPATH_INVALID: 400,
  HOARD_ETREE_INVALID: 400,
  HOARD_ESNAPSHOT_INVALID: 400,
  HOARD_ERANGE_NOT_SATISFIABLE: 416,
  HOARD_ETOO_LARGE: 413,
  HOARD_ETRUNCATED: 400,
  HOARD_EBAD_REQUEST: 400,
  HOARD_EUNAUTHORIZED: 401,
  HOARD_EFORBIDDEN: 403,
  /** Too many invalid tokens from one address (server/auth-failures.ts); not retried automatically. */
  HOARD_EAUTH_LOCKED: 429,
  HOARD_ENO_SPACE: 507,
  HOARD_ELOCK_TIMEOUT: 503,
  HOARD_ESYNC_CONFLICT: 409,
  HOARD_EFILE_CHANGING: 409,
  HOARD_EREMOTE: 502,
  HOARD_EREMOTE_URL: 400,
  HOARD_ECONFIG: 500,
  /** `hoard serve` cannot listen on its address (in use, not local, privileged port). */
  HOARD_ELISTEN: 500,
  HOARD_EUSAGE: 400,
  HOARD_EGIT: 502,
  HOARD_EUPSTREAM_UNKNOWN: 404,
  HOARD_EARCHIVE_UNSAFE: 400,
  HOARD_EUNAVAILABLE: 503,
  HOARD_EABORTED: 499,
  HOARD_EINTERNAL: 500,
  HOARD_EPRECONDITION_REQUIRED: 428,
};

/** Every code, for tools that list or match them (`err.code` is always one of these). */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(HTTP_STATUS) as ErrorCode[]);

/**
 * Failures worth another attempt: the other side was unreachable, overloaded
 * or failed on its own (5xx other than "this request is wrong"). Retry loops
 * ask this of a HoardError instead of deciding from statuses themselves.
 */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'HOARD_EUNAVAILABLE',
  'HOARD_EREMOTE',
  'HOARD_ELOCK_TIMEOUT',
]);

/** When a response carries no HOARD_E… code of its own: status → code. */
const CODE_OF_STATUS: Record<number, ErrorCode> = {
  400: 'HOARD_EBAD_REQUEST',
  401: 'HOARD_EUNAUTHORIZED',
  403: 'HOARD_EFORBIDDEN',
  404: 'HOARD_EBLOB_NOT_FOUND',
  408: 'HOARD_EUNAVAILABLE',
  409: 'HOARD_EREF_TARGET_MISSING',
  412: 'HOARD_EREF_CONFLICT',
  413: 'HOARD_ETOO_LARGE',
  416: 'HOARD_ERANGE_NOT_SATISFIABLE',
  428: 'HOARD_EPRECONDITION_REQUIRED',
  429: 'HOARD_EUNAVAILABLE',
  503: 'HOARD_EUNAVAILABLE',
  504: 'HOARD_EUNAVAILABLE',
  507: 'HOARD_ENO_SPACE',
};

/** CLI exit codes (contract of `hoard push/pull`): 0 ok, 1 error, 2 ref not found, 3 conflict, 4 no space left. */
export const EXIT = { ok: 0, error: 1, notFound: 2, conflict: 3, noSpace: 4 } as const;

export interface HoardErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Structured details safe to show (paths, digests); never credentials. */
  details?: Record<string, unknown>;
}

export class HoardError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: HoardErrorOptions = {}) {
    super(redactSecrets(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HoardError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

export class DigestMismatchError extends HoardError {
  constructor(expected: string, actual: string, opts: HoardErrorOptions = {}) {
    super(
      'HOARD_EDIGEST_MISMATCH',
      `content does not match its digest: expected ${expected}, got ${actual}`,
      {
        hint: 'the data was corrupted or truncated in transit; nothing was stored',
        ...opts,
        details: { expected, actual, ...opts.details },
      },
    );
  }
}

export class BlobNotFoundError extends HoardError {
  constructor(digest: string, opts: HoardErrorOptions = {}) {
    super('HOARD_EBLOB_NOT_FOUND', `blob ${digest} not found`, { ...opts, details: { digest } });
  }
}

export class RefNotFoundError extends HoardError {
  constructor(name: string, opts: HoardErrorOptions = {}) {
    super('HOARD_EREF_NOT_FOUND', `ref ${name} not found`, { ...opts, details: { ref: name } });
  }
}

/** A compare-and-set lost: the ref is not at the version the writer read. */
export class RefConflictError extends HoardError {
  readonly ref: string;
  /** The version the writer read (null: it expected the ref not to exist). */
  readonly expected: string | null;

  constructor(name: string, expected: string | null, opts: HoardErrorOptions = {}) {
    super(
      'HOARD_EREF_CONFLICT',
      expected === null
        ? `ref ${name} already exists`
        : `ref ${name} changed since it was read (expected version ${expected})`,
      { hint: 'read the ref again and retry', ...opts, details: { ref: name, expected, ...opts.details } },
    );
    this.ref = name;
    this.expected = expected;
  }
}

/**
 * A push or pull met paths changed both locally and on the remote since the
 * last sync (HOARD_ESYNC_CONFLICT); nothing was written. `paths` lists them
 * all (the message shows the first few), so a tool can show or resolve them.
 */
export class SyncConflictError extends HoardError {
  readonly ref: string;
  readonly paths: readonly string[];

  constructor(ref: string, paths: readonly string[], message: string, opts: HoardErrorOptions = {}) {
    super('HOARD_ESYNC_CONFLICT', message, { ...opts, details: { ref, paths, ...opts.details } });
    this.ref = ref;
    this.paths = paths;
  }
}

const NO_SPACE_HINT =
  'nothing was stored; free space on that disk (or raise its quota). On a hoard server, ' +
  '--max-disk below the free space makes it evict old blobs before the disk fills';

/** The disk (or a quota) is full: ENOSPC/EDQUOT of a write, or a server's 507. */
export class NoSpaceError extends HoardError {
  constructor(message: string, opts: HoardErrorOptions = {}) {
    super('HOARD_ENO_SPACE', message, { hint: NO_SPACE_HINT, ...opts });
  }
}

/** ENOSPC (device full) or EDQUOT (quota exceeded) from a file system call. */
export function isNoSpaceErrno(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * `err` as a NoSpaceError naming `what` when it is ENOSPC/EDQUOT, else `err`
 * unchanged: for the catch blocks of file writes, so a full disk is never
 * reported as a truncated body or an internal error.
 */
export function noSpaceOr(err: unknown, what: string): unknown {
  if (!isNoSpaceErrno(err)) return err;
  return new NoSpaceError(`no space left on device writing ${what}`, { cause: err });
}

export function isHoardError(err: unknown, code?: ErrorCode): err is HoardError {
  return err instanceof HoardError && (code === undefined || err.code === code);
}

/** Status for any thrown value: HoardErrors carry theirs, anything else is a 500. */
export function httpStatusOf(err: unknown): number {
  return err instanceof HoardError ? err.status : 500;
}

/** Whether retrying the operation that threw `err` may succeed (a property of its code). */
export function isRetryable(err: unknown): boolean {
  return err instanceof HoardError && RETRYABLE.has(err.code);
}

/**
 * The one decoder from an HTTP error response to a HoardError: the body's
 * `{"error":{"code","message"}}` when it names a known code, else the status.
 * A server's own internal error is, to its client, a remote failure (and so
 * retryable); `what` (e.g. `GET http://host/path`) prefixes messages that
 * came without one.
 */
export function errorFromWire(status: number, body: unknown, what: string): HoardError {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const message = typeof e?.message === 'string' ? e.message : `${what}: HTTP ${status}`;
  const details = { status };
  const code =
    typeof e?.code === 'string' && Object.hasOwn(HTTP_STATUS, e.code) ? (e.code as ErrorCode) : undefined;
  const decoded =
    code && code !== 'HOARD_EINTERNAL'
      ? code
      : (CODE_OF_STATUS[status] ?? (status >= 500 ? 'HOARD_EREMOTE' : 'HOARD_EBAD_REQUEST'));
  // A full disk keeps its hint across the wire.
  if (decoded === 'HOARD_ENO_SPACE') return new NoSpaceError(message, { details });
  return new HoardError(decoded, message, { details });
}

/** Exit code for the CLI. */
export function exitCodeOf(err: unknown): number {
  if (isHoardError(err, 'HOARD_EREF_NOT_FOUND')) return EXIT.notFound;
  if (isHoardError(err, 'HOARD_ESYNC_CONFLICT') || isHoardError(err, 'HOARD_EREF_CONFLICT'))
    return EXIT.conflict;
  if (isHoardError(err, 'HOARD_ENO_SPACE')) return EXIT.noSpace;
  return EXIT.error;
}

/** Wraps an unknown failure so callers only ever see HoardErrors. */
export function toHoardError(
  err: unknown,
  code: ErrorCode = 'HOARD_EINTERNAL',
  context?: string,
): HoardError {
  if (err instanceof HoardError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new HoardError(code, context ? `${context}: ${msg}` : msg, { cause: err });
}

/**
 * Removes credentials from text that may reach a log or a user: userinfo in
 * URLs, AWS-style signatures and keys in query strings, bearer tokens, the
 * `sig` of signed URLs (Azure SAS, the Actions cache service's) and the
 * token in the path of its `/actions-cache/t/<token>/` mount.
 */
const MAY_HOLD_SECRET = /[@=]|bearer|\/t\//i;

export function redactSecrets(text: string): string {
  // Every error message passes here (a cache miss builds one): most hold none
  // of the characters a secret pattern needs, and one scan rules them out.
  if (!MAY_HOLD_SECRET.test(text)) return text;
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@')
    .replace(/(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s]+/gi, '$1***')
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, '$1***')
    .replace(/((?:access_?token|token|secret|password|sig)=)[^&\s]+/gi, '$1***')
    .replace(/(\/actions-cache\/t\/)[^/?\s]+/g, '$1***');
}
