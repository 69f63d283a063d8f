'use strict';
// Node `ws` client against the ws-tokio interop_server.
//
// usage: node node_client.js ws://127.0.0.1:PORT [--close-codes all|sample]
//                             [--deflate JSON] [--expect-ext VALUE|none] [--random-size N]
//
// Prints one `PASS name` / `FAIL name: detail` line per check; exits 1 if any failed.
// The server must run with `--protocols chat,superchat` and a short `--ping-interval-ms`.
//
// --deflate: ws's `perMessageDeflate` client option as JSON, e.g. `true` (offers
// `permessage-deflate; client_max_window_bits`; ws then compresses messages of 1024 bytes or
// more) or `{"serverMaxWindowBits":10}`; the default is `false` (no offer). --expect-ext: every
// connection must get this Sec-WebSocket-Extensions response (compared as a set of parameters;
// `none`: no header). With compression on, compression checks run too (the size of the server's
// echoes on the wire is measured), the last one with random binary of --random-size bytes
// (default 16 MiB).

const crypto = require('crypto');
const WebSocket = require('ws');
const common = require('./common');

const { report, pattern, sleep, exitCode, withTimeout } = common;

const args = process.argv.slice(2);
const base = args[0].replace(/\/+$/, '');
const allCodes = !(args.includes('--close-codes') && args[args.indexOf('--close-codes') + 1] === 'sample');
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const perMessageDeflate = JSON.parse(opt('--deflate', 'false'));
const expectExtArg = opt('--expect-ext', null);
const expectExt = expectExtArg === null ? null : expectExtArg === 'none' ? '' : expectExtArg;
const randomSize = Number(opt('--random-size', String(16 << 20)));
// Time limit of one check: 30 s, 120 s with compression (compressing 16 MiB takes a while in a
// debug build of the server).
const check = (name, fn, ms) => common.check(name, fn, ms || (perMessageDeflate ? 120000 : 30000));

// An extension header value as "name; sorted parameters", for comparison.
function extKey(v) {
  const parts = v.split(';').map((p) => p.split('=').map((x) => x.trim().replace(/^"|"$/g, '').toLowerCase()).join('='));
  return [parts[0], ...parts.slice(1).sort()].join('; ');
}

function extParam(v, name) {
  for (const p of (v || '').split(';').slice(1)) {
    const [k, val] = p.split('=');
    if (k.trim().toLowerCase() === name) return (val || '').trim().replace(/^"|"$/g, '');
  }
  return null;
}

// A connection with a message queue, so that tests can `await next()`.
function open(path, protocols, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path, protocols || [], {
      perMessageDeflate,
      maxPayload: 64 << 20,
      handshakeTimeout: 10000,
      ...opts,
    });
    const queue = [];
    const waiters = [];
    const c = { ws, pings: [], pongs: [], closed: null, ext: null };
    // Bytes received from the server so far (compressed frames included).
    c.wireIn = () => (ws._socket ? ws._socket.bytesRead : 0);
    ws.on('upgrade', (res) => {
      const v = res.headers['sec-websocket-extensions'];
      c.ext = v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v;
    });
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
    ws.on('open', () => {
      if (expectExt !== null && (c.ext && expectExt ? extKey(c.ext) !== extKey(expectExt) : c.ext !== expectExt)) {
        ws.terminate();
        reject(new Error(`${path}: Sec-WebSocket-Extensions ${JSON.stringify(c.ext || '(none)')}, expected ${JSON.stringify(expectExt || '(none)')}`));
      } else {
        resolve(c);
      }
    });
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

function jsonText(n) {
  // About n bytes of JSON: an array of similar records (highly compressible).
  const parts = [];
  let size = 2;
  for (let i = 0; size < n; i++) {
    const rec = `{"id":${i},"name":"user-${i}","email":"user${i}@example.com","active":true,"tags":["alpha","beta"],"score":${i % 97}},`;
    parts.push(rec);
    size += rec.length;
  }
  return `[${parts.join('')}`.slice(0, n - 1) + ']';
}

function farRepeats(n) {
  // A random 5000-byte block repeated: only a window of 8 KiB or more can shrink it.
  const block = crypto.randomBytes(5000);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 5000) block.copy(b, i, 0, Math.min(5000, n - i));
  return b;
}

function wireCheck(len, took, [kind, arg]) {
  const ok = kind === 'below' ? took < Math.floor(len / arg) : took >= Math.floor((len * 9) / 10);
  return ok ? null : `${took} bytes on the wire for ${len} bytes (${((took * 100) / Math.max(len, 1)).toFixed(2)}%)`;
}

