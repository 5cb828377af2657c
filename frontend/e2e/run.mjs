// End-to-end: the built UI against a real `retake serve` (simulated backend, shipped demo
// scenario) in headless Chromium. Builds nothing: it needs `frontend/dist` and the binary
// (`RETAKE_BIN`, default ../target/debug/retake). Prints "N passed, M failed" and exits non-zero
// on any failure. Screenshots go to e2e/artifacts/.
import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { audit } from './lib/a11y.mjs';
import { launchBrowser } from './lib/browser.mjs';
import { apiClient, startServer, waitFor } from './lib/server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const frontend = resolve(here, '..');
const BIN = resolve(frontend, process.env.RETAKE_BIN ?? '../target/debug/retake');
const DIST = join(frontend, 'dist');
const ARTIFACTS = join(here, 'artifacts');
const BUDGET_MS = Number(process.env.E2E_TIMEOUT_MS ?? 240_000);
const UI_TIMEOUT = 15_000;

const results = [];
let aborted = false;
let server;
let browser;
let dataDir;
const pageErrors = [];
const a11yViolations = [];

function log(s) {
  process.stdout.write(`${s}\n`);
}

/** Screenshot the whole page (from the top, so the sticky bar sits where it belongs) and audit it. */
async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });
  log(`    screenshot e2e/artifacts/${name}`);
  for (const v of await audit(page)) a11yViolations.push(`${name}: ${v.impact} ${v.id} (${v.help}) at ${v.targets.join(', ')}`);
}

