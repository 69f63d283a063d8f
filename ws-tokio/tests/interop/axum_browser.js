'use strict';
// A real browser against the axum_app example: Debian's Chromium, headless, driven by
// playwright-core, loads the app's page at `/` and, in the page, opens a WebSocket to `/ws` on
// the same origin (ws:// for an http:// page, wss:// for https://), checks that
// permessage-deflate was negotiated, sends text and binary up to 16 MiB, checks every echo
// and closes with 1000. The server's log (checked by axum_browser.sh) says which HTTP version
// carried the WebSocket.
//
// usage: node axum_browser.js PAGE_URL [CHROMIUM]

const { chromium } = require('playwright-core');
const { report, exitCode } = require('./common');

const pageUrl = process.argv[2];
const executablePath = process.argv[3] || '/usr/bin/chromium';

// Runs in the page.
async function exchange() {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const bytes = (n) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (i * 7) % 251; return b; };
  const random = (n) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
    return b;
  };
  const json = (n) => {
    const parts = [];
    let size = 2;
    for (let i = 0; size < n; i++) {
      const rec = '{"id":' + i + ',"name":"user-' + i + '","active":true,"score":' + (i % 97) + '},';
      parts.push(rec);
      size += rec.length;
    }
    return ('[' + parts.join('')).slice(0, n - 1) + ']';
  };
  const same = (a, b) => {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  };
  const MiB = 1 << 20;
  const plan = [
    ['text', 'hello from chromium ✓'],
    ['empty text', ''],
    ['binary 1 B', bytes(1)],
    ['binary 64 KiB', bytes(64 << 10)],
    ['binary 1 MiB random', random(MiB)],
    ['text 16 MiB JSON', json(16 * MiB)],
    ['binary 16 MiB', bytes(16 * MiB)],
  ];
  const r = { url, extensions: null, echoes: [], close: null, error: null };
  await new Promise((resolve) => {
    const timer = setTimeout(() => { r.error = 'page timed out'; resolve(); }, 90000);
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    let step = 0;
    ws.onopen = () => { r.extensions = ws.extensions; ws.send(plan[0][1]); };
    ws.onmessage = (ev) => {
      const [name, want] = plan[step];
      const ok = typeof want === 'string'
        ? ev.data === want
        : ev.data instanceof ArrayBuffer && same(new Uint8Array(ev.data), want);
      r.echoes.push({ name, ok });
      step += 1;
      if (step < plan.length) ws.send(plan[step][1]);
      else ws.close(1000, 'done');
    };
    ws.onerror = () => { r.error = 'error event'; };
    ws.onclose = (ev) => {
      r.close = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
      clearTimeout(timer);
      resolve();
    };
  });
  r.names = plan.map((p) => p[0]);
  return r;
}

async function main() {
  let browser;
  const label = pageUrl.startsWith('https:') ? 'https' : 'http';
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
        '--ignore-certificate-errors',
      ],
    });
    console.log(`chromium ${browser.version()}`);
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    const response = await page.goto(pageUrl, { timeout: 30000 });
    report(`[${label}] chromium loads the axum page`, response && response.ok() ? null : `status ${response && response.status()}`);
    const r = await page.evaluate(exchange);
    console.log(`  (${label}: page ${pageUrl}, websocket ${r.url}, extensions ${JSON.stringify(r.extensions)})`);
    report(
      `[${label}] permessage-deflate negotiated (ws.extensions ${JSON.stringify(r.extensions)})`,
      /^permessage-deflate(;|$)/.test(r.extensions || '') ? null : `extensions ${JSON.stringify(r.extensions)}`,
    );
    for (const name of r.names) {
      const e = r.echoes.find((x) => x.name === name);
      report(`[${label}] echo ${name}`, e && e.ok ? null : e ? 'echo differs' : `no echo (${r.error})`);
    }
    report(
      `[${label}] closes with 1000, clean`,
      r.close && r.close.code === 1000 && r.close.wasClean ? null : `close ${JSON.stringify(r.close)} error ${r.error}`,
    );
  } catch (e) {
    report(`[${label}] chromium run`, `${e.message}`.split('\n')[0]);
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
}

main().then(() => process.exit(exitCode()));
