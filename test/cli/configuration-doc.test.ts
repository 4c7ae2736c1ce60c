// docs/configuration.md's settings tables are generated from the schema;
// this fails when someone changes a setting and not the document.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SERVE_SETTINGS } from '../../src/cli/serve-features.ts';
import { renderSettingsDoc, spliceSettingsDoc } from '../../src/core/settings.ts';

test('docs/configuration.md matches the settings schema (run node scripts/configuration-doc.ts)', () => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(spliceSettingsDoc(doc, renderSettingsDoc(SERVE_SETTINGS)), doc);
});
