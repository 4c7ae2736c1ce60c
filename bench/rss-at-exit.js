// Preloaded into a benchmarked CLI process (`node --import bench/rss-at-exit.js`):
// writes that process's own peak RSS in KiB (not its git children's) to
// $HOARD_BENCH_RSS_FILE when it exits. /usr/bin/time's figure is the largest of
// the process and its children, which for a restore is a git mapping the pack.
// JavaScript, not TypeScript: a .ts preload loads before the CLI enables its
// compile cache, so Node's type stripper (≈ 20 MiB) would be loaded into the
// process measured and counted in its RSS (it was, up to 2026-12-06).

import { writeFileSync } from 'node:fs';

const file = process.env.HOARD_BENCH_RSS_FILE;
if (file) process.on('exit', () => writeFileSync(file, `${process.resourceUsage().maxRSS}\n`));