async function step(name, fn) {
  if (aborted) {
    results.push({ name, status: 'skipped' });
    log(`  - ${name} (skipped)`);
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, status: 'passed' });
    log(`  ✓ ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    aborted = true;
    results.push({ name, status: 'failed', error: e });
    log(`  ✗ ${name} (${Date.now() - t0} ms)\n      ${String(e?.stack ?? e).split('\n').slice(0, 6).join('\n      ')}`);
    if (browser) await browser.page.screenshot({ path: join(ARTIFACTS, `failure-${results.length}.png`), fullPage: true }).catch(() => {});
  }
}

async function cleanup() {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

function summary() {
  const n = (s) => results.filter((r) => r.status === s).length;
  const skipped = n('skipped');
  log(`\n${n('passed')} passed, ${n('failed')} failed${skipped ? `, ${skipped} skipped` : ''}`);
  return n('failed') + skipped;
}

const watchdog = setTimeout(async () => {
  log(`\n✗ the suite took longer than ${BUDGET_MS / 1000} s; stopping`);
  results.push({ name: 'finish within the time budget', status: 'failed' });
  await cleanup();
  summary();
  process.exit(1);
}, BUDGET_MS);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await cleanup();
    process.exit(130);
  });
}

/** The statuses and summaries of the rows the segments table shows right now. */
async function rows(page) {
  return page.$$eval('tr.seg-row[data-segment-id]', (trs) =>
    trs.map((tr) => ({
      id: Number(tr.getAttribute('data-segment-id')),
      status: tr.getAttribute('data-status'),
      summary: tr.querySelector('.summary')?.textContent ?? '',
    })),
  );
}

const RUNNING = new Set(['queued', 'generating', 'retrying']);

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  if (!existsSync(join(DIST, 'index.html'))) throw new Error('frontend/dist is missing: run `npm run build` first');
  dataDir = mkdtempSync(join(tmpdir(), 'retake-e2e-'));
  const ctx = {};

  await step('start the real server and create an admin token', async () => {
    server = await startServer({ bin: BIN, dataDir, uiDir: DIST, logPath: join(ARTIFACTS, 'server.log') });
    ctx.admin = await server.createToken('admin');
    ctx.viewer = await server.createToken('viewer');
    log(`    server ${server.base}`);
  });

  await step('set up a project and scene types through the API', async () => {
    const api = apiClient(server.base, ctx.admin);
    const project = await api('POST', '/api/projects', { name: 'E2E studio', gpu_budget_seconds: 20000 });
    ctx.projectId = project.id;
    const checks = [
      { check: 'face_confidence', warn: 0.7, fail: 0.5 },
      { check: 'black_frames', warn: 0.9, fail: 0.8 },
    ];
    const base = { project_id: project.id, backend_config: { profile: 'portrait' }, default_parameters: { cfg_scale: 7.0, denoise_strength: 0.85, steps: 24 } };
    // Auto-retry stays off here until the user turns it on in the policy editor.
    ctx.portrait = (await api('POST', '/api/scene-types', { ...base, name: 'Portrait close-up', qa_checks: checks })).id;
    // A strict QA bar no portrait clears and no retries: every segment goes to review.
    ctx.strict = (await api('POST', '/api/scene-types', { ...base, name: 'Night exterior (strict QA)', qa_checks: [{ check: 'face_confidence', warn: 0.995, fail: 0.99 }] })).id;
    await api('POST', '/api/segments', { segments: [1, 2, 3].map((i) => ({ scene_type_id: ctx.strict, label: `night-${i}` })) });
  });

  await step('sign in with a pasted token', async () => {
    browser = await launchBrowser({ width: 1440, height: 960 });
    const { page } = browser;
    page.setDefaultTimeout(UI_TIMEOUT);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${server.base}/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('API token').fill(ctx.admin);
    await shot(page, '01-sign-in.png');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    await page.getByLabel('signed in as').filter({ hasText: 'admin' }).waitFor();
    await page.locator('.live-live').waitFor();
  });

  await step('enable auto-retry (best of 4) in the policy editor and save', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Scene types' }).click();
    await page.getByRole('link', { name: 'Portrait close-up' }).click();
    await page.getByRole('heading', { name: 'Retry policy' }).waitFor();
    const enable = page.getByRole('switch', { name: 'Enable auto-retry' });
    if (await enable.isChecked()) throw new Error('auto-retry should start off (opt-in)');
    await enable.check();
    await page.getByRole('slider', { name: 'Max attempts' }).fill('4');
    await page.getByText('up to 4 attempts (1 original + 3 retries)').waitFor();
    await page.getByRole('radio', { name: /Best of N/ }).check();
    await page.getByText('Unsaved changes').waitFor();
    await page.getByTestId('worst-case-extra').filter({ hasText: '+90.0 GPU-s' }).waitFor(); // 3 × 30 s default estimate
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText('Saved', { exact: true }).waitFor();
    const enabledRow = page.locator('.policy-row[data-field="enabled"]');
    await enabledRow.getByText('scene-type override').waitFor();
    await page.locator('.policy-row[data-field="cfg_jitter"]').getByText('project default').waitFor();
    await shot(page, '05-policy-editor.png');
    const api = apiClient(server.base, ctx.admin);
    const saved = await api('GET', `/api/scene-types/${ctx.portrait}/retry-policy`);
    if (!(saved.effective.enabled && saved.effective.max_attempts === 4 && saved.effective.selection_mode === 'best_of_n')) {
      throw new Error(`the server has ${JSON.stringify(saved.effective)}`);
    }
  });

  await step('submit 20 segments from the UI', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Segments', exact: true }).click();
    await page.getByRole('heading', { name: 'Segments' }).waitFor();
    await page.getByRole('button', { name: 'Submit segments…' }).click();
    const form = page.getByRole('form', { name: 'Submit segments' });
    await form.getByLabel('Scene type').selectOption({ label: 'Portrait close-up' });
    await form.getByLabel('Count (1–100)').fill('20');
    await form.getByLabel('Label prefix (optional)').fill('e2e');
    await form.getByLabel(/^cfg_scale/).fill('7');
    await form.getByRole('button', { name: 'Submit 20 segments' }).click();
    await form.getByRole('status').filter({ hasText: /Submitted 20 segments/ }).waitFor();
    ctx.submittedAt = Date.now();
  });

  await step('watch the list update live until a segment is rescued by a retry', async () => {
    const { page } = browser;
    // No reload from here on: every change arrives over the event stream.
    const seenRunning = await waitFor('submitted segments to show up running', async () => (await rows(page)).some((r) => RUNNING.has(r.status)), { timeoutMs: 15_000, intervalMs: 100 });
    await page.screenshot({ path: join(ARTIFACTS, '03-segments-live.png'), fullPage: true });
    let expected = 23;
    for (let batch = 1; ; batch++) {
      const done = await waitFor(
        'every segment to settle (passed or in review) without a reload',
        async () => {
          const r = await rows(page);
          return r.length >= expected && !r.some((x) => RUNNING.has(x.status)) ? r : null;
        },
        { timeoutMs: 90_000, intervalMs: 250 },
      );
      ctx.rescued = done.find((r) => r.status === 'passed' && /failed attempt 1\b.*passed attempt \d/.test(r.summary));
      ctx.twoPassing = done.find((r) => r.status === 'passed' && (r.summary.match(/passed attempt/g) ?? []).length >= 2);
      log(`    batch ${batch}: saw running rows ${seenRunning ? 'yes' : 'no'}; ${done.filter((r) => r.status === 'passed').length} passed, ${done.filter((r) => r.status === 'needs_review').length} in review`);
      if ((ctx.rescued && ctx.twoPassing) || batch === 3) break;
      // Chance left us without the shapes we need (rare): submit another batch from the same form.
      await page.getByRole('form', { name: 'Submit segments' }).getByRole('button', { name: 'Submit 20 segments' }).click();
      expected += 20;
    }
    if (!ctx.rescued) throw new Error('no segment failed and then passed');
    await shot(page, '03-segments.png');
  });

  await step('open the rescued segment: failed attempt, then a passing one with changed parameters', async () => {
    const { page } = browser;
    await page.locator(`tr[data-segment-id="${ctx.rescued.id}"] a.seg-link`).click();
    await page.getByTestId('summary-sentence').filter({ hasText: `Segment ${ctx.rescued.id}:` }).waitFor();
    await page.getByRole('listitem', { name: /^Attempt 1, failed/ }).waitFor();
    const passed = page.getByRole('listitem', { name: /^Attempt \d+, passed, selected/ });
    await passed.waitFor();
    await passed.getByRole('list', { name: 'changed parameters' }).getByText('cfg_scale').waitFor();
    await passed.getByTestId('selected-marker').waitFor();
  });

  await step('a shared segment link opens in a new tab, videos and live updates with no token in any URL', async () => {
    const tab = await browser.context.newPage();
    tab.setDefaultTimeout(UI_TIMEOUT);
    tab.on('pageerror', (e) => pageErrors.push(e.message));
    const urls = [];
    tab.on('request', (r) => urls.push(r.url()));
    const link = `${server.base}/segments/${ctx.rescued.id}`;
    await tab.goto(link);
    await tab.getByTestId('summary-sentence').filter({ hasText: `Segment ${ctx.rescued.id}:` }).waitFor();
    await tab.locator('.live-live').waitFor();
    // Which worker ran each attempt is on the page.
    await tab.getByRole('listitem', { name: /^Attempt 1,/ }).getByText('worker', { exact: true }).waitFor();
    const play = tab.getByRole('button', { name: /^Play: attempt \d+$/ }).first();
    if (await play.count()) {
      const video = tab.waitForResponse((r) => r.url().includes('/media') && r.status() < 300);
      await play.click();
      await video;
    }
    const leaked = urls.filter((u) => /access_token=|token=rtk_/.test(u));
    if (leaked.length) throw new Error(`a token is in a URL: ${leaked.join(', ')}`);
    const cookies = await browser.context.cookies(server.base);
    const session = cookies.find((c) => c.name === 'retake_session');
    if (!session || !session.httpOnly || session.sameSite !== 'Lax') throw new Error(`session cookie: ${JSON.stringify(session)}`);
    await tab.close();

    // A colleague's browser: sign in once, land on the shared page.
    const other = await launchBrowser({ width: 1280, height: 900 });
    try {
      const p = other.page;
      p.setDefaultTimeout(UI_TIMEOUT);
      p.on('pageerror', (e) => pageErrors.push(e.message));
      await p.goto(link);
      await p.getByRole('heading', { name: 'Sign in' }).waitFor();
      await p.getByLabel('API token').fill(ctx.viewer);
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.getByTestId('summary-sentence').filter({ hasText: `Segment ${ctx.rescued.id}:` }).waitFor();
      if (new URL(p.url()).pathname !== `/segments/${ctx.rescued.id}`) throw new Error(`landed on ${p.url()}`);
      // And in a second tab of that browser, no sign-in.
      const p2 = await other.context.newPage();
      p2.setDefaultTimeout(UI_TIMEOUT);
      await p2.goto(link);
      await p2.getByTestId('summary-sentence').filter({ hasText: `Segment ${ctx.rescued.id}:` }).waitFor();
    } finally {
      await other.close();
    }
  });

  await step('admins create, see and revoke tokens', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByRole('heading', { name: 'API tokens' }).waitFor();
    await page.getByLabel('Name').fill('e2e-laptop');
    await page.getByLabel('Role').selectOption('creator');
    await page.getByLabel('Expires').selectOption('7d');
    await page.getByRole('button', { name: 'Create token' }).click();
    const made = await page.getByLabel('New token value').textContent();
    if (!made?.startsWith('rtk_')) throw new Error(`new token shows ${made}`);
    const row = page.locator('tr.seg-row', { hasText: 'e2e-laptop' });
    await row.getByText('active').waitFor();
    await shot(page, '09-tokens.png');
    const me = await fetch(`${server.base}/api/me`, { headers: { authorization: `Bearer ${made}` } });
    if (me.status !== 200) throw new Error(`the new token got ${me.status}`);
    page.once('dialog', (d) => d.accept());
    await row.getByRole('button', { name: /^Revoke token/ }).click();
    await row.getByText('revoked').waitFor();
    const after = await fetch(`${server.base}/api/me`, { headers: { authorization: `Bearer ${made}` } });
    if (after.status !== 401) throw new Error(`a revoked token got ${after.status}`);
  });

  await step('select a different passing attempt as best', async () => {
    const { page } = browser;
    if (!ctx.twoPassing) throw new Error('no segment had two passing attempts');
    await page.goto(`${server.base}/segments/${ctx.twoPassing.id}`);
    await page.getByTestId('summary-sentence').waitFor();
    const btn = page.getByRole('button', { name: /^Select as best: attempt \d+$/ }).first();
    const n = Number((await btn.getAttribute('aria-label')).match(/\d+/)[0]);
    await btn.click();
    const chosen = page.getByRole('listitem', { name: `Attempt ${n}, passed, selected` });
    await chosen.waitFor();
    await chosen.getByTestId('selected-marker').filter({ hasText: 'picked by' }).waitFor();
    await page.getByRole('heading', { name: /Segment/ }).first().scrollIntoViewIfNeeded();
    await shot(page, '04-segment-detail.png');
  });

  await step('review queue: accept a failing attempt as a human override', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Review' }).click();
    await page.getByRole('heading', { name: 'Review queue' }).waitFor();
    const cards = page.getByRole('article');
    await waitFor('escalated segments in the queue', async () => (await cards.count()) >= 3, { timeoutMs: 20_000 });
    await shot(page, '06-review.png');
    const night = cards.filter({ hasText: 'Night exterior' });
    const first = night.first();
    ctx.acceptedId = Number(await first.getAttribute('data-segment-id'));
    await first.getByLabel('Attempt to accept').selectOption('1');
    await first.getByText(/did not pass QA/).waitFor();
    await first.getByLabel('Note (optional)').fill('lighting is intended');
    await first.getByRole('button', { name: 'Accept attempt 1' }).click();
    await page.getByRole('status').filter({ hasText: `Segment ${ctx.acceptedId}: attempt 1 accepted as a human override.` }).waitFor();
    await page.locator(`article[data-segment-id="${ctx.acceptedId}"]`).waitFor({ state: 'detached' });
  });

  await step('review queue: re-run another segment with a wider jitter', async () => {
    const { page } = browser;
    const card = page.getByRole('article').filter({ hasText: 'Night exterior' }).first();
    const id = Number(await card.getAttribute('data-segment-id'));
    await card.getByRole('tab', { name: 'Re-run' }).click();
    await card.getByTestId('rerun-estimate').filter({ hasText: 'project remaining' }).waitFor();
    await card.getByRole('slider', { name: /Jitter scale/ }).fill('2');
    await card.getByRole('button', { name: 'Re-run segment' }).click();
    await page.getByRole('status').filter({ hasText: `Segment ${id}: re-run queued as attempt 2` }).waitFor();
    await shot(page, '07-review-after-actions.png');
    // The re-run is a real attempt: its history says who asked for it.
    await page.goto(`${server.base}/segments/${id}`);
    const second = page.getByRole('listitem', { name: /^Attempt 2,/ });
    await second.getByText(/re-ran the segment from review/).waitFor();
    const accepted = await apiClient(server.base, ctx.admin)('GET', `/api/segments/${ctx.acceptedId}/retry-history`);
    if (accepted.status !== 'approved' || !accepted.attempts[0].human_override) throw new Error(`accepted segment is ${accepted.status}`);
  });

  await step('projects overview shows the budget burn and outcomes', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Projects' }).click();
    const card = page.getByRole('article', { name: 'E2E studio' });
    await card.getByRole('meter', { name: 'GPU budget used' }).waitFor();
    const rescued = Number(await card.locator('.stat', { hasText: 'rescued by retry' }).locator('.stat-value').textContent());
    if (!(rescued >= 1)) throw new Error(`rescued by retry shows ${rescued}`);
    await shot(page, '02-projects.png');
  });

  await step('operations view: what runs where, the line in claim order, cancel from the UI', async () => {
    const { page } = browser;
    const api = apiClient(server.base, ctx.admin);
    const sub = await api('POST', '/api/segments', { segments: Array.from({ length: 40 }, (_, i) => ({ scene_type_id: ctx.portrait, label: `ops-${i + 1}` })) });
    ctx.opsIds = sub.segments.map((x) => x.id);
    await page.getByRole('link', { name: 'Operations' }).click();
    await page.getByRole('heading', { name: 'Operations' }).waitFor();
    const waiting = page.getByRole('table', { name: 'Waiting in line' });
    const running = page.getByRole('table', { name: 'Running now' });
    await waitFor('attempts running and waiting', async () => (await running.locator('tr[data-attempt-id]').count()) > 0 && (await waiting.locator('tr[data-attempt-id]').count()) > 3, { timeoutMs: 20_000, intervalMs: 150 });
    await running.locator('tr[data-attempt-id]').first().getByText('e2e', { exact: false }).or(running.locator('tr[data-attempt-id] td.mono').first()).first().waitFor();
    await shot(page, '09-operations.png');
    const last = waiting.locator('tr[data-attempt-id]').last();
    const sid = Number((await last.locator('a.seg-link .mono').textContent()).replace('#', ''));
    await last.getByRole('button', { name: `Cancel segment ${sid}` }).click();
    await page.getByRole('button', { name: `Confirm cancel #${sid}` }).click();
    await page.getByRole('status').filter({ hasText: `Segment ${sid} cancelled` }).waitFor();
    const h = await api('GET', `/api/segments/${sid}/retry-history`);
    if (h.status !== 'cancelled') throw new Error(`segment ${sid} is ${h.status} after cancel`);
    const q = await api('GET', '/api/queue?limit=200');
    const retries = q.queued.filter((e) => e.attempt_number > 1);
    const originals = q.queued.filter((e) => e.attempt_number === 1);
    if (retries.length && originals.length && retries[0].position > originals[0].position) throw new Error('a retry waits behind new originals');
    log(`    queue: ${q.running_total} running, ${q.queued_total} queued (${retries.length} retries on this page)`);
  });

  await step('review at scale: filter by reason and label, shortcuts, bulk accept', async () => {
    const { page } = browser;
    const api = apiClient(server.base, ctx.admin);
    const sub = await api('POST', '/api/segments', { segments: [1, 2, 3].map((i) => ({ scene_type_id: ctx.strict, label: `bulk-${i}` })) });
    const ids = sub.segments.map((x) => x.id);
    await waitFor('the bulk segments to reach review', async () => {
      const r = await Promise.all(ids.map((id) => api('GET', `/api/segments/${id}`)));
      return r.every((x) => x.status === 'needs_review');
    }, { timeoutMs: 60_000, intervalMs: 250 });
    await page.getByRole('link', { name: 'Segments', exact: true }).click();
    await page.getByRole('heading', { name: 'Segments' }).waitFor();
    await page.getByLabel('Review reason').selectOption('retry_disabled');
    await page.getByLabel('Label contains').fill('BULK-');
    await waitFor('only the three bulk segments listed', async () => {
      const r = await rows(page);
      return r.length === 3 && r.every((x) => ids.includes(x.id));
    }, { timeoutMs: 10_000, intervalMs: 150 });
    await page.locator('tr.seg-row [data-testid="reason"]').filter({ hasText: 'Auto-retry is off' }).first().waitFor();
    await page.locator('h1').click();
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await shot(page, '10-shortcuts.png');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'Select all in review' }).click();
    await page.getByRole('group', { name: 'Bulk review actions' }).getByText('3 of 3 in review selected').waitFor();
    await shot(page, '11-review-at-scale.png');
    await page.getByRole('button', { name: 'Accept best attempts' }).click();
    await page.getByTestId('bulk-result').filter({ hasText: '3 accepted.' }).waitFor();
    const after = await Promise.all(ids.map((id) => api('GET', `/api/segments/${id}`)));
    if (!after.every((x) => x.status === 'approved')) throw new Error(`after bulk accept: ${after.map((x) => x.status)}`);
    // Every attempt shows when it was queued, started and finished.
    await page.goto(`${server.base}/segments/${ids[0]}`);
    await page.getByRole('definition').filter({ hasText: /s$/ }).first().waitFor();
    await page.getByLabel('Timing of attempt 1').getByTestId('attempt-duration').filter({ hasText: /\d/ }).waitFor();
  });

  await step('budget over time: burn-down by scene type and the ledger', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Projects' }).click();
    await page.getByRole('article', { name: 'E2E studio' }).getByRole('link', { name: 'Budget over time and ledger' }).click();
    await page.getByRole('heading', { name: 'E2E studio: budget over time' }).waitFor();
    const chart = page.getByRole('img', { name: /GPU budget over time/ });
    await chart.waitFor();
    if ((await chart.locator('path[data-scene-type]').count()) < 2) throw new Error('expected spend of two scene types');
    await page.getByRole('table', { name: 'GPU ledger' }).locator('tr.seg-row').first().waitFor();
    await shot(page, '12-budget.png');
    const csv = await fetch(`${server.base}/api/projects/${ctx.projectId}/ledger`, { headers: { Authorization: `Bearer ${ctx.admin}`, Accept: 'text/csv' } });
    const text = await csv.text();
    if (!text.startsWith('id,created_at,attempt_id')) throw new Error(`CSV export: ${text.slice(0, 80)}`);
  });

  await step('edit the budget: below what is spent needs a confirmation that shows both figures', async () => {
    const { page } = browser;
    const form = page.getByRole('form', { name: 'Edit the GPU budget' });
    const input = form.getByLabel('GPU budget (GPU-s, blank = unlimited)');
    if ((await input.inputValue()) !== '20000') throw new Error(`the form should start at the budget, not ${await input.inputValue()}`);
    const before = await apiClient(server.base, ctx.admin)('GET', `/api/projects/${ctx.projectId}`);
    if (!(before.gpu_spent_seconds > 10)) throw new Error(`expected some spend by now, got ${before.gpu_spent_seconds}`);
    await input.fill('10');
    await form.getByRole('button', { name: 'Save budget' }).click();
    const alert = form.getByRole('alert', { name: 'Budget below what is spent' });
    await alert.waitFor();
    const text = await alert.textContent();
    if (!/A budget of 10\.0 GPU-s is below what this project has already used: [\d,.]+ GPU-s spent and [\d,.]+ GPU-s reserved/.test(text ?? '')) throw new Error(`409 message: ${text}`);
    let p = await apiClient(server.base, ctx.admin)('GET', `/api/projects/${ctx.projectId}`);
    if (p.gpu_budget_seconds !== 20000) throw new Error(`refused, so the budget stays: ${p.gpu_budget_seconds}`);
    await shot(page, '12b-budget-below-spent.png');
    await alert.getByRole('button', { name: 'Set 10.0 GPU-s anyway' }).click();
    await form.getByText('Budget saved: 10.0 GPU-s.').waitFor();
    p = await apiClient(server.base, ctx.admin)('GET', `/api/projects/${ctx.projectId}`);
    if (p.gpu_budget_seconds !== 10) throw new Error(`confirmed, so the budget is 10: ${p.gpu_budget_seconds}`);
    // Back to what it was, with the If-Match of the project as it is now.
    await input.fill('20000');
    await form.getByRole('button', { name: 'Save budget' }).click();
    await form.getByText('Budget saved: 20,000.0 GPU-s.').waitFor();
  });

  await step('create a project and a scene type from the UI', async () => {
    const { page } = browser;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Projects' }).click();
    await page.getByRole('button', { name: 'New project…' }).click();
    const pf = page.getByRole('form', { name: 'Create a project' });
    await pf.getByLabel('Name', { exact: true }).fill('UI-made studio');
    await pf.getByLabel('GPU budget (GPU-s, blank = unlimited)').fill('1500');
    await pf.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('article', { name: 'UI-made studio' }).waitFor();
    await page.getByRole('link', { name: 'Scene types' }).click();
    await page.getByRole('button', { name: 'New scene type…' }).click();
    const sf = page.getByRole('form', { name: 'Create a scene type' });
    await sf.getByLabel('Project', { exact: true }).selectOption({ label: 'UI-made studio' });
    await sf.getByLabel('Name', { exact: true }).fill('Crowd wide');
    await sf.getByLabel('Scenario profile (optional)').fill('crowd');
    await sf.getByRole('button', { name: 'Add a check' }).click();
    await sf.getByLabel('Check 2 name').fill('frozen_frames');
    await sf.getByLabel('Turn auto-retry on for this scene type').check();
    await shot(page, '13-create-scene-type.png');
    await sf.getByRole('button', { name: 'Create scene type' }).click();
    await page.getByRole('heading', { name: 'Retry policy' }).waitFor();
    if (!(await page.getByRole('switch', { name: 'Enable auto-retry' }).isChecked())) throw new Error('the new scene type should retry');
  });

  await step('a viewer sees everything read-only', async () => {
    const page = await browser.context.newPage();
    page.setDefaultTimeout(UI_TIMEOUT);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${server.base}/scene-types/${ctx.portrait}#token=${ctx.viewer}`);
    await page.getByRole('heading', { name: 'Retry policy' }).waitFor();
    if (page.url().includes('token=')) throw new Error('the token was left in the address bar');
    await page.getByRole('note').filter({ hasText: 'only an admin can change retry policies' }).waitFor();
    if (!(await page.getByRole('switch', { name: 'Enable auto-retry' }).isDisabled())) throw new Error('viewer can toggle auto-retry');
    if (await page.getByRole('button', { name: 'Save policy' }).count()) throw new Error('viewer sees Save');
    await shot(page, '08-viewer-policy.png');
    await page.getByRole('link', { name: 'Review' }).click();
    await page.getByRole('note').filter({ hasText: 'Read-only' }).waitFor();
    if (await page.getByRole('tab').count()) throw new Error('viewer sees review actions');
    await page.getByRole('link', { name: 'Segments', exact: true }).click();
    await page.getByRole('heading', { name: 'Segments' }).waitFor();
    if (await page.getByRole('button', { name: 'Submit segments…' }).count()) throw new Error('viewer can submit');
    await page.close();
  });

  await step('no uncaught errors in the page', async () => {
    if (pageErrors.length) throw new Error(pageErrors.join('\n'));
  });

  await step('no accessibility violations on any screen (axe-core, WCAG 2.1 A/AA)', async () => {
    if (a11yViolations.length) throw new Error(a11yViolations.join('\n'));
  });
}

try {
  log(`retake e2e: ${BIN}`);
  await main();
} catch (e) {
  results.push({ name: 'suite setup', status: 'failed', error: e });
  log(`✗ ${e?.stack ?? e}`);
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
const bad = summary();
process.exit(bad ? 1 : 0);
