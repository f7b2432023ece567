// The campaign editor in headless Chromium against a real origin (the debug binary `cargo build -p
// popup-origin` makes, or POPUP_ORIGIN_BIN) on its own database and a free port, with the machine's Redis:
// sign in; create a campaign, see a field error appear while typing, fix it, see the preview per variant,
// save; activate with the confirmation. Nothing may leave the machine. Screenshots: target/screenshots/.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';

import { externalRequests, launch } from './launch.mjs';
import { activateInTheEditor, createCampaignInTheEditor } from './editor-steps.mjs';

const root = new URL('../../', import.meta.url).pathname;
const bin = process.env.POPUP_ORIGIN_BIN || `${root}target/debug/popup-origin`;
const server = (process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres').replace(/\/[^/]*$/, '');
const database = `popup_browser_editor_${process.pid}`;
const email = 'editor@bank.example';
const password = 'a password for the browser test';

function freePort() {
    return new Promise((resolve) => {
        const probe = createServer().listen(0, '127.0.0.1', () => {
            const { port } = probe.address();
            probe.close(() => resolve(port));
        });
    });
}

const psql = (sql) => execFileSync('psql', [`${server}/postgres`, '-qc', sql], { stdio: 'inherit' });

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const env = {
    ...process.env,
    DATABASE_URL: `${server}/${database}`,
    POPUP_LISTEN: `127.0.0.1:${port}`,
    POPUP_TOKEN_SECRET: 'browser-test-token-secret-of-32-bytes-at-least',
    POPUP_KEY_PREFIX: `browser-editor-${process.pid}`,
    POPUP_UI_INSECURE_COOKIES: 'true',
    POPUP_PERSON_PASSWORD: password,
};
psql(`CREATE DATABASE ${database}`);
let origin;
const browser = await launch();
try {
    execFileSync(bin, ['migrate'], { env, stdio: 'inherit' });
    execFileSync(bin, ['person', 'add', '--email', email, '--name', 'Edi Editor', '--role', 'editor'], { env });
    origin = spawn(bin, ['serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    for (let tries = 0; ; tries += 1) {
        const up = await fetch(`${base}/ui/signin`).then((r) => r.ok, () => false);
        if (up) break;
        assert.ok(tries < 100, 'the origin did not start');
        await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const page = await browser.context.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(String(error)));
    page.on('console', (message) => {
        // A failed load is reported by the response listener, with its URL.
        if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
            problems.push(message.text());
        }
    });
    page.on('response', (response) => {
        if (response.status() >= 400 && !response.url().endsWith('/favicon.ico')) {
            problems.push(`${response.status()} ${response.url()}`);
        }
    });

    // Sign in.
    await page.goto(`${base}/ui/signin`);
    await page.fill('[name="email"]', email);
    await page.fill('[name="password"]', password);
    await Promise.all([page.waitForURL(`${base}/ui/campaigns`), page.click('button[type="submit"]')]);

    const id = await createCampaignInTheEditor(page, base, browser.requests);
    await activateInTheEditor(page, base, id);

    assert.deepEqual(externalRequests(browser.requests, base), [], 'nothing left the machine');
    assert.deepEqual(problems, [], 'no script error, no failed request');
    console.log(`editor: campaign ${id} created, previewed and activated in Chromium`);
} finally {
    await browser.close();
    if (origin) origin.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
}
