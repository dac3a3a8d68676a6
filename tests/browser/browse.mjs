// Runs a plan of browser steps in Debian's headless Chromium and prints what the browser saw,
// one JSON document on stdout. Used by the Rust end-to-end tests (tests/tests/sso.rs).
//
//   node tests/browser/browse.mjs '<plan JSON>'
//
// plan: { "steps": [ { "goto": URL } | { "login": [USER, PASSWORD] } | { "cookies": true }
//                    | { "fetch": URL } ], "timeout_ms": 15000 }
// Each step's result: { url, status, text } (page steps), { cookies: [...] }; `navigations` lists
// every main-frame request URL in order.
import { chromium } from 'playwright-core';

const plan = JSON.parse(process.argv[2]);
const timeout = plan.timeout_ms ?? 15000;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const results = [];
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  context.setDefaultTimeout(timeout);
  const page = await context.newPage();
  // Every main-frame navigation, redirects included (tests replay some of them).
  const navigations = [];
  page.on('request', (r) => {
    if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations.push(r.url());
  });
  const seen = async (resp) => ({
    url: page.url(),
    status: resp ? resp.status() : null,
    text: (await page.textContent('body').catch(() => '')) ?? '',
  });
  for (const step of plan.steps) {
    if (step.goto) {
      const resp = await page.goto(step.goto, { waitUntil: 'load' });
      results.push(await seen(resp));
    } else if (step.login) {
      await page.fill('#username', step.login[0]);
      await page.fill('#password', step.login[1]);
      const [resp] = await Promise.all([
        page.waitForNavigation({ waitUntil: 'load' }),
        page.click('#login'),
      ]);
      // The provider may redirect several times; wait until the page settles.
      await page.waitForLoadState('load');
      results.push(await seen(resp));
    } else if (step.cookies) {
      results.push({ cookies: await context.cookies() });
    } else if (step.wait_for_url) {
      await page.waitForURL(step.wait_for_url, { waitUntil: 'load' });
      results.push(await seen(null));
    }
  }
  process.stdout.write(JSON.stringify({ ok: true, results, navigations }));
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e), results }));
} finally {
  await browser.close();
}
