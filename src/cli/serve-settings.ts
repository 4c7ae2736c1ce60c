// The settings groups of `hoard serve`: the server's own and each feature's.
// Flags, HOARD_* variables, the config file and docs/configuration.md all
// come from this list (scripts/configuration-doc.ts writes the document; a
// test fails when it is out of date).

import type { SettingsGroup } from '../core/settings.ts';
import { gitSettings } from '../git/git-settings.ts';
import { serverSettings } from '../server/server-settings.ts';

export const SERVE_SETTINGS: readonly SettingsGroup[] = [serverSettings, gitSettings];
