// Dev helper: node e2e/shot.mjs <base-url-with-#token> <path>=<out.png>[:full] ...
import { launchBrowser } from './lib/browser.mjs';
const [base, ...pairs] = process.argv.slice(2);
const b = await launchBrowser();
try {
  b.page.on('console', (m) => { if (m.type() === 'error') console.log('console:', m.text()); });
  b.page.on('pageerror', (e) => console.log('pageerror:', e.message));
  await b.page.goto(base, { waitUntil: 'load' });
  await b.page.waitForTimeout(500);
  const origin = new URL(base).origin;
  for (const p of pairs) {
    const [path, rest] = p.split('=');
    const [out, full] = rest.split(':');
    await b.page.goto(origin + path, { waitUntil: 'load' });
    await b.page.waitForTimeout(Number(process.env.WAIT ?? 1200));
    await b.page.screenshot({ path: out, fullPage: full === 'full' });
    console.log('saved', out);
  }
} finally {
  await b.close();
}
