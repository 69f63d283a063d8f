'use strict';
// Chromium (headless, Debian's, driven by playwright-core from tests/interop) against the
// signed_token example: a page on 127.0.0.1:PAGE_PORT opens
//   1. new WebSocket(allowed, ['bearer', good])  -> opens, ws.protocol is 'bearer' (the marker,
//      never the token), the server greets 'hello alice';
//   2. new WebSocket(allowed, ['bearer', forged]) -> refused (the server logs 401);
//   3. new WebSocket(strict, ['bearer', good])   -> refused: the page's origin is not allowed
//      there (the server logs 403).
// `allowed` runs with --allow-origin http://127.0.0.1:PAGE_PORT, `strict` without. A browser
// does not show the HTTP status of a refused handshake; signed_token.sh checks the servers'
// logs for it.
//
// usage: node signed_token_browser.js PAGE_PORT ALLOWED_WS_URL STRICT_WS_URL GOOD FORGED [CHROMIUM]

const http = require('http');
const { chromium } = require('./interop/node_modules/playwright-core');
const { report, exitCode } = require('./interop/common');

const [pagePort, allowed, strict, good, forged] = process.argv.slice(2, 7);
const executablePath = process.argv[7] || '/usr/bin/chromium';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>signed_token</title></head><body><script>
(async function () {
  const q = new URLSearchParams(location.search);
  const attempt = (url, protocols) => new Promise((resolve) => {
    const r = { opened: false, protocol: null, first: null, close: null };
    const ws = new WebSocket(url, protocols);
    const done = () => resolve(r);
    const timer = setTimeout(() => { r.close = 'page timed out'; done(); }, 10000);
    ws.onopen = () => { r.opened = true; r.protocol = ws.protocol; };
    ws.onmessage = (ev) => { if (r.first === null) { r.first = ev.data; ws.close(1000, 'done'); } };
    ws.onclose = (ev) => { clearTimeout(timer); r.close = ev.code; done(); };
  });
  const result = {};
  result.good = await attempt(q.get('allowed'), ['bearer', q.get('good')]);
  result.forged = await attempt(q.get('allowed'), ['bearer', q.get('forged')]);
  result.crossSite = await attempt(q.get('strict'), ['bearer', q.get('good')]);
  window.result = result;
})();
</script></body></html>`;

async function main() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  await new Promise((r) => server.listen(Number(pagePort), '127.0.0.1', r));
  const qs = new URLSearchParams({ allowed, strict, good, forged });
  let browser;
  try {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      timeout: 60000,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    console.log(`chromium ${browser.version()}`);
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${pagePort}/?${qs}`, { timeout: 30000 });
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 40000 });
    const r = await page.evaluate(() => window.result);
    console.log(JSON.stringify(r));
    report('chromium: token in subprotocols accepted', r.good.opened ? null : `not opened (close ${r.good.close})`);
    report('chromium: the marker is echoed, not the token', r.good.protocol === 'bearer' ? null : `protocol ${JSON.stringify(r.good.protocol)}`);
    report('chromium: greeted as alice', r.good.first === 'hello alice' ? null : `first message ${JSON.stringify(r.good.first)}`);
    report('chromium: forged token refused', !r.forged.opened && r.forged.close === 1006 ? null : JSON.stringify(r.forged));
    report('chromium: page origin not allowed is refused', !r.crossSite.opened && r.crossSite.close === 1006 ? null : JSON.stringify(r.crossSite));
  } catch (e) {
    report('chromium run', `${e.message}`.split('\n')[0]);
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.close();
  }
}

main().then(() => process.exit(exitCode()));
