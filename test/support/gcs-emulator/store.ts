// In-memory bucket/object state of the GCS emulator (a test fixture), with the
// GCS rules that code under test relies on: generations, metagenerations,
// preconditions (ifGenerationMatch=0 as "must not exist") and the object
// resource JSON. Only the live generation of an object is kept (no versioning).

import { objectHashes } from './hashes.ts';
import { badRequest, conditionNotMet, notFoundBucket, notFoundObject, notModified } from './http.ts';

/** Object fields a client may set on upload or PATCH. */
const WRITABLE_FIELDS = [
  'contentType',
  'contentEncoding',
  'contentDisposition',
  'contentLanguage',
  'cacheControl',
  'customTime',
] as const;
type WritableField = (typeof WRITABLE_FIELDS)[number];

export interface ObjectMeta extends Partial<Record<WritableField, string>> {
  /** User metadata (`metadata` in the JSON API): string values only. */
  metadata?: Record<string, string>;
}

export interface StoredObject {
  bucket: string;
  name: string;
  data: Buffer;
  generation: number;
  metageneration: number;
  meta: ObjectMeta;
  crc32c: string;
  md5Hash: string;
  timeCreated: string;
  updated: string;
}

export interface BucketRecord {
  name: string;
  timeCreated: string;
  objects: Map<string, StoredObject>;
}

export interface Preconditions {
  ifGenerationMatch?: number;
  ifGenerationNotMatch?: number;
  ifMetagenerationMatch?: number;
  ifMetagenerationNotMatch?: number;
}

// GCS generations are microsecond timestamps. A module-wide counter keeps them
// strictly increasing even within one microsecond and across emulator instances
// (so a generation from one test can never accidentally match in another).
let lastGeneration = 0;
function nextGeneration(): number {
  lastGeneration = Math.max(lastGeneration + 1, Date.now() * 1000);
  return lastGeneration;
}

function parseIntParam(q: URLSearchParams, key: string): number | undefined {
  const raw = q.get(key);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw)) throw badRequest(`Invalid value for ${key}: ${raw}`);
  return Number(raw);
}

export function parsePreconditions(q: URLSearchParams): Preconditions {
  return {
    ifGenerationMatch: parseIntParam(q, 'ifGenerationMatch'),
    ifGenerationNotMatch: parseIntParam(q, 'ifGenerationNotMatch'),
    ifMetagenerationMatch: parseIntParam(q, 'ifMetagenerationMatch'),
    ifMetagenerationNotMatch: parseIntParam(q, 'ifMetagenerationNotMatch'),
  };
}

/**
 * Throws unless `p` holds for `obj` (undefined = no live object, generation 0).
 * Reads answer a failed *NotMatch with 304 as GCS does; everything else is 412.
 */
export function checkPreconditions(obj: StoredObject | undefined, p: Preconditions, isRead: boolean): void {
  const generation = obj?.generation ?? 0;
  if (p.ifGenerationMatch !== undefined && p.ifGenerationMatch !== generation) throw conditionNotMet();
  if (p.ifMetagenerationMatch !== undefined && p.ifMetagenerationMatch !== obj?.metageneration) {
    throw conditionNotMet();
  }
  const notMatchFailed =
    (p.ifGenerationNotMatch !== undefined && p.ifGenerationNotMatch === generation) ||
    (p.ifMetagenerationNotMatch !== undefined &&
      obj !== undefined &&
      p.ifMetagenerationNotMatch === obj.metageneration);
  if (notMatchFailed) throw isRead ? notModified() : conditionNotMet();
}

/** Picks the writable fields out of a client-supplied object resource. */
export function metaFromResource(resource: Record<string, unknown>): ObjectMeta {
  const meta: ObjectMeta = {};
  for (const field of WRITABLE_FIELDS) {
    const value = resource[field];
    if (typeof value === 'string') meta[field] = value;
  }
  if (resource.metadata !== undefined && resource.metadata !== null) {
    meta.metadata = mergeUserMetadata({}, resource.metadata);
  }
  return meta;
}

/** PATCH semantics for user metadata: keys set to null are removed. */
function mergeUserMetadata(base: Record<string, string>, patch: unknown): Record<string, string> {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
    throw badRequest('Invalid value for metadata: must be an object.');
  }
  const out = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = String(v);
  }
  return out;
}

/** Request counters, so tests can assert how often the code under test hit GCS. */
export interface Stats {
  /** Successful (200/206) media downloads. */
  mediaDownloads: number;
  /** Objects written through an upload endpoint (media, multipart, resumable). */
  uploads: number;
}

export class Store {
  readonly buckets = new Map<string, BucketRecord>();

  createBucket(name: string): BucketRecord {
    const now = new Date().toISOString();
    const bucket: BucketRecord = { name, timeCreated: now, objects: new Map() };
    this.buckets.set(name, bucket);
    return bucket;
  }

  bucket(name: string): BucketRecord {
    const bucket = this.buckets.get(name);
    if (!bucket) throw notFoundBucket();
    return bucket;
  }

