// Regenerates docs/console-overview.png, the README's picture of the web
// console: a real `hoard serve` with the console tests' fixture (git
// mirrors, a synced folder, cache entries), a minute of varying blob and
// cache traffic so the charts have something to draw, then headless
// Chromium signs in and photographs the overview.
//
//   node scripts/console-screenshot.ts [--seconds 60] [--out docs/console-overview.png]
//
// Needs Debian's chromium (bash scripts/clients.sh) and the dev dependencies.

import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bearer, startConsoleFixture, TOKENS, TURBO_HASH } from '../test/features/console/fixture.ts';
import { launchChromium } from '../test/support/chromium.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    out: { type: 'string', default: join(import.meta.dirname, '..', 'docs', 'console-overview.png') },
  },
});
const seconds = Number(values.seconds);

const fx = await startConsoleFixture({ sampleInterval: '2s', args: ['--git-max-staleness', '1h'] });
try {
  // Deterministic "random" traffic: a slow wave of reads, a few misses.
  let seed = 42;
  const rand = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const t0 = Date.now();
  const get = async (url: string) => {
    const res = await fetch(url, { headers: bearer(TOKENS.read) });
    await res.arrayBuffer();
  };
  while (Date.now() - t0 < seconds * 1000) {
    const phase = (Date.now() - t0) / 1000;
    const burst = Math.round(4 + 6 * (1 + Math.sin(phase / 6)));
    const work: Promise<void>[] = [];
    for (let i = 0; i < burst; i++) {
      const r = rand();
      if (r < 0.55) work.push(get(`${fx.url}/v1/blobs/sha256/${fx.blobs[Math.floor(rand() * 3)].slice(7)}`));
      else if (r < 0.62)
        work.push(
          get(
            `${fx.url}/v1/blobs/sha256/${Math.floor(rand() * 1e9)
              .toString(16)
              .padStart(64, '0')}`,
          ),
        );
      else if (r < 0.85) work.push(get(`${fx.url}/turbo/v8/artifacts/${TURBO_HASH}?slug=acme`));
      else work.push(get(`${fx.url}/turbo/v8/artifacts/${Math.floor(rand() * 1e6).toString(16)}?slug=acme`));
    }
    await Promise.all(work);
    await new Promise((r) => setTimeout(r, 250));
  }
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
    await page.goto(`${fx.url}/ui/`);
    await page.type('input[name="token"]', TOKENS.read);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    await page.screenshot({ path: values.out as `${string}.png`, fullPage: true });
    console.log(`wrote ${values.out}`);
  } finally {
    await browser.close();
  }
} finally {
  await fx.stop();
}
