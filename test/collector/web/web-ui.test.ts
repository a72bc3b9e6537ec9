import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot } from '../../support/host';
import { BYPASSES, FIRST_ALERT, HTTP_SESSION, PG_SESSION, RUN, SSH_SESSION, startWebFixture, type WebFixture } from './web-fixture';

/** Debian's chromium (scripts/setup installs it); playwright-core drives it over CDP. */
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(repoRoot, 'test-results', 'screenshots');

describe('collector/web UI in headless Chromium (real embedded store)', function () {
  this.timeout(180_000);
  let fixture: WebFixture;
  let browser: Browser;
  let context: BrowserContext;
  /** Console errors, page errors and failed requests of the page under test, cleared per test. */
  let problems: string[] = [];

  const watch = (page: Page): void => {
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()} ${response.url()}`);
    });
  };

  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    fixture = await startWebFixture();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // The other tests browse logged in: the login form, posted once.
    const login = await context.newPage();
    await login.goto(`${fixture.url}/login`);
    await login.fill('#token', fixture.token);
    await login.click('button[type=submit]');
    await login.waitForSelector('body[data-ready="true"]');
    await login.close();
  });

  after(async () => {
    await browser?.close();
    await fixture?.stop();
    process.stdout.write(`      screenshots of every page: ${SCREENSHOTS}\n`);
  });

  beforeEach(() => {
    problems = [];
  });

  afterEach(function () {
    if (this.currentTest?.state === 'passed') assert.deepEqual(problems, [], 'no console errors, page errors or failed requests');
  });

  /**
   * Waits until a JavaScript expression is true in the page. Evaluated through the DevTools protocol:
   * waitForFunction would compile it inside the page, which the UI's CSP (no eval) rightly refuses.
   */
  async function waitFor(page: Page, expression: string): Promise<void> {
    for (let attempt = 0; attempt < 300; attempt++) {
      if (await page.evaluate(expression)) return;
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
    throw new Error(`timed out waiting for ${expression} on ${page.url()}`);
  }

  /** Opens a view, waits until it has rendered (and its charts have drawn), and saves a screenshot. */
  async function open(path: string, screenshot: string): Promise<Page> {
    const page = await context.newPage();
    watch(page);
    await page.goto(`${fixture.url}${path}`);
    await page.waitForSelector('body[data-ready="true"]');
    // Charts draw on the next animation frame after the view is in the document.
    await waitFor(page, `[...document.querySelectorAll('figure.chart')].every((f) => f.querySelector('canvas') || f.querySelector('p.muted'))`);
    await page.screenshot({ path: join(SCREENSHOTS, `${screenshot}.png`), fullPage: true });
    const error = await page.$('main .error');
    assert.equal(error ? await error.textContent() : null, null, `${path} shows no error`);
    return page;
  }

  /** Canvases of the page's charts that have any painted pixel. */
  async function paintedCharts(page: Page): Promise<number> {
    // Runs in the page (a string: this test is compiled without the DOM's types).
    return page.evaluate(`[...document.querySelectorAll('figure.chart canvas')].filter((c) => {
      const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
      return false;
    }).length`);
  }

  it('requires the token: API 401 and pages send to the login form, which logs in', async () => {
    const anonymous = await browser.newContext();
    try {
      const page = await anonymous.newPage();
      const api = await page.goto(`${fixture.url}/api/queries`);
      assert.equal(api?.status(), 401);
      await page.goto(`${fixture.url}/alerts`);
      assert.match(page.url(), /\/login\?next=%2Falerts$/);
      await page.fill('#token', 'not-the-token');
      await page.click('button[type=submit]');
      await page.waitForSelector('#failed:not([hidden])');
      await page.screenshot({ path: join(SCREENSHOTS, 'login.png') });
      watch(page);
      await page.fill('#token', fixture.token);
      await page.click('button[type=submit]');
      await page.waitForSelector('body[data-ready="true"]');
      assert.equal(new URL(page.url()).pathname, '/alerts');
      const session = (await anonymous.cookies()).find((c) => c.name === 'gapwatch_session');
      assert.ok(session?.httpOnly, 'the session cookie is HttpOnly');
      assert.equal(session?.sameSite, 'Strict');
    } finally {
      await anonymous.close();
    }
  });

  it('overview: coverage, bypass count, charts and top offenders linking to the agent-run timeline', async () => {
    const page = await open('/', 'overview');
    assert.match((await page.textContent('[data-card=bypass] .card-value')) ?? '', new RegExp(`^${BYPASSES}$`));
    assert.match((await page.textContent('[data-card=coverage] .card-value')) ?? '', /%/);
    assert.ok((await paintedCharts(page)) >= 4, 'the four overview charts are drawn');
    await Promise.all([page.waitForURL(/\/runs\?agent_run=/), page.click(`table[data-query=bypass-by-agent-run] a[href*="agent_run=${encodeURIComponent(RUN)}"]`)]);
    await page.waitForSelector('body[data-ready="true"]');
    assert.ok((await page.$$('table[data-query=agent-run-timeline] tbody tr')).length > BYPASSES, 'the run timeline lists its execs and connects');
    await page.close();
  });

  it('overview filters: a host filter narrows every number', async () => {
    const page = await open('/', 'overview-before-filter');
    await page.fill('#filter-host', 'host-b');
    await Promise.all([page.waitForURL(/host=host-b/), page.click('#filters button[type=submit]')]);
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.textContent('[data-card=bypass] .card-value'), '0');
    assert.equal(await page.inputValue('#filter-host'), 'host-b');
    await page.screenshot({ path: join(SCREENSHOTS, 'overview-host-b.png'), fullPage: true });
    await page.close();
  });

  it('alerts: list, severity filter, paging, and the detail with its lineage', async () => {
    const page = await open('/alerts', 'alerts');
    assert.equal((await page.$$('table[data-query=recent-alerts] tbody tr')).length, 50);
    assert.ok(await page.$('nav.pager a'), 'a second page is offered');
    assert.match((await page.textContent('table[data-query=recent-alerts]')) ?? '', /<img src=x onerror/, 'markup in the store is shown as text');
    assert.equal(await page.$('table[data-query=recent-alerts] img'), null);
    assert.equal(await page.evaluate('window.injected'), undefined);
    await Promise.all([page.waitForURL(/severity=critical/), page.click('[data-filter=severity] a:text("critical")')]);
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal((await page.$$('table[data-query=recent-alerts] tbody tr')).length, 1);
    await page.screenshot({ path: join(SCREENSHOTS, 'alerts-critical.png'), fullPage: true });
    await page.close();

    const detail = await open(`/alerts?alert_id=${FIRST_ALERT}`, 'alert-detail');
    const lineage = await detail.$$eval('ol.lineage li code', (nodes) => nodes.map((n) => n.textContent));
    assert.deepEqual(lineage.slice(0, 2).map((b) => b?.split('/').pop()), ['psql', 'claude'], 'the process, then the agent run it belongs to');
    assert.ok(await detail.$(`dl.facts a[href*="agent_run=${encodeURIComponent(RUN)}"]`), 'the detail links to the run timeline');
    await detail.close();
  });

  it('agent runs: the list and a run timeline with its activity chart', async () => {
    const list = await open('/runs', 'runs');
    assert.ok((await list.$$('table.result tbody tr')).length >= 2);
    await list.close();
    const page = await open(`/runs?agent_run=${encodeURIComponent(RUN)}`, 'run-timeline');
    assert.equal(await paintedCharts(page), 1);
    assert.ok(await page.$('table[data-query=agent-run-timeline] tr.gap'), 'rows next to the audit gap are marked');
    await page.close();
  });

  it('sessions: the list, a PostgreSQL session with statements, an HTTP exchange, an SSH session in the asciicast player', async () => {
    const list = await open('/sessions', 'sessions');
    assert.ok(await list.$(`a[href*="session_id=${PG_SESSION}"]`));
    await list.close();

    const pg = await open(`/sessions?session_id=${PG_SESSION}`, 'session-postgres');
    const text = await pg.textContent('main');
    assert.match(text ?? '', /SELECT \* FROM orders WHERE id = \$1/);
    assert.match(text ?? '', /no-drop/);
    await pg.close();

    const http = await open(`/sessions?session_id=${HTTP_SESSION}`, 'session-http');
    assert.match((await http.textContent('main')) ?? '', /HTTP exchanges[\s\S]*\/invoices/);
    await http.close();

    const ssh = await open(`/sessions?session_id=${SSH_SESSION}`, 'session-ssh');
    await ssh.waitForSelector('.player .ap-player');
    await ssh.click('.player .ap-player');
    await waitFor(ssh, `/Linux build-box/.test(document.querySelector('.player')?.textContent ?? '')`);
    await ssh.screenshot({ path: join(SCREENSHOTS, 'session-ssh.png'), fullPage: true });
    await ssh.close();
  });

  it('audit gaps: the list and the chart of records lost', async () => {
    const page = await open('/gaps?from=7d', 'audit-gaps');
    assert.match((await page.textContent('table[data-query=audit-gaps]')) ?? '', /ring buffer full/);
    assert.equal(await paintedCharts(page), 1);
    await page.close();
  });
});
