'use strict';
// A real browser against the ws-tokio interop_server: Debian's Chromium, headless, driven by
// playwright-core, opens a page (served here on 127.0.0.1) whose script connects to the server,
// sends text and binary, checks the echoes and closes with 1000. Chromium always offers
// permessage-deflate and the server (default settings) accepts: the check asserts it was
// negotiated, so the echoes (a 1 MiB compressible text and incompressible random binary among
// them) went through both codecs. The page reports in `window.result`; run.sh checks the
// server's log for its side.
//
// usage: node browser.js ws://127.0.0.1:PORT/browser [CHROMIUM]

const http = require('http');
const { chromium } = require('playwright-core');
const { report, exitCode } = require('./common');

const wsUrl = process.argv[2];
const executablePath = process.argv[3] || '/usr/bin/chromium';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>ws-tokio interop</title></head>
<body><pre id="log"></pre>
<script>
(function () {
  const url = new URLSearchParams(location.search).get('ws');
  const r = { opened: false, protocol: null, extensions: null, echoes: [], close: null, error: null };
  const log = (s) => { console.log('page: ' + s); document.getElementById('log').textContent += s + '\\n'; };
  const bytes = (n) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = i % 251; return b; };
  const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const random = (n) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
    return b;
  };
  const json = (n) => {
    // About n bytes of JSON: an array of similar records (highly compressible).
    const parts = [];
    let size = 2;
    for (let i = 0; size < n; i++) {
      const rec = '{"id":' + i + ',"name":"user-' + i + '","email":"user' + i + '@example.com","active":true,"tags":["alpha","beta"],"score":' + (i % 97) + '},';
      parts.push(rec);
      size += rec.length;
    }
    return ('[' + parts.join('')).slice(0, n - 1) + ']';
  };
  const plan = [
    { name: 'text', data: 'hello from chromium ✓' },
    { name: 'binary 256 B', data: bytes(256) },
    { name: 'binary 64 KiB', data: bytes(65536) },
    { name: 'text 1 MiB JSON', data: json(1 << 20) },
    { name: 'binary 256 KiB random', data: random(256 << 10) },
  ];
  let step = 0;
  const finish = () => { log('result ' + JSON.stringify(r)); window.result = r; };
  setTimeout(() => { if (!window.result) { r.error = r.error || 'page timed out'; finish(); } }, 20000);
  const ws = new WebSocket(url, ['chat']);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    r.opened = true; r.protocol = ws.protocol; r.extensions = ws.extensions;
    log('open protocol=' + ws.protocol + ' extensions=' + JSON.stringify(ws.extensions));
    ws.send(plan[0].data);
  };
  ws.onmessage = (ev) => {
    const want = plan[step].data;
    const ok = typeof want === 'string'
      ? ev.data === want
      : ev.data instanceof ArrayBuffer && sameBytes(new Uint8Array(ev.data), want);
    r.echoes.push({ name: plan[step].name, ok });
    log('echo ' + plan[step].name + ' ok=' + ok);
    step += 1;
    if (step < plan.length) ws.send(plan[step].data);
    else ws.close(1000, 'browser done');
  };
  ws.onerror = () => { r.error = 'error event'; log('error event'); };
  ws.onclose = (ev) => {
    r.close = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
    log('close code=' + ev.code + ' clean=' + ev.wasClean);
    finish();
  };
})();
</script></body></html>`;

async function main() {
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/?') || req.url === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const pageUrl = `http://127.0.0.1:${server.address().port}/?ws=${encodeURIComponent(wsUrl)}`;
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
    page.on('console', (m) => console.log(`console: ${m.text()}`));
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await page.goto(pageUrl, { timeout: 30000 });
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 30000 });
    const r = await page.evaluate(() => window.result);
    report('chromium connects', r.opened ? null : `not opened (${r.error})`);
    report('chromium: subprotocol chat negotiated', r.protocol === 'chat' ? null : `protocol ${JSON.stringify(r.protocol)}`);
    // Chromium always offers permessage-deflate; the server (default settings) must accept, so
    // the echoes below went through both codecs.
    report(
      `chromium: permessage-deflate negotiated (ws.extensions ${JSON.stringify(r.extensions)})`,
      /^permessage-deflate(;|$)/.test(r.extensions || '') ? null : `extensions ${JSON.stringify(r.extensions)}`,
    );
    for (const name of ['text', 'binary 256 B', 'binary 64 KiB', 'text 1 MiB JSON', 'binary 256 KiB random']) {
      const e = r.echoes.find((x) => x.name === name);
      report(`chromium: echo ${name}`, e && e.ok ? null : e ? 'echo differs' : 'no echo');
    }
    report(
      'chromium: closes with 1000, clean close handshake',
      r.close && r.close.code === 1000 && r.close.wasClean ? null : `close ${JSON.stringify(r.close)} error ${r.error}`,
    );
  } catch (e) {
    report('chromium run', `${e.message}`.split('\n')[0]);
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.close();
  }
}

main().then(() => process.exit(exitCode()));
