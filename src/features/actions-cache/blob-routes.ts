// The signed URLs of the cache service, speaking as much of the Azure Blob
// REST API as @azure/storage-blob (what the toolkit uploads and downloads
// with) uses:
//   PUT  /actions-cache/uploads/:id?se&sig                        Put Blob (x-ms-blob-type: BlockBlob)
//   PUT  /actions-cache/uploads/:id?se&sig&comp=block&blockid=B   Put Block
//   PUT  /actions-cache/uploads/:id?se&sig&comp=blocklist         Put Block List (XML)
//   GET|HEAD /actions-cache/blobs/:hex?se&sig                     the archive; Range or x-ms-range
// The URL is the capability (signed-url.ts); no Authorization is expected.
// Errors are Azure's: an XML <Error><Code/><Message/></Error> body and the
// code in x-ms-error-code, so the SDK reports them as it would Azure's.

import type { FastifyInstance, FastifyReply } from 'fastify';
import { digestFromHex } from '../../core/digest.ts';
import { HoardError } from '../../core/errors.ts';
import { readAllBounded } from '../../core/streams.ts';
import { isRanged } from '../../server/send-content.ts';
import { rawBodies, receiveUpload } from '../upload-body.ts';
import type { ActionsCache } from './actions-cache.ts';
import { MAX_BLOCKS } from './pending-uploads.ts';
import { answerErrors } from './service-errors.ts';

/** A block list names at most 50,000 ids of up to 88 base64 characters in ~30 bytes of XML each. */
const MAX_BLOCK_LIST_BYTES = 8 * 1024 * 1024;
const X_MS_VERSION = '2025-01-05';

interface UploadParams {
  id: string;
}
interface SignedQuery {
  se?: string;
  sig?: string;
  comp?: string;
  blockid?: string;
}

const AZURE_CODE_OF_STATUS: Record<number, string> = {
  400: 'InvalidInput',
  403: 'AuthenticationFailed',
  404: 'BlobNotFound',
  409: 'OperationNotAllowedInCurrentState',
  413: 'RequestBodyTooLarge',
  416: 'InvalidRange',
  507: 'InsufficientStorage',
};

export async function blobRoutes(app: FastifyInstance, cache: ActionsCache): Promise<void> {
  const noScope = { config: { scope: 'none' as const } };

  answerErrors(app, (reply, status, message, err) => {
    const code =
      (err instanceof HoardError && typeof err.details?.azureCode === 'string' && err.details.azureCode) ||
      AZURE_CODE_OF_STATUS[status] ||
      'InternalError';
    reply
      .code(status)
      .header('x-ms-error-code', code)
      .header('x-ms-version', X_MS_VERSION)
      .type('application/xml')
      .send(
        `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`,
      );
  });

  app.register(async (raw) => {
    rawBodies(raw);
    raw.put<{ Params: UploadParams; Querystring: SignedQuery }>(
      '/actions-cache/uploads/:id',
      noScope,
      async (request, reply) => {
        const { id } = request.params;
        cache.signer.verify('upload', id, request.query);
        const u = cache.uploads.byId(id);
        const { comp } = request.query;
        const what = `Actions cache upload ${u.key}`;
        await cache.uploads.using(u, async () => {
          if (comp === undefined) {
            const type = request.headers['x-ms-blob-type'];
            if (type !== undefined && type !== 'BlockBlob')
              throw new HoardError('HOARD_EBAD_REQUEST', 'only block blobs are supported', {
                details: { azureCode: 'InvalidHeaderValue' },
              });
            await receiveUpload(request, reply, { what }, (body, size) =>
              cache.uploads.putBlob(u, body, size),
            );
          } else if (comp === 'block') {
            const blockId = request.query.blockid;
            if (typeof blockId !== 'string')
              throw new HoardError('HOARD_EBAD_REQUEST', 'blockid is required', {
                details: { azureCode: 'MissingRequiredQueryParameter' },
              });
            await receiveUpload(request, reply, { what }, (body, size) =>
              cache.uploads.putBlock(u, blockId, body, size),
            );
          } else if (comp === 'blocklist') {
            const ids = await receiveUpload(
              request,
              reply,
              { what, max: MAX_BLOCK_LIST_BYTES },
              async (body) =>
                parseBlockList((await readAllBounded(body, MAX_BLOCK_LIST_BYTES)).toString('utf8')),
            );
            cache.uploads.commitBlocks(u, ids);
          } else {
            throw new HoardError('HOARD_EBAD_REQUEST', `comp=${String(comp).slice(0, 40)} is not supported`, {
              details: { azureCode: 'UnsupportedQueryParameter' },
            });
          }
        });
        azureHeaders(reply, u.id);
        return reply.code(201).send();
      },
    );
  });

  app.route<{ Params: { hex: string }; Querystring: SignedQuery }>({
    method: ['GET', 'HEAD'],
    url: '/actions-cache/blobs/:hex',
    exposeHeadRoute: false,
    ...noScope,
    handler: async (request, reply) => {
      const { hex } = request.params;
      cache.signer.verify('download', hex, request.query);
      const digest = digestFromHex(hex);
      const xmsRange = request.headers['x-ms-range'];
      const range =
        typeof xmsRange === 'string' && request.headers.range === undefined ? xmsRange : undefined;
      const handle = await cache.openArchive(digest, range !== undefined || isRanged(request));
      if (!handle)
        throw new HoardError('HOARD_EBLOB_NOT_FOUND', 'the archive is no longer stored', {
          hint: 'the entry was evicted or expired: restore again',
        });
      azureHeaders(reply, hex);
      reply.header('x-ms-blob-type', 'BlockBlob');
      return cache.sendArchive(request, reply, digest, handle, range);
    },
  });
}

function azureHeaders(reply: FastifyReply, id: string): void {
  reply.header('x-ms-version', X_MS_VERSION);
  reply.header('x-ms-request-id', id);
  reply.header('x-ms-request-server-encrypted', 'false');
}

/** The ids of a Put Block List body, in order (Latest, Uncommitted and Committed alike: all name staged blocks here). */
export function parseBlockList(xml: string): string[] {
  const body = xml
    .replace(/^\uFEFF/, '')
    .replace(/^\s*<\?xml[^>]*\?>/, '')
    .trim();
  const m = /^<BlockList>([\s\S]*)<\/BlockList>$/.exec(body);
  if (!m) throw badList('expected <BlockList>…</BlockList>');
  const ids: string[] = [];
  const item = /\s*<(Latest|Uncommitted|Committed)>([A-Za-z0-9+/=]{1,128})<\/\1>\s*/y;
  const inner = m[1];
  let at = 0;
  while (at < inner.length) {
    item.lastIndex = at;
    const it = item.exec(inner);
    if (!it) {
      if (inner.slice(at).trim() === '') break;
      throw badList('each entry must be <Latest>, <Uncommitted> or <Committed> holding a base64 block id');
    }
    ids.push(it[2]);
    if (ids.length > MAX_BLOCKS) throw badList(`more than ${MAX_BLOCKS} blocks`);
    at = item.lastIndex;
  }
  return ids;
}

function badList(why: string): HoardError {
  return new HoardError('HOARD_EBAD_REQUEST', `invalid block list: ${why}`, {
    details: { azureCode: 'InvalidXmlDocument' },
  });
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
