// Preloaded into a benchmarked CLI process (`node --import bench/rss-at-exit.ts`):
// writes that process's own peak RSS in KiB (not its git children's) to
// $HOARD_BENCH_RSS_FILE when it exits. /usr/bin/time's figure is the largest of
// the process and its children, which for a restore is a git mapping the pack.

import { writeFileSync } from 'node:fs';

const file = process.env.HOARD_BENCH_RSS_FILE;
if (file) process.on('exit', () => writeFileSync(file, `${process.resourceUsage().maxRSS}\n`));
