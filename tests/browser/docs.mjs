// The API docs at /docs render in headless Chromium from the origin alone: Swagger UI draws the operations
// of /openapi.json, no request leaves the origin, and the page's Content-Security-Policy is never violated.
//   scripts/browser docs http://127.0.0.1:8080
import assert from 'node:assert/strict';
import { externalRequests, launch, screenshot } from './launch.mjs';

const origin = (process.argv[2] || '').replace(/\/$/, '');
if (!origin) {
    console.error('usage: scripts/browser docs <origin url>');
    process.exit(2);
}

const document = await (await fetch(`${origin}/openapi.json`)).json();
const operations = Object.values(document.paths).flatMap((item) =>
    ['get', 'put', 'post', 'delete', 'patch'].filter((method) => item[method]),
).length;

const { context, requests, close } = await launch();
try {
    const page = await context.newPage();
    const problems = [];
    page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(String(error)));
    const response = await page.goto(`${origin}/docs`, { waitUntil: 'networkidle' });
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-security-policy'], /script-src 'self';/);

    await page.waitForSelector('.opblock', { timeout: 20000 });
    // An operation with two tags (`popup` and `edge`) is drawn under each.
    const drawn = new Set(
        await page.$$eval('.opblock', (blocks) =>
            blocks.map(
                (block) =>
                    `${block.querySelector('.opblock-summary-method')?.textContent} ` +
                    `${block.querySelector('.opblock-summary-path')?.dataset.path}`,
            ),
        ),
    ).size;
    assert.equal(drawn, operations, `every operation is drawn (${drawn} of ${operations})`);
    const title = await page.locator('.info .title').innerText();
    assert.match(title, /Popup platform API/);
    for (const path of ['/v1/campaigns/popup', '/admin/v1/campaigns', '/admin/v1/message-campaigns/{id}/send']) {
        assert.ok(
            (await page.locator(`.opblock-summary-path[data-path="${path}"]`).count()) > 0,
            `${path} is drawn`,
        );
    }
    // Opening an operation shows its parameters and answers, from the document.
    await page.locator('.opblock-summary-path[data-path="/v1/campaigns/popup"]').first().click();
    await page.waitForSelector('.opblock.is-open .parameters-container');
    const opened = await page.locator('.opblock.is-open').innerText();
    for (const text of ['user_id', '204', 'impression_token', 'campaign_id']) {
        assert.ok(opened.includes(text), `the popup operation shows ${text}`);
    }
    const shot = await screenshot(page, 'docs');

    assert.deepEqual(externalRequests(requests, origin), [], 'no request leaves the origin');
    assert.deepEqual(problems, [], 'no console error and no CSP violation');
    console.log(`docs: ${drawn} operations drawn, ${requests.length} requests, all to ${origin}; screenshot ${shot}`);
} finally {
    await close();
}