function describeRule([kind, arg]) {
  return kind === 'below' ? `fewer than 1/${arg} of its size` : 'at least 90% of its size (not shrunk)';
}

async function deflateChecks() {
  const c = await open('/deflate-node');
  report(
    `permessage-deflate agreed: the server answered ${JSON.stringify(c.ext || '(none)')}`,
    c.ext && extKey(c.ext).startsWith('permessage-deflate') ? null : 'no permessage-deflate',
  );
  report(
    'ws enabled its PerMessageDeflate extension',
    c.ws._extensions && c.ws._extensions['permessage-deflate'] ? null : `extensions ${JSON.stringify(Object.keys(c.ws._extensions || {}))}`,
  );
  const bits = Number(extParam(c.ext, 'server_max_window_bits') || 15);
  // The server's window, less zlib's 262-byte lookahead margin, against a 5000-byte gap.
  const far = (1 << bits) - 262 > 5000 ? ['below', 10] : ['about'];
  const big = 16 << 20;
  const cases = [
    ['text 0 B', '', null],
    ['text 125 B', 'a short text message, compressible: '.repeat(4).slice(0, 125), null],
    ['text 64 KiB JSON', jsonText(64 << 10), ['below', 4]],
    ['binary 0 B', Buffer.alloc(0), null],
    ['binary 125 B random', crypto.randomBytes(125), null],
    ['binary 64 KiB random', crypto.randomBytes(64 << 10), null],
    ['text 16 MiB JSON (highly compressible)', jsonText(big), ['below', 5]],
    ['binary 16 MiB pattern (compressible)', pattern(big), ['below', 2]],
    [
      `binary 1 MiB of a 5000-byte random block repeated (server window ${bits} bits: ${far[0] === 'below' ? 'must shrink' : 'must not shrink'})`,
      farRepeats(1 << 20),
      far,
    ],
  ];
  for (const [name, msg, rule] of cases) {
    const before = c.wireIn();
    if (!(await check(`deflate echo ${name}`, () => expectEcho(c, msg)))) {
      c.ws.terminate();
      return;
    }
    const took = c.wireIn() - before;
    console.log(`  (${name}: ${msg.length} bytes; the server's echo took ${took} bytes on the wire)`);
    if (rule) report(`deflate wire: the server's echo of ${name} came in ${describeRule(rule)}`, wireCheck(msg.length, took, rule));
  }
  await check('deflate: fragmented text, 4 MiB JSON in 14 fragments (ws compresses them)', () => {
    const data = Buffer.from(jsonText(4 << 20));
    const n = Math.ceil(data.length / 300000);
    for (let i = 0; i < n; i++) c.ws.send(data.subarray(i * 300000, (i + 1) * 300000), { binary: false, fin: i === n - 1 });
    return expectEcho(c, null, data.toString());
  });
  await check('deflate: fragmented binary (8 x 25000 B random) with a ping between fragments', () => {
    const data = crypto.randomBytes(200000);
    for (let i = 0; i < 8; i++) {
      c.ws.send(data.subarray(i * 25000, (i + 1) * 25000), { binary: true, fin: i === 7 });
      if (i === 0) c.ws.ping('between-compressed-fragments');
    }
    return expectEcho(c, null, data);
  });
  await check('deflate: close 4000 + reason, the server echoes it', async () => {
    c.ws.close(4000, 'compressed connection done ✓');
    const r = await withTimeout(c.closedP, 10000, 'close');
    return r.code === 4000 ? null : `close echo ${r.code}`;
  });
  // Last, on its own connection: deflate makes incompressible data a little longer, so the
  // compressed frame is larger than the message.
  await check(`deflate echo binary ${randomSize} B random (incompressible), own connection`, async () => {
    const r = await open('/deflate-random-node');
    const msg = crypto.randomBytes(randomSize);
    const before = r.wireIn();
    const err = await expectEcho(r, msg);
    if (err) {
      r.ws.terminate();
      return `sent ${describe({ data: msg, isBinary: true })} (compressed by ws): ${err}`;
    }
    console.log(`  (binary ${randomSize} B random: the server's echo took ${r.wireIn() - before} bytes on the wire)`);
    return closeNormally(r);
  });
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
  const deflate = perMessageDeflate ? [deflateChecks] : [];
  for (const step of [echoChecks, ...deflate, fragmentChecks, pingChecks, subprotocolChecks, rejectCheck, closeCodeChecks]) {
    try {
      await step();
    } catch (e) {
      require('./common').report(`${step.name}`, `${e.message}`);
    }
  }
  process.exit(exitCode());
})();
