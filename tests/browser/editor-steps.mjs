// The campaign editor's browser steps, run by dashboard.mjs once signed in as an editor: create a campaign,
// see a field error appear while typing (from the WebAssembly validation, with no request to the server),
// fix it, see the preview of each variant, save, and activate with the confirmation; and, for an editor who
// reads Indonesian, the errors found while typing in Indonesian and the times read in the chosen zone.
import assert from 'node:assert/strict';

import { screenshot as save } from './launch.mjs';

// From the top, where the preview sits beside the form.
async function screenshot(page, name) {
    await page.evaluate(() => window.scrollTo(0, 0));
    return save(page, name);
}

// The error list of the field the API calls `path`.
const errorsOf = (page, path) => page.locator(`[data-field="${path}"] > ul.errors li`);

export async function createCampaignInTheEditor(page, base, requests) {
    await page.goto(`${base}/ui/campaigns/new`);
    await page.waitForSelector('#campaign-form[data-live="on"]');
    await page.fill('[name="name"]', 'Browser campaign');
    await page.fill('[name="creative.title"]', 'Hello from the browser');
    await page.fill('[name="creative.body"]', 'A popup made in the editor, checked as it was typed.');
    await page.fill('[name="creative.extra"]', 'button=Show me');
    await page.fill('[name="creative.action_url"]', 'bankapp://promo/browser');

    // A field error appears while typing, without a round trip.
    const before = requests.length;
    await page.fill('[name="caps.lifetime"]', '1');
    await page.locator('[name="caps.per_day"]').pressSequentially('3');
    await errorsOf(page, 'caps.per_day').first().waitFor();
    assert.equal(await errorsOf(page, 'caps.per_day').first().textContent(),
        'Must not be more than the cap on impressions ever.');
    assert.match(await page.textContent('#error-summary'), /caps\.per_day/);
    assert.equal(await page.getAttribute('[name="caps.per_day"]', 'aria-invalid'), 'true');
    assert.deepEqual(requests.slice(before), [], 'validation happens in the page');
    await screenshot(page, 'editor-field-error');

    // Fixed: the error goes.
    await page.fill('[name="caps.per_day"]', '1');
    await page.waitForFunction(() => !document.querySelector('[data-field="caps.per_day"] > ul.errors li'));
    assert.equal(await page.isHidden('#error-summary'), true);

    // Three variants: two popups and a holdout; the preview shows each as the app would.
    await page.fill('[name="variants[0].key"]', 'a');
    await page.fill('[name="variants[0].weight"]', '2');
    await page.click('[data-add-row="variants"]');
    await page.fill('[name="variants[1].key"]', 'b');
    await page.fill('[name="variants[1].weight"]', '1');
    await page.click('[data-rows="variants"] [data-row="1"] summary');
    await page.fill('[name="variants[1].creative.title"]', 'Variant B says hello');
    await page.fill('[name="variants[1].creative.body"]', 'The other arm of the test.');
    await page.click('[data-add-row="variants"]');
    await page.fill('[name="variants[2].key"]', 'holdout');
    await page.fill('[name="variants[2].weight"]', '1');
    await page.check('[name="variants[2].control"]');
    await page.waitForSelector('.phone[data-variant="holdout"] .holdout');
    const phones = await page.locator('#preview-list .phone').evaluateAll((all) => all.map((phone) => ({
        key: phone.dataset.variant,
        title: phone.querySelector('.popup-title')?.textContent ?? null,
        button: phone.querySelector('.popup-button')?.textContent ?? null,
    })));
    assert.deepEqual(phones, [
        { key: 'a', title: 'Hello from the browser', button: 'Show me' },
        { key: 'b', title: 'Variant B says hello', button: null },
        { key: 'holdout', title: null, button: null },
    ]);
    assert.match(await page.textContent('#live-status'), /Ready to save/);
    assert.equal(await page.locator('[data-row="2"] details').evaluate((d) => d.open), false, 'a new row starts closed');
    await screenshot(page, 'editor-preview');

    await Promise.all([page.waitForURL(/\/ui\/campaigns\/\d+\?notice=created$/), page.click('#save')]);
    const id = Number(new URL(page.url()).pathname.split('/').pop());
    assert.match(await page.textContent('.notice'), /created as a draft/);
    await screenshot(page, 'editor-saved');
    return id;
}

export async function activateInTheEditor(page, base, id) {
    await page.goto(`${base}/ui/campaigns/${id}`);
    let asked = '';
    page.once('dialog', (dialog) => {
        asked = dialog.message();
        dialog.accept();
    });
    await Promise.all([page.waitForURL(/notice=activate$/), page.click('[data-action="activate"]')]);
    assert.match(asked, /Activate this campaign\?/);
    assert.equal(await page.textContent('#campaign-status'), 'Active');
    assert.equal(await page.locator('[data-action="activate"]').count(), 0);
    await screenshot(page, 'editor-activated');
}

// Signed in as an editor who reads Bahasa Indonesia: the live errors are in Indonesian, and start and end are
// wall-clock times of the zone picked, labelled with it, with their UTC instant beside them.
export async function typeInIndonesian(page, base, requests) {
    await page.goto(`${base}/ui/campaigns/new`);
    await page.waitForSelector('#campaign-form[data-live="on"]');
    const before = requests.length;
    await page.fill('[name="caps.lifetime"]', '1');
    await page.locator('[name="caps.per_day"]').pressSequentially('3');
    await errorsOf(page, 'caps.per_day').first().waitFor();
    assert.equal(await errorsOf(page, 'caps.per_day').first().textContent(),
        'Tidak boleh melebihi batas tayangan seumur hidup.');
    assert.match(await page.textContent('#error-summary'), /caps\.per_day Tidak boleh melebihi/);

    assert.equal(await page.textContent('[data-field="schedule.start"] [data-zone-label]'), '(UTC)');
    await page.fill('[name="schedule.start"]', '2026-12-01T09:30');
    await page.fill('[name="schedule.time_zone"]', 'Asia/Jakarta');
    await page.waitForFunction(() =>
        document.querySelector('[data-field="schedule.start"] [data-zone-label]').textContent === '(Asia/Jakarta)');
    assert.equal(await page.textContent('[data-utc-of="schedule.start"]'), 'dalam UTC: 2026-12-01 02:30:00 UTC');
    // Another zone keeps what was typed, and the instant moves with it.
    await page.fill('[name="schedule.time_zone"]', 'Asia/Makassar');
    await page.waitForFunction(() =>
        document.querySelector('[data-utc-of="schedule.start"]').textContent.includes('01:30:00'));
    assert.equal(await page.inputValue('[name="schedule.start"]'), '2026-12-01T09:30');
    // An end before the start, in that zone, is the end's error.
    await page.fill('[name="schedule.end"]', '2026-12-01T09:00');
    await errorsOf(page, 'schedule.end').first().waitFor();
    assert.equal(await errorsOf(page, 'schedule.end').first().textContent(), 'Harus setelah waktu mulai.');
    assert.deepEqual(requests.slice(before), [], 'validation happens in the page');
    await screenshot(page, 'editor-indonesian');
}
