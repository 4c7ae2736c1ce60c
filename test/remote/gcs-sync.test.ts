// The sync suite (real `hoard` processes) against a gs:// remote on our GCS
// emulator; the CLI subprocesses find it through STORAGE_EMULATOR_HOST.

import { startGcsEmulator } from '../support/gcs-emulator/index.ts';
import { syncSuite } from '../sync/sync-suite.ts';
import { randomPrefix } from './s3-env.ts';

syncSuite('gs:// (emulator)', async () => {
  const emu = await startGcsEmulator({ buckets: ['hoard-test'] });
  const saved = process.env.STORAGE_EMULATOR_HOST;
  process.env.STORAGE_EMULATOR_HOST = emu.url;
  return {
    url: `gs://hoard-test/${randomPrefix('sync')}`,
    cleanup: async () => {
      if (saved === undefined) delete process.env.STORAGE_EMULATOR_HOST;
      else process.env.STORAGE_EMULATOR_HOST = saved;
      await emu.close();
    },
  };
});
