'use strict';
// Node `ws` client for the checks behind nginx (proxy_read_timeout 3s).
//
// usage: node nginx_client.js keepalive URL IDLE_MS   server pings every second: the connection
//                                                     must survive IDLE_MS of idleness, then echo
//        node nginx_client.js cut URL MAX_MS          server sends no pings: the proxy must cut
//                                                     the idle connection (no close frame from
//                                                     the server) before MAX_MS
//
// The client itself never pings, so only the server's traffic can keep the proxy from timing out.

const WebSocket = require('ws');
const { check, sleep, exitCode, withTimeout } = require('./common');

const [mode, url, msArg] = process.argv.slice(2);
const ms = Number(msArg);

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10000 });
    const c = { ws, pings: 0, messages: [], closed: null, openedAt: 0 };
    c.closedP = new Promise((r) =>
      ws.on('close', (code, reason) => {
        c.closed = { code, reason: reason.toString(), at: Date.now() };
        r(c.closed);
      }),
    );
    ws.on('ping', () => (c.pings += 1));
    ws.on('message', (d) => c.messages.push(d.toString()));
    ws.on('open', () => {
      c.openedAt = Date.now();
      resolve(c);
    });
    ws.on('error', reject);
  });
}

async function keepalive() {
  let c;
  await check(`through nginx, server pings every 1 s: open after ${ms / 1000} s idle`, async () => {
    c = await open();
    await sleep(ms);
    if (c.closed) return `closed after ${c.closed.at - c.openedAt} ms with ${c.closed.code} (${c.pings} pings seen)`;
    if (c.pings < Math.floor(ms / 1000) - 4) return `only ${c.pings} server pings in ${ms} ms`;
    console.log(`  (${c.pings} server pings seen in ${ms} ms)`);
    return null;
  }, ms + 15000);
  if (!c || c.closed) return;
  await check('through nginx, after the idle period: still echoes, then closes with 1000', async () => {
    c.ws.send('still alive after idle');
    for (let i = 0; i < 50 && c.messages.length === 0 && !c.closed; i++) await sleep(100);
    if (c.messages[0] !== 'still alive after idle') return `echo: ${JSON.stringify(c.messages)} closed=${JSON.stringify(c.closed)}`;
    c.ws.close(1000, 'done');
    const r = await withTimeout(c.closedP, 10000, 'close');
    return r.code === 1000 ? null : `close echo ${r.code}`;
  });
}

async function cut() {
  await check(`through nginx, no pings: the proxy cuts the idle connection (no close frame) before ${ms / 1000} s`, async () => {
    const c = await open();
    let r;
    try {
      r = await withTimeout(c.closedP, ms, 'waiting for the proxy to cut');
    } catch (e) {
      c.ws.terminate();
      return `still open after ${ms} ms`;
    }
    const elapsed = r.at - c.openedAt;
    console.log(`  (connection ended after ${elapsed} ms with code ${r.code})`);
    if (r.code !== 1006) return `ended with close code ${r.code} (a close frame), expected 1006 (none)`;
    if (elapsed < 2500) return `ended after ${elapsed} ms, before proxy_read_timeout (3 s)`;
    return null;
  }, ms + 15000);
}

(mode === 'keepalive' ? keepalive() : cut())
  .catch((e) => require('./common').report(`nginx ${mode}`, e.message))
  .then(() => process.exit(exitCode()));
