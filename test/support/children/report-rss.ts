// Preloaded with `node --import` into a CLI child whose memory a test bounds:
// at exit it prints the process's peak RSS (KiB) on stderr.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  writeSync(2, `\nhoard-test-max-rss-kib=${process.resourceUsage().maxRSS}\n`);
});
