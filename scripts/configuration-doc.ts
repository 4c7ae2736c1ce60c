// Writes the generated settings tables of docs/configuration.md from the
// schema (src/cli/serve-features.ts). `node scripts/configuration-doc.ts`
// after changing a setting; test/cli/configuration-doc.test.ts fails until then.

import { readFileSync, writeFileSync } from 'node:fs';
import { SERVE_SETTINGS } from '../src/cli/serve-features.ts';
import { renderSettingsDoc, spliceSettingsDoc } from '../src/core/settings.ts';

const path = new URL('../docs/configuration.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = spliceSettingsDoc(before, renderSettingsDoc(SERVE_SETTINGS));
if (after !== before) writeFileSync(path, after);
process.stdout.write(
  after === before ? 'docs/configuration.md is up to date\n' : 'docs/configuration.md updated\n',
);
