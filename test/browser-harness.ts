/**
 * Shared plumbing for the browser tests and bench/browser.ts: builds the explorer page, serves it on
 * 127.0.0.1 (ephemeral port) and drives Debian's chromium through playwright-core with WebGPU on
 * (SwiftShader in headless mode). Never downloads a browser.
 */
import { existsSync } from 'node:fs';
import { type Browser, type Page, chromium } from 'playwright-core';
import { buildDemo, startDemoServer } from '../scripts/demo.mjs';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** The chromium binary: $DLG_CHROMIUM, else Debian's /usr/bin/chromium. */
export function chromiumPath(): string {
  const p = process.env.DLG_CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(p)) {
    throw new Error(`chromium not found at ${p}: install it (Debian: apt-get install chromium; .ci/run does) or set DLG_CHROMIUM`);
  }
  return p;
}

export interface DemoSession {
  browser: Browser;
  url: string;
  /** Console errors and page errors seen so far (all pages). */
  problems: string[];
  newPage(opts?: { noWebGpu?: boolean; viewport?: { width: number; height: number } }): Promise<Page>;
  close(): Promise<void>;
}

export async function startDemoSession(): Promise<DemoSession> {
  await buildDemo();
  const server = await startDemoServer({ port: 0, host: '127.0.0.1' });
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
  } catch (err) {
    await server.close();
    throw err;
  }
  const problems: string[] = [];
  return {
    browser,
    url: server.url,
    problems,
    async newPage(opts = {}) {
      const page = await browser.newPage({ viewport: opts.viewport ?? { width: 1400, height: 900 } });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
      });
      if (opts.noWebGpu) {
        // What a browser without WebGPU looks like to the page.
        await page.addInitScript(() => {
          Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
        });
      }
      await page.goto(server.url);
      return page;
    },
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

/** Waits for the page's first render (window.__dlgTest.ready); rejects with the page's own error. */
export async function pageReady(page: Page, timeoutMs = 60_000): Promise<void> {
  await page.waitForFunction(() => (window as unknown as { __dlgTest?: unknown }).__dlgTest !== undefined, undefined, { timeout: timeoutMs });
  await page.evaluate(() => (window as unknown as { __dlgTest: { ready: Promise<void> } }).__dlgTest.ready);
}

/** Decodes a base64 little-endian float32 array (what __dlgTest.field() returns). */
export function decodeF32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
