// Command-line flags generated from settings groups (src/core/settings.ts),
// so a setting's flag, its help line and its default are never written twice.

import type { Command } from 'commander';
import { namesOf, type SettingsGroup } from '../core/settings.ts';

/** Markdown of a doc line → plain text for --help. */
function plain(doc: string): string {
  return doc.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/`([^`]*)`/g, '$1');
}

export function addSettingFlags(cmd: Command, groups: readonly SettingsGroup[]): Command {
  for (const g of groups)
    for (const [prop, s] of Object.entries(g.settings)) {
      const n = namesOf(g, prop);
      const shown = s.show(s.default);
      const help = `${g.section ? `${g.section}: ` : ''}${plain(s.doc)}${s.type === 'boolean' || shown === 'none' ? '' : ` (default ${shown})`}`;
      if (s.type === 'boolean') {
        // Both forms, so a flag can turn off what a config file or HOARD_* turned on (or
        // a default of true): commander gives the attribute no value unless one is used.
        cmd.option(n.flag, help);
        cmd.option(`--no-${n.flag.slice(2)}`, `turn off ${n.flag}`);
      } else if (s.repeatable)
        cmd.option(`${n.flag} <${s.valueName}>`, help, (v: string, prev: string[] = []) => [...prev, v]);
      else cmd.option(`${n.flag} <${s.valueName}>`, help);
    }
  return cmd;
}
