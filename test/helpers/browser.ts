/**
 * Debian's chromium driven by playwright-core, for the console's browser tests. `.ci/run`
 * installs chromium; elsewhere set CHROMIUM_PATH to a Chromium or Chrome binary.
 */
import { access } from "node:fs/promises";
import { after } from "node:test";
import { chromium } from "playwright-core";
import type { Browser } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const browsers: Browser[] = [];
after(async () => {
  for (const browser of browsers) await browser.close();
});

export async function launchBrowser(): Promise<Browser> {
  try {
    await access(CHROMIUM);
  } catch {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH`,
    );
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--no-first-run",
    ],
  });
  browsers.push(browser);
  return browser;
}