  /**
   * The live object for a read/PATCH/DELETE: 404 when missing (before any
   * precondition, as GCS does) or when `generation` names another generation.
   */
  getObject(bucketName: string, name: string, q: URLSearchParams, isRead: boolean): StoredObject {
    const obj = this.bucket(bucketName).objects.get(name);
    const generation = parseIntParam(q, 'generation');
    if (!obj || (generation !== undefined && generation !== obj.generation)) {
      throw notFoundObject(bucketName, name);
    }
    checkPreconditions(obj, parsePreconditions(q), isRead);
    return obj;
  }

  /**
   * Writes a new generation of an object. Preconditions are checked here, in
   * the same synchronous step as the write, so concurrent conditional uploads
   * cannot both succeed. `expected` holds checksums the client declared (object
   * metadata or X-Goog-Hash); GCS rejects the upload if they do not match.
   */
  commit(
    bucketName: string,
    name: string,
    data: Buffer,
    meta: ObjectMeta,
    pre: Preconditions,
    expected: { crc32c?: string; md5Hash?: string } = {},
  ): StoredObject {
    validateObjectName(name);
    const bucket = this.bucket(bucketName);
    const existing = bucket.objects.get(name);
    checkPreconditions(existing, pre, false);
    const hashes = objectHashes(data);
    if (expected.crc32c !== undefined && expected.crc32c !== hashes.crc32c) {
      throw badRequest(
        `Provided CRC32C "${expected.crc32c}" doesn't match calculated CRC32C "${hashes.crc32c}".`,
      );
    }
    if (expected.md5Hash !== undefined && expected.md5Hash !== hashes.md5Hash) {
      throw badRequest(
        `Provided MD5 hash "${expected.md5Hash}" doesn't match calculated MD5 hash "${hashes.md5Hash}".`,
      );
    }
    const now = new Date().toISOString();
    const obj: StoredObject = {
      bucket: bucketName,
      name,
      data,
      generation: nextGeneration(),
      metageneration: 1,
      meta: { ...meta, contentType: meta.contentType ?? 'application/octet-stream' },
      ...hashes,
      timeCreated: now,
      updated: now,
    };
    bucket.objects.set(name, obj);
    return obj;
  }

  patch(obj: StoredObject, resource: Record<string, unknown>): void {
    for (const field of WRITABLE_FIELDS) {
      if (!(field in resource)) continue;
      const value = resource[field];
      if (value === null) delete obj.meta[field];
      else if (typeof value === 'string') obj.meta[field] = value;
      else throw badRequest(`Invalid value for ${field}.`);
    }
    if ('metadata' in resource) {
      if (resource.metadata === null) delete obj.meta.metadata;
      else obj.meta.metadata = mergeUserMetadata(obj.meta.metadata ?? {}, resource.metadata);
    }
    obj.meta.contentType ??= 'application/octet-stream';
    obj.metageneration++;
    obj.updated = new Date().toISOString();
  }
}

function validateObjectName(name: string): void {
  if (name.length === 0) throw badRequest('Required parameter: name');
  if (Buffer.byteLength(name) > 1024) throw badRequest('The object name is too long.');
  if (name === '.' || name === '..' || /[\r\n]/.test(name)) throw badRequest(`Invalid object name: ${name}`);
}

export function bucketResource(bucket: BucketRecord): Record<string, unknown> {
  return {
    kind: 'storage#bucket',
    id: bucket.name,
    name: bucket.name,
    projectNumber: '0',
    metageneration: '1',
    location: 'US',
    locationType: 'multi-region',
    storageClass: 'STANDARD',
    etag: 'CAE=',
    timeCreated: bucket.timeCreated,
    updated: bucket.timeCreated,
  };
}

/** The JSON-API object resource; numbers are strings as in GCS (int64 fields). */
export function objectResource(obj: StoredObject, baseUrl: string): Record<string, unknown> {
  const path = `b/${obj.bucket}/o/${encodeURIComponent(obj.name)}`;
  return {
    kind: 'storage#object',
    id: `${obj.bucket}/${obj.name}/${obj.generation}`,
    selfLink: `${baseUrl}/storage/v1/${path}`,
    mediaLink: `${baseUrl}/download/storage/v1/${path}?generation=${obj.generation}&alt=media`,
    name: obj.name,
    bucket: obj.bucket,
    generation: String(obj.generation),
    metageneration: String(obj.metageneration),
    ...obj.meta,
    storageClass: 'STANDARD',
    size: String(obj.data.length),
    md5Hash: obj.md5Hash,
    crc32c: obj.crc32c,
    etag: objectEtag(obj),
    timeCreated: obj.timeCreated,
    updated: obj.updated,
    timeStorageClassUpdated: obj.timeCreated,
  };
}

/** Changes with every generation and metageneration, like GCS's etag. */
export function objectEtag(obj: StoredObject): string {
  return Buffer.from(`${obj.generation}/${obj.metageneration}`).toString('base64');
}
