// The GitHub Actions cache service's settings (`[actions-cache]` table,
// `--actions-cache-*` flags, HOARD_ACTIONS_CACHE_* variables), declared once
// and kept apart from the feature so defining the CLI's flags loads nothing heavy.

import { defineSettings, setting, type ValuesOf } from '../../core/settings.ts';

export const actionsCacheSettings = defineSettings('actions-cache', 'GitHub Actions cache service', {
  secret: setting.optionalString({
    valueName: 'SECRET',
    doc: 'HMAC key of the signed upload/download URLs the service hands out (at least 32 characters); servers behind one load balancer must share it. Default: a random key per process (URLs die with a restart). Prefer the variable or the config file to the flag (flags show in `ps`)',
  }),
  urlTtlMs: setting.duration({
    key: 'url-ttl',
    default: 60 * 60_000,
    positive: true,
    doc: 'how long a signed upload or download URL stays valid',
  }),
  uploadIdleMs: setting.duration({
    key: 'upload-idle',
    default: 15 * 60_000,
    positive: true,
    doc: 'a reserved upload that receives nothing for this long is dropped and its spooled blocks deleted',
  }),
  maxSpoolBytes: setting.size({
    key: 'max-spool',
    default: 32 * 1024 ** 3,
    doc: 'bytes of all uploads in progress together, spooled under `<data>/tmp/actions-cache/` (outside `--max-disk`); beyond it an upload is refused with 507',
  }),
  maxPendingUploads: setting.integer({
    key: 'max-pending-uploads',
    default: 32,
    min: 1,
    doc: 'reserved, not yet finalized uploads per token (beyond it a reservation is refused with 429)',
  }),
});

export type ActionsCacheSettingsValues = ValuesOf<(typeof actionsCacheSettings)['settings']>;
