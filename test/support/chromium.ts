// Real headless Chromium for the web console's tests and the screenshot
// script: Debian's `chromium` package (scripts/clients.sh installs it when
// missing) driven by puppeteer-core, pinned in package.json — puppeteer-core
// never downloads a browser, so nothing but the npm registry and apt is used.

import { existsSync } from 'node:fs';
import { type Browser, launch } from 'puppeteer-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** The Chromium binary, or undefined when it is not installed (tests then skip and say so). */
export function chromiumPath(): string | undefined {
  const fromEnv = process.env.HOARD_CHROMIUM;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  return CANDIDATES.find((p) => existsSync(p));
}

export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('chromium is not installed (bash scripts/clients.sh installs it)');
  const args = [
    // Headless: CI machines have no display.
    '--headless=new',
    '--disable-gpu',
    // /dev/shm is small in containers; Chromium falls back to /tmp.
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-extensions',
    '--disable-background-networking',
    '--disable-sync',
    '--metrics-recording-only',
    '--mute-audio',
  ];
  // Chromium refuses to start as root with its sandbox on (the setuid/user-namespace
  // sandbox must not run privileged), and CI containers run tests as root. The pages
  // it loads are our own server's on 127.0.0.1, so running them unsandboxed there is
  // acceptable; as any other user the sandbox stays on.
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  return launch({ executablePath, headless: true, args, timeout: 60_000, protocolTimeout: 60_000 });
}
