'use strict';
// Node `ws` echo server for the ws-tokio interop_client.
//
// usage: node node_server.js [PORT] [--deflate JSON]
//        (PORT 0, the default: any free port; prints `LISTENING 127.0.0.1:PORT`)
//
// Echoes text and binary messages. Text commands (see examples/interop_client.rs):
//   !frag binary COUNT SIZE / !frag text COUNT REPS   reply with a fragmented message, a ping
//                                                     between the first two fragments; text is
//                                                     cut at byte offsets, so a UTF-8 character
//                                                     may be split across fragments
//   !ping PAYLOAD                                     ping; after the pong: `pong-received:PAYLOAD`
//   !close CODE REASON                                close with CODE and REASON
// Rejects /reject with 403; subprotocols chat and superchat (the first one the client offers).
// --deflate JSON: ws's `perMessageDeflate` option, e.g. `true` or `{"threshold":0}`; the default
// is `false` (compression declined). With `true`, ws compresses messages of 1024 bytes or more
// (for a fragmented message: when its first fragment is that long).

const { WebSocketServer } = require('ws');
const { pattern } = require('./common');

const TEXT_UNIT = 'héllo wörld ✓ 😀 ';
const SUPPORTED = ['chat', 'superchat'];

const args = process.argv.slice(2);
let perMessageDeflate = false;
if (args.includes('--deflate')) {
  perMessageDeflate = JSON.parse(args[args.indexOf('--deflate') + 1]);
  args.splice(args.indexOf('--deflate'), 2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(args[0] || 0),
  perMessageDeflate,
  maxPayload: 64 << 20,
  handleProtocols: (offered) => {
    for (const p of offered) if (SUPPORTED.includes(p)) return p;
    return false;
  },
  verifyClient: (info, cb) => {
    if (info.req.url === '/reject' || info.req.url.startsWith('/reject/')) cb(false, 403, 'rejected by node_server');
    else cb(true);
  },
});

wss.on('listening', () => console.log(`LISTENING 127.0.0.1:${wss.address().port}`));

function sendFragmented(ws, data, binary, count) {
  const n = data.length;
  for (let i = 0; i < count; i++) {
    const part = data.subarray(Math.floor((i * n) / count), Math.floor(((i + 1) * n) / count));
    ws.send(part, { binary, fin: i === count - 1 });
    if (i === 0 && count > 1) ws.ping('between-fragments');
  }
}

wss.on('connection', (ws) => {
  const waitingPongs = new Set();
  ws.on('pong', (d) => {
    const p = d.toString();
    if (waitingPongs.delete(p)) ws.send(`pong-received:${p}`);
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return ws.send(data, { binary: true });
    const msg = data.toString();
    const cmd = msg.split(' ');
    if (cmd[0] === '!frag' && cmd.length === 4) {
      const count = Number(cmd[2]);
      const n = Number(cmd[3]);
      if (cmd[1] === 'binary') sendFragmented(ws, pattern(n), true, count);
      else sendFragmented(ws, Buffer.from(TEXT_UNIT.repeat(n), 'utf8'), false, count);
    } else if (cmd[0] === '!ping') {
      const payload = msg.slice('!ping '.length);
      waitingPongs.add(payload);
      ws.ping(payload);
    } else if (cmd[0] === '!close') {
      ws.close(Number(cmd[1]), cmd.slice(2).join(' '));
    } else {
      ws.send(msg);
    }
  });
  ws.on('error', (e) => console.log(`connection error: ${e.message}`));
});
