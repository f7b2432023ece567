// The backoffice in a real browser (scripts/browser-dashboard starts the origin it runs against):
// named steps, each with its screenshot under target/screenshots/dashboard-<step>.png. More steps are
// added to STEPS in the order they run.
//   node tests/browser/dashboard.mjs <origin-url>
// with DASHBOARD_ADMIN_PASSWORD, DASHBOARD_EDITOR_PASSWORD and DASHBOARD_ADMIN_KEY in the environment.
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, screenshot, externalRequests } from './launch.mjs';
import { activateInTheEditor, createCampaignInTheEditor, typeInIndonesian } from './editor-steps.mjs';

const ORIGIN = process.argv[2];
const ADMIN = { email: 'admin@browser.example', password: process.env.DASHBOARD_ADMIN_PASSWORD };
const EDITOR = { email: 'editor@browser.example', password: process.env.DASHBOARD_EDITOR_PASSWORD };
const KEY = process.env.DASHBOARD_ADMIN_KEY;
assert.ok(ORIGIN && ADMIN.password && EDITOR.password && KEY, 'usage: dashboard.mjs <origin> (and the environment)');

async function admin(method, path, body) {
    const response = await fetch(ORIGIN + path, {
        method,
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
}

async function signIn(page, who) {
    await page.goto(`${ORIGIN}/ui/`);
    assert.match(page.url(), /\/ui\/signin/);
    await page.fill('input[name=email]', who.email);
    await page.fill('input[name=password]', who.password);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/ui\/campaigns/);
}

const state = {};

const STEPS = [
    ['sign-in', async ({ page }) => {
        await page.goto(`${ORIGIN}/ui/campaigns`);
        await page.waitForURL(/\/ui\/signin/);
        await screenshot(page, 'dashboard-sign-in');
        await page.fill('input[name=email]', ADMIN.email);
        await page.fill('input[name=password]', 'not the password');
        await page.click('button[type=submit]');
        assert.match(await page.textContent('#signin-error'), /Wrong email or password/);
        await signIn(page, ADMIN);
        assert.match(await page.textContent('.who'), /Ani Admin/);
    }],
    ['campaigns', async ({ page }) => {
        await page.goto(`${ORIGIN}/ui/campaigns`);
        await screenshot(page, 'dashboard-campaigns');
    }],
    ['segment-upload', async ({ page }) => {
        const dir = mkdtempSync(join(tmpdir(), 'popup-segment-'));
        const file = join(dir, 'vip.csv');
        const ids = ['customer_id'];
        for (let i = 0; i < 100000; i++) ids.push(`cust-${String(i).padStart(6, '0')}`);
        writeFileSync(file, ids.join('\n') + '\n');
        await page.goto(`${ORIGIN}/ui/segments`);
        assert.match(await page.textContent('.empty'), /No segments yet/);
        await page.fill('#segment-upload input[name=name]', 'vip');
        await page.setInputFiles('#segment-upload input[type=file]', file);
        // Record what the progress bar shows while the file goes up.
        await page.evaluate(() => {
            window.progressSeen = [];
            const bar = document.getElementById('upload-progress');
            const record = () => window.progressSeen.push([bar.value, bar.max, bar.closest('.progress-line').hidden]);
            const timer = setInterval(record, 5);
            window.stopRecording = () => { clearInterval(timer); record(); };
        });
        await page.click('#segment-upload button[type=submit]');
        await page.waitForSelector('#upload-ok', { timeout: 60000 });
        const seen = await page.evaluate(() => { window.stopRecording(); return window.progressSeen; });
        const visible = seen.filter(([, , hidden]) => !hidden);
        assert.ok(visible.length > 0, 'the progress bar was shown');
        const [value, max] = visible[visible.length - 1];
        assert.ok(max > 1000000 && value === max, `the bar reached the file's size: ${value}/${max}`);
        assert.match(await page.textContent('#upload-ok'), /Segment vip now has 100000 members/);
        await page.waitForFunction(() => document.querySelector('#segment-table')?.textContent.includes('100000'));
        await screenshot(page, 'dashboard-segments');
    }],
    ['simulator', async ({ page }) => {
        state.vip = await admin('POST', '/admin/v1/campaigns', {
            name: 'VIP Platinum card', priority: 10, schedule: { start: '2020-01-01T00:00:00Z' },
            creative: { title: 'Platinum for you', body: 'Zero annual fee in the first year.' },
            audience: { include: { any_of: ['vip'] } },
        });
        await admin('POST', `/admin/v1/campaigns/${state.vip.id}/activate`);
        state.everyone = await admin('POST', '/admin/v1/campaigns', {
            name: 'Savings week', priority: 1, schedule: { start: '2020-01-01T00:00:00Z' },
            creative: { title: 'Save more this week', body: 'Bonus interest on new deposits.' },
        });
        await admin('POST', `/admin/v1/campaigns/${state.everyone.id}/activate`);
        await page.goto(`${ORIGIN}/ui/simulator`);
        await page.fill('input[name=user_id]', 'cust-000042');
        await page.click('#simulator-form button[type=submit]');
        assert.match(await page.textContent('#simulator-shown'), /VIP Platinum card/);
        assert.match(await page.textContent('#simulator-others'), /A campaign of higher priority is shown instead/);
        await screenshot(page, 'dashboard-simulator-member');
        await page.fill('input[name=user_id]', 'someone-else');
        await page.click('#simulator-form button[type=submit]');
        assert.match(await page.textContent('#simulator-shown'), /Savings week/);
        assert.match(await page.textContent('#simulator-others'), /The customer is not in the segments it targets/);
        await screenshot(page, 'dashboard-simulator-non-member');
    }],
    ['stats', async ({ page }) => {
        for (let i = 0; i < 40; i++) {
            const user = `cust-${String(i).padStart(6, '0')}`;
            const popup = await (await fetch(`${ORIGIN}/v1/campaigns/popup?user_id=${user}`)).json();
            const event = (kind) => fetch(`${ORIGIN}/v1/campaigns/${popup.campaign_id}/${kind}`, {
                method: 'POST', headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ user_id: user, impression_token: popup.impression_token }),
            });
            assert.equal((await event('impression')).status, 202);
            if (i % 4 === 0) assert.equal((await event('click')).status, 202);
        }
        // The origin's ingest worker moves the events into Postgres within moments.
        let totals = '';
        for (let attempt = 0; attempt < 50 && !totals.includes('40'); attempt++) {
            await page.goto(`${ORIGIN}/ui/stats?campaign=${state.vip.id}&metric=impressions`);
            totals = (await page.$('#stats-totals')) ? await page.textContent('#stats-totals') : '';
            if (!totals.includes('40')) await page.waitForTimeout(200);
        }
        assert.match(totals, /default\s*40\s*40\s*10\s*25\.0%/);
        await page.waitForSelector('#stats-chart canvas');
        await screenshot(page, 'dashboard-stats');
    }],
    ['settings', async ({ page }) => {
        await page.goto(`${ORIGIN}/ui/settings`);
        await page.fill('input[name=max_popups_per_day]', '3');
        await page.click('#daily-cap button[type=submit]');
        assert.match(await page.textContent('#settings-notice'), /daily cap is saved/);
        assert.match(await page.textContent('#audit'), /max_popups_per_day: 3/);
        assert.ok(await page.$('#people'));
        assert.ok(await page.$('#api-keys'));
        await screenshot(page, 'dashboard-settings');
    }],
    ['messaging-customers', async ({ page }) => {
        const dir = mkdtempSync(join(tmpdir(), 'popup-customers-'));
        const bad = join(dir, 'bad.csv');
        writeFileSync(bad, 'phone,external_id,first_name\n+6281200000001,cif-b1,Ani\n0812,cif-b2,Budi\n');
        await page.goto(`${ORIGIN}/ui/messaging/customers`);
        assert.match(await page.textContent('.empty'), /No customers yet/);
        await page.setInputFiles('#customer-import input[type=file]', bad);
        await page.click('#customer-import button[type=submit]');
        await page.waitForSelector('#import-error');
        assert.match(await page.textContent('#import-error'), /1 rows need fixing; nothing was imported\.[\s\S]*line 3: phone/);
        const good = join(dir, 'good.csv');
        writeFileSync(good, 'phone,external_id,first_name,location\n+6281200000001,cif-b1,Ani,Jakarta\n'
            + '+6281200000002,cif-b2,Budi,Bandung\n+6281200000003,cif-b3,,Medan\n');
        await page.setInputFiles('#customer-import input[type=file]', good);
        await page.click('#customer-import button[type=submit]');
        await page.waitForSelector('#import-ok');
        assert.match(await page.textContent('#import-ok'), /3 customers added, 0 updated/);
        await page.waitForFunction(() => document.querySelector('#customer-table')?.textContent.includes('cif-b3'));
        assert.equal(await page.$eval('#import-progress', (bar) => bar.value === bar.max && bar.max > 0), true);
        await screenshot(page, 'dashboard-customers');
    }],
    ['messaging-send-and-deliver', async ({ page }) => {
        await page.goto(`${ORIGIN}/ui/messaging`);
        await page.fill('#new-message-campaign input[name=name]', 'Kartu Platinum');
        await page.fill('#message-template', 'Hai {first_name|Nasabah}, kartu Platinum menunggu Anda di {location|cabang terdekat}.');
        await page.fill('#sample-customer', 'cif-b1');
        await page.waitForFunction(() => document.querySelector('#sample-text')?.textContent.includes('Hai Ani'));
        assert.match(await page.textContent('#sample-text'), /Hai Ani, kartu Platinum menunggu Anda di Jakarta\./);
        await page.fill('#sample-customer', 'cif-b3');
        await page.waitForFunction(() => document.querySelector('#sample-text')?.textContent.includes('Hai Nasabah'));
        await screenshot(page, 'dashboard-messaging-new');
        await page.click('#new-message-campaign button[type=submit]');
        await page.waitForSelector('#message-campaigns tr[data-campaign]');
        const customers = await admin('GET', '/admin/v1/customers?page_size=100');
        const ids = customers.data.map((c) => c.id).join(', ');
        const row = page.locator('#message-campaigns tr[data-campaign]').first();
        await row.locator('select[name=to]').selectOption('customers');
        await row.locator('input[name=recipients]').fill(ids);
        page.once('dialog', (dialog) => dialog.accept());
        await row.locator('button[type=submit]').click();
        await page.waitForSelector('#messaging-notice');
        assert.match(await page.textContent('#messaging-notice'), /3 messages are queued for delivery/);
        // The messenger (mock provider) delivers them; the table refreshes itself until none is in flight.
        await page.waitForFunction(() => {
            const table = document.querySelector('#message-campaigns-table');
            return table && table.textContent.includes('3 of 3') && !table.getAttribute('hx-trigger').includes('every');
        }, null, { timeout: 30000 });
        const cells = await page.locator('#message-campaigns tr[data-campaign]').first().locator('td').allTextContents();
        assert.equal(cells[3].trim(), 'Sent', `the campaign is sent: ${cells}`);
        assert.equal(cells[5].trim(), '3', 'three messages delivered');
        await screenshot(page, 'dashboard-messaging-delivered');
        await page.goto(`${ORIGIN}/ui/messaging/dead`);
        assert.match(await page.textContent('.empty'), /No dead letters/);
        await screenshot(page, 'dashboard-dead-letters');
    }],
    ['editor-cannot-manage-people-or-keys', async ({ context }) => {
        const page = await context.newPage();
        await context.clearCookies();
        await signIn(page, EDITOR);
        await page.goto(`${ORIGIN}/ui/settings`);
        assert.equal(await page.$('#people'), null);
        assert.equal(await page.$('#api-keys'), null);
        assert.match(await page.textContent('h1'), /Pengaturan/, 'the editor reads Indonesian');
        const forged = await page.evaluate(async () => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const response = await fetch('/ui/settings/keys', {
                method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
                body: new URLSearchParams({ csrf, name: 'stolen', role: 'admin' }),
            });
            return response.status;
        });
        assert.equal(forged, 403);
        await screenshot(page, 'dashboard-settings-editor');
        await page.close();
    }],
    // Last, so the campaign it activates changes no earlier step's popup.
    ['editor-create-campaign', async ({ context }) => {
        await context.clearCookies();
        state.editorPage = await context.newPage();
        await signIn(state.editorPage, ADMIN);
        state.editorCampaign = await createCampaignInTheEditor(state.editorPage, ORIGIN, requests);
    }],
    ['editor-activate', async () => {
        await activateInTheEditor(state.editorPage, ORIGIN, state.editorCampaign);
        await state.editorPage.close();
    }],
    ['editor-typing-in-indonesian', async ({ context }) => {
        await context.clearCookies();
        const page = await context.newPage();
        await signIn(page, EDITOR);
        await typeInIndonesian(page, ORIGIN, requests);
        await page.close();
    }],
];

const { context, requests, close } = await launch();
const page = await context.newPage();
const errors = [];
page.on('pageerror', (error) => errors.push(String(error)));
// The wrong password of the sign-in step is answered 401 and the bad customer file 422, which the console
// reports; nothing else may fail.
const expected = ['status of 401', 'status of 422'];
page.on('console', (message) => {
    if (message.type() === 'error' && !expected.some((e) => message.text().includes(e))) errors.push(message.text());
});
let failed = 0;
for (const [name, step] of STEPS) {
    try {
        await step({ page, context });
        console.log(`ok   ${name}`);
    } catch (error) {
        failed++;
        console.log(`FAIL ${name}: ${error.stack || error}`);
        await screenshot(page, `dashboard-failed-${name}`).catch(() => {});
    }
}
await close();
const external = externalRequests(requests, ORIGIN);
if (external.length) { failed++; console.log(`FAIL requests left the origin: ${external.join(', ')}`); }
if (errors.length) { failed++; console.log(`FAIL page errors (CSP or script): ${errors.join(' | ')}`); }
process.exit(failed ? 1 : 0);
