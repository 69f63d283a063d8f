'use strict';
// Node `ws` client against the ws-tokio interop_server.
//
// usage: node node_client.js ws://127.0.0.1:PORT [--close-codes all|sample]
//
// Prints one `PASS name` / `FAIL name: detail` line per check; exits 1 if any failed.
// The server must run with `--protocols chat,superchat` and a short `--ping-interval-ms`.

const WebSocket = require('ws');
const { check, pattern, sleep, exitCode, withTimeout } = require('./common');

const args = process.argv.slice(2);
const base = args[0].replace(/\/+$/, '');
const allCodes = !(args.includes('--close-codes') && args[args.indexOf('--close-codes') + 1] === 'sample');

// A connection with a message queue, so that tests can `await next()`.
function open(path, protocols, opts = {}) {
  return new Promise((resolve, reject) => {
    // Compression off: ws-tokio does not implement permessage-deflate yet.
    const ws = new WebSocket(base + path, protocols || [], {
      perMessageDeflate: false,
      maxPayload: 64 << 20,
      handshakeTimeout: 10000,
      ...opts,
    });
    const queue = [];
    const waiters = [];
    const c = { ws, pings: [], pongs: [], closed: null };
    const push = (item) => {
      const w = waiters.shift();
      if (w) w(item);
      else queue.push(item);
    };
    c.next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
    c.closedP = new Promise((r) => {
      ws.on('close', (code, reason) => {
        c.closed = { code, reason: reason.toString() };
        push({ close: c.closed });
        r(c.closed);
      });
    });
    ws.on('message', (data, isBinary) => push({ data: isBinary ? data : data.toString(), isBinary }));
    ws.on('ping', (d) => c.pings.push(d));
    ws.on('pong', (d) => c.pongs.push(d));
    ws.on('open', () => resolve(c));
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body })));
    });
    ws.on('error', (e) => reject(e));
  });
}

function describe(m) {
  if (m.close) return `close ${m.close.code} ${JSON.stringify(m.close.reason)}`;
  if (m.isBinary) return `binary of ${m.data.length} bytes`;
  return m.data.length <= 40 ? `text ${JSON.stringify(m.data)}` : `text of ${m.data.length} chars`;
}

function same(m, want) {
  if (m.close) return false;
  if (Buffer.isBuffer(want)) return m.isBinary && Buffer.compare(m.data, want) === 0;
  return !m.isBinary && m.data === want;
}

async function expectEcho(c, msg, want = msg) {
  if (msg !== null) c.ws.send(msg);
  const m = await c.next();
  return same(m, want) ? null : `expected ${describe({ data: want, isBinary: Buffer.isBuffer(want) })}, got ${describe(m)}`;
}

async function closeNormally(c) {
  c.ws.close(1000, 'done');
  const r = await withTimeout(c.closedP, 10000, 'close');
  return r.code === 1000 ? null : `close echo ${r.code}`;
}

async function echoChecks() {
  const c = await open('/echo-node');
  const cases = [
    ['text hello', 'hello'],
    ['text unicode', 'héllo wörld ✓ 😀 — ünïcödé'],
    ['text 0 B', ''],
    ['text 64 KiB', 'x'.repeat(65536)],
    ['binary 0 B', Buffer.alloc(0)],
    ['binary 125 B', pattern(125)],
    ['binary 126 B', pattern(126)],
    ['binary 64 KiB', pattern(65536)],
    ['binary 16 MiB', pattern(16 << 20)],
  ];
  for (const [name, msg] of cases) {
    if (!(await check(`echo ${name}`, () => expectEcho(c, msg)))) {
      c.ws.terminate();
      return;
    }
  }
  await check('echo: close 1000', () => closeNormally(c));
}

async function fragmentChecks() {
  const c = await open('/fragments-node');
  const ws = c.ws;
  await check('fragmented text, a UTF-8 character split across fragments', () => {
    const full = Buffer.from('héllo wörld ✓ 😀', 'utf8');
    // Split inside "é" (2 bytes), "✓" (3 bytes) and "😀" (4 bytes).
    const cuts = [2, 15, 20, full.length];
    let from = 0;
    cuts.forEach((to, i) => {
      ws.send(full.subarray(from, to), { binary: false, fin: i === cuts.length - 1 });
      from = to;
    });
    return expectEcho(c, null, 'héllo wörld ✓ 😀');
  });
  await check('fragmented binary (8 x 25000 B) with a ping between fragments', async () => {
    const data = pattern(200000);
    for (let i = 0; i < 8; i++) {
      ws.send(data.subarray(i * 25000, (i + 1) * 25000), { binary: true, fin: i === 7 });
      if (i === 0) ws.ping('between-fragments');
    }
    const err = await expectEcho(c, null, data);
    if (err) return err;
    for (let i = 0; i < 50 && !c.pongs.some((p) => p.toString() === 'between-fragments'); i++) await sleep(100);
    return c.pongs.some((p) => p.toString() === 'between-fragments') ? null : 'no pong for the ping between fragments';
  });
  await check('fragmented binary (1000 x 1 B)', () => {
    const data = pattern(1000);
    for (let i = 0; i < 1000; i++) ws.send(data.subarray(i, i + 1), { binary: true, fin: i === 999 });
    return expectEcho(c, null, data);
  });
  await check('fragmented binary (empty fragments)', () => {
    for (let i = 0; i < 3; i++) ws.send(Buffer.alloc(0), { binary: true, fin: i === 2 });
    return expectEcho(c, null, Buffer.alloc(0));
  });
  await check('fragments: close 1000', () => closeNormally(c));
}

