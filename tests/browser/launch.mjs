// Starts Debian's headless Chromium through playwright-core (never a downloaded browser), with the flags
// that keep it from reaching for the network on its own, and records every request a page makes so a test
// can assert that nothing left the machine.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Screenshots go under target/ so they are never committed.
export const SCREENSHOTS = new URL('../../target/screenshots/', import.meta.url).pathname;

export async function launch() {
    const profile = mkdtempSync(join(tmpdir(), 'popup-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1366, height: 900 },
        args: [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    });
    const requests = [];
    context.on('request', (request) => requests.push(request.url()));
    const close = async () => {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
    };
    return { context, requests, close };
}

// The requests that went anywhere but the given origin (data: and blob: URLs stay in the page).
export function externalRequests(requests, origin) {
    return requests.filter(
        (url) => !url.startsWith(origin) && !url.startsWith('data:') && !url.startsWith('blob:'),
    );
}

export async function screenshot(page, name) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const path = join(SCREENSHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    return path;
}