async function pingChecks() {
  const c = await open('/ping-node');
  await check("our ping gets the server's pong", async () => {
    c.ws.ping('node-ping-1');
    for (let i = 0; i < 50; i++) {
      if (c.pongs.some((p) => p.toString() === 'node-ping-1')) return null;
      await sleep(100);
    }
    return `no matching pong (pongs: ${c.pongs.map(String)})`;
  });
  await check('ping: close 1000', () => closeNormally(c));
  await check('keepalive: the server pings, we pong, the connection stays usable', async () => {
    const k = await open('/keepalive-node');
    await sleep(1500);
    if (k.pings.length < 2) return `saw ${k.pings.length} server pings in 1.5 s`;
    return (await expectEcho(k, 'still here')) || (await closeNormally(k));
  });
}

async function subprotocolChecks() {
  const offer = async (offered, want) => {
    const c = await open('/subprotocol-node', offered);
    if (c.ws.protocol !== want) return `offered ${offered}, got ${JSON.stringify(c.ws.protocol)}`;
    return closeNormally(c);
  };
  await check('subprotocol: offer chat, get chat', () => offer(['chat'], 'chat'));
  await check('subprotocol: offer superchat,chat, get superchat (first offered)', () =>
    offer(['superchat', 'chat'], 'superchat'));
  await check('subprotocol: offer none, get none', () => offer([], ''));
}

async function rejectCheck() {
  await check('/reject is refused with 403 and its body', async () => {
    try {
      const c = await open('/reject');
      c.ws.terminate();
      return 'connected, expected a 403';
    } catch (e) {
      if (e.status !== 403) return `${e.message}`;
      if (e.body !== 'rejected by interop_server\n') return `body ${JSON.stringify(e.body)}`;
      return null;
    }
  });
}

async function closeCodeChecks() {
  const codes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014];
  if (allCodes) for (let c = 3000; c <= 4999; c++) codes.push(c);
  else codes.push(3000, 3001, 3999, 4000, 4001, 4999);
  // The server waits 6 s without reading, then closes (runs alongside the sweep).
  const idle = check('server closes (4004) after 6 s idle, we see it', async () => {
    const c = await open('/close-after/6000/4004');
    const r = await withTimeout(c.closedP, 20000, 'close');
    return r.code === 4004 && r.reason === 'server says bye' ? null : `got ${r.code} ${JSON.stringify(r.reason)}`;
  });
  await check(`close with each of ${codes.length} codes + reason, server echoes the code`, async () => {
    const failures = [];
    let next = 0;
    const worker = async () => {
      while (next < codes.length) {
        const code = codes[next++];
        try {
          const c = await open('/close-node');
          c.ws.close(code, `closing with ${code} ✓`);
          const r = await withTimeout(c.closedP, 10000, `close ${code}`);
          if (r.code !== code) failures.push(`${code}: echo ${r.code}`);
        } catch (e) {
          failures.push(`${code}: ${e.message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    return failures.length ? `${failures.length} of ${codes.length} failed; first: ${failures.slice(0, 5).join('; ')}` : null;
  }, 120000);
  await idle;
  await check('server closes with 4002 + reason, we see it', async () => {
    const c = await open('/close-me/4002');
    const r = await withTimeout(c.closedP, 10000, 'close');
    return r.code === 4002 && r.reason === 'server says bye' ? null : `got ${r.code} ${JSON.stringify(r.reason)}`;
  });
}

(async () => {
  for (const step of [echoChecks, fragmentChecks, pingChecks, subprotocolChecks, rejectCheck, closeCodeChecks]) {
    try {
      await step();
    } catch (e) {
      require('./common').report(`${step.name}`, `${e.message}`);
    }
  }
  process.exit(exitCode());
})();
