//! ws-proto on a bare-metal Cortex-M3 (QEMU's `lm3s6965evb`), with no allocator.
//!
//! A client and a server [`ws_proto::Connection`] talk through in-memory pipes: the opening
//! handshake (feature `handshake`, on by default), text, binary, a fragmented message with a
//! ping in the middle, a keepalive ping driven by a millisecond counter, a pong timeout, and
//! the close handshake started by either side. Every result is checked; the program prints
//! `bare-metal: N passed, 0 failed` and exits with status 0 through semihosting, or prints
//! what failed and exits with status 1. Buffers are static; randomness comes from a small
//! deterministic generator and time from a counter, as ws-proto's sans-IO design intends.
//! All ws-proto calls are in [`ws`].
#![no_std]
#![no_main]

mod host;
mod inbox;
mod pipe;
mod rng;
mod ws;

use cortex_m_rt::entry;
use host::Host;
use inbox::Kind;
use pipe::Pipe;
use rng::{Clock, Rng};
use ws::{CLOSE_TIMEOUT, Out, PONG_TIMEOUT, Peer, Phase};

/// Keepalive interval of the server in the keepalive tests (ms).
const PING_EVERY: u64 = 1000;

/// The two pipes between a client and a server.
struct Wires {
    c2s: &'static mut Pipe,
    s2c: &'static mut Pipe,
}

#[entry]
fn main() -> ! {
    // cortex-m-rt hands these to `main` as `&'static mut`, once: static buffers, no heap.
    static mut CLIENT: Slot = Slot::Empty;
    static mut SERVER: Slot = Slot::Empty;
    static mut C2S: Pipe = Pipe::new();
    static mut S2C: Pipe = Pipe::new();

    let mut host = Host::new();
    host.put("ws-proto on a Cortex-M3 (no allocator)\n");
    ws::report_sizes(&mut host);

    let mut rng = Rng::new(0x0005_eed0_f0a1_1ce5);
    let mut clock = Clock::new();
    let mut wires = Wires { c2s: C2S, s2c: S2C };

    // Pair 1: every kind of message, keepalive, then the client closes.
    handshake(&mut host, &mut rng, &mut wires);
    let seed = rng.next_u64();
    let client = install(
        &mut host,
        &mut *CLIENT,
        Peer::client(None, seed, clock.now()),
    );
    let server = install(
        &mut host,
        &mut *SERVER,
        Peer::server(Some(PING_EVERY), clock.now()),
    );
    messages(&mut host, client, server, &mut wires);
    keepalive(&mut host, client, server, &mut wires, &mut clock);
    close_from_client(&mut host, client, server, &mut wires, &mut clock);
    host.put("ok: pair 1 (messages, keepalive, client closes)\n");

    // Pair 2, in the same static memory: the server closes.
    handshake(&mut host, &mut rng, &mut wires);
    let seed = rng.next_u64();
    let client = install(
        &mut host,
        &mut *CLIENT,
        Peer::client(None, seed, clock.now()),
    );
    let server = install(&mut host, &mut *SERVER, Peer::server(None, clock.now()));
    close_from_server(&mut host, client, server, &mut wires);
    host.put("ok: pair 2 (server closes)\n");

    // Pair 3: a silent client; the server's keepalive pong times out.
    let seed = rng.next_u64();
    let client = install(
        &mut host,
        &mut *CLIENT,
        Peer::client(None, seed, clock.now()),
    );
    let server = install(
        &mut host,
        &mut *SERVER,
        Peer::server(Some(PING_EVERY), clock.now()),
    );
    pong_timeout(&mut host, client, server, &mut wires, &mut clock);
    host.put("ok: pair 3 (pong timeout)\n");

    host.pass()
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // No formatting of the panic message: `core::fmt` would cost flash.
    Host::new().fail("panic")
}

/// Static room for a connection. Not an `Option`: `None` would be stored in a niche, making the
/// whole static non-zero, so it would sit in `.data` and take its size in flash as well; an
/// explicit zero tag keeps the slot in `.bss`.
/// (Its size is the point: the connection lives here, not on a heap.)
#[allow(clippy::large_enum_variant)]
#[repr(u8)]
enum Slot {
    Empty = 0,
    Full(Peer),
}

/// Puts a new connection into its static slot.
fn install<'a, E>(host: &mut Host, slot: &'a mut Slot, peer: Result<Peer, E>) -> &'a mut Peer {
    *slot = Slot::Full(host.ok(peer, "connection settings"));
    match slot {
        Slot::Full(peer) => peer,
        Slot::Empty => host.fail("slot"),
    }
}

#[cfg(feature = "handshake")]
fn handshake(host: &mut Host, rng: &mut Rng, w: &mut Wires) {
    use ws::handshake as hs;
    let key = host.ok(hs::request(rng.bytes16(), w.c2s), "write_request");
    host.figure("request head", w.c2s.len(), " bytes");
    let seen = host.ok(
        hs::accept(w.c2s, w.s2c, 16),
        "parse_request and write_accept",
    );
    let seen = host.some(seen, "HeadScanner finds the request head");
    host.check(
        seen.head_len > 0 && w.c2s.len() == 0,
        "the head is all the client sent",
    );
    host.check(seen.target_ok, "the server sees the path and host sent");
    host.check(seen.protocol_ok, "the server sees the subprotocol offered");
    host.figure("response head", w.s2c.len(), " bytes");
    let mut wrong = key;
    wrong[0] ^= 0x20;
    let refused = hs::check_response(w.s2c, &wrong, 7);
    host.check(
        refused.as_ref().is_err_and(hs::is_bad_accept),
        "parse_response refuses the accept key of another key",
    );
    let status = host.ok(hs::check_response(w.s2c, &key, 7), "parse_response");
    host.check(
        status == Some(101),
        "101 with the accept key and subprotocol",
    );
    host.check(w.s2c.len() == 0, "the response is consumed");
    host.put("ok: handshake\n");
}

#[cfg(not(feature = "handshake"))]
fn handshake(_: &mut Host, _: &mut Rng, _: &mut Wires) {}

/// Text and binary both ways, and a fragmented text message with a ping between fragments.
fn messages(host: &mut Host, client: &mut Peer, server: &mut Peer, w: &mut Wires) {
    const TEXT: &[u8] = "hello from a Cortex-M3 — ünïcödé".as_bytes();
    host.ok(
        ws::send(client, Out::Text, TEXT, w.c2s),
        "client sends text",
    );
    let all = host.ok(ws::feed(server, w.c2s, 5), "server reads text");
    host.check(
        all && server.inbox.message_is(Kind::Text, TEXT),
        "server gets the text",
    );
    host.ok(
        ws::send(server, Out::Text, TEXT, w.s2c),
        "server sends text",
    );
    let all = host.ok(ws::feed(client, w.s2c, 3), "client reads text");
    host.check(
        all && client.inbox.message_is(Kind::Text, TEXT),
        "client gets the text",
    );

    // 200 bytes: past 125, so the 16-bit length form.
    let mut bin = [0u8; 200];
    for (i, b) in bin.iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    host.ok(
        ws::send(client, Out::Binary, &bin, w.c2s),
        "client sends binary",
    );
    host.check(
        w.c2s.len() == 2 + 2 + 4 + bin.len(),
        "masked frame with a 16-bit length",
    );
    let all = host.ok(ws::feed(server, w.c2s, 64), "server reads binary");
    host.check(
        all && server.inbox.message_is(Kind::Binary, &bin),
        "server gets the binary",
    );
    host.ok(
        ws::send(server, Out::Binary, &bin, w.s2c),
        "server sends binary",
    );
    host.check(
        w.s2c.len() == 2 + 2 + bin.len(),
        "unmasked frame with a 16-bit length",
    );
    let all = host.ok(ws::feed(client, w.s2c, 64), "client reads binary");
    host.check(
        all && client.inbox.message_is(Kind::Binary, &bin),
        "client gets the binary",
    );

    // "fragmént" in three frames, the "é" split between two, and a ping after the first.
    host.ok(
        ws::send(client, Out::First(Kind::Text), b"frag", w.c2s),
        "first fragment",
    );
    host.ok(
        ws::feed(server, w.c2s, 3),
        "server reads the first fragment",
    );
    host.check(
        server.inbox.in_message(),
        "message in progress after the first fragment",
    );
    host.ok(
        ws::send(client, Out::Ping, b"hi", w.c2s),
        "client sends a ping",
    );
    host.ok(ws::feed(server, w.c2s, 1), "server reads the ping");
    host.check(
        server.inbox.pings == 1 && server.inbox.ctrl() == b"hi",
        "server gets the ping",
    );
    let frames = ws::flush(server, w.s2c);
    host.check(frames == Some(1), "server answers the ping");
    host.ok(ws::feed(client, w.s2c, 1), "client reads the pong");
    host.check(
        client.inbox.pongs == 1 && client.inbox.ctrl() == b"hi",
        "client gets the pong",
    );
    host.ok(
        ws::send(client, Out::Next, b"m\xc3", w.c2s),
        "middle fragment",
    );
    host.ok(
        ws::send(client, Out::Last, b"\xa9nt", w.c2s),
        "last fragment",
    );
    host.ok(ws::feed(server, w.c2s, 4), "server reads the rest");
    host.check(
        server.inbox.message_is(Kind::Text, "fragmént".as_bytes()) && server.inbox.chunks >= 3,
        "server gets the fragmented text",
    );
    host.put("ok: text, binary, fragmented, ping/pong\n");
}

/// The server's keepalive ping goes out when the counter reaches the interval; the client's
/// automatic pong comes back and resets the pong deadline.
fn keepalive(
    host: &mut Host,
    client: &mut Peer,
    server: &mut Peer,
    w: &mut Wires,
    clock: &mut Clock,
) {
    let start = clock.now();
    let next = host.ok(ws::drive(server, start), "server timers");
    host.check(
        next == Some(start + PING_EVERY),
        "keepalive ping due after the interval",
    );
    let next = host.ok(ws::drive(client, start), "client timers");
    host.check(next.is_none(), "client without keepalive has no deadline");
    clock.set(start + PING_EVERY - 1);
    host.ok(ws::drive(server, clock.now()), "server timers");
    host.check(
        ws::flush(server, w.s2c) == Some(0),
        "no ping before the interval",
    );
    clock.set(start + PING_EVERY);
    let next = host.ok(ws::drive(server, clock.now()), "server timers");
    host.check(
        next == Some(clock.now() + PONG_TIMEOUT),
        "pong deadline after the ping",
    );
    host.check(
        ws::flush(server, w.s2c) == Some(1),
        "keepalive ping at the interval",
    );
    host.ok(
        ws::feed(client, w.s2c, 3),
        "client reads the keepalive ping",
    );
    host.check(
        client.inbox.pings == 1 && client.inbox.ctrl() == 1u64.to_be_bytes(),
        "client gets ping 1",
    );
    host.check(
        ws::flush(client, w.c2s) == Some(1),
        "client answers the keepalive ping",
    );
    host.ok(ws::feed(server, w.c2s, 5), "server reads the pong");
    host.check(
        server.inbox.pongs == 1 && server.inbox.ctrl() == 1u64.to_be_bytes(),
        "server gets pong 1",
    );
    clock.set(clock.now() + 10);
    let next = host.ok(ws::drive(server, clock.now()), "server timers");
    host.check(
        next == Some(start + 2 * PING_EVERY),
        "the pong clears its deadline",
    );
    host.put("ok: keepalive\n");
}

/// The client closes with 1000; the server echoes; both end closed.
fn close_from_client(
    host: &mut Host,
    client: &mut Peer,
    server: &mut Peer,
    w: &mut Wires,
    clock: &mut Clock,
) {
    let now = clock.now();
    host.ok(ws::drive(client, now), "client timers");
    host.ok(ws::close(client, 1000, "done"), "client closes");
    host.check(ws::phase(client) == Phase::Closing, "client closing");
    host.check(
        ws::send(client, Out::Text, b"late", w.c2s).is_err(),
        "no data after close",
    );
    let next = host.ok(ws::drive(client, now), "client timers");
    host.check(next == Some(now + CLOSE_TIMEOUT), "close timeout armed");
    host.check(ws::flush(client, w.c2s) == Some(1), "client's close frame");
    host.ok(ws::feed(server, w.c2s, 4), "server reads the close");
    host.check(
        server.inbox.close == Some(1000) && server.inbox.ctrl() == b"done",
        "server gets 1000",
    );
    host.check(
        ws::phase(server) == Phase::Closing,
        "server closing while its answer is queued",
    );
    host.check(ws::flush(server, w.s2c) == Some(1), "server's echo");
    host.check(
        ws::phase(server) == Phase::Closed && ws::can_shut(server),
        "server shuts the transport first",
    );
    host.ok(ws::feed(client, w.s2c, 2), "client reads the echo");
    host.check(
        client.inbox.close == Some(1000) && client.inbox.ctrl().is_empty(),
        "client gets 1000 back",
    );
    host.check(
        ws::phase(client) == Phase::Closed && !ws::can_shut(client),
        "client closed, waiting for the server's EOF",
    );
    let next = host.ok(ws::drive(client, now), "client timers");
    host.check(
        next == Some(now + CLOSE_TIMEOUT),
        "the wait for EOF has a deadline",
    );
    host.ok(ws::eof(client), "client sees the server's EOF");
    host.check(ws::can_shut(client), "client shuts its side");
    let next = host.ok(ws::drive(client, now + 1), "client timers");
    host.check(next.is_none(), "no deadline once terminated");
}

/// The server sends a message and closes with 1000; the client echoes; both end closed.
fn close_from_server(host: &mut Host, client: &mut Peer, server: &mut Peer, w: &mut Wires) {
    host.ok(
        ws::send(server, Out::Text, b"bye soon", w.s2c),
        "server sends text",
    );
    host.ok(ws::close(server, 1000, "bye"), "server closes");
    host.check(ws::phase(server) == Phase::Closing, "server closing");
    host.check(ws::flush(server, w.s2c) == Some(1), "server's close frame");
    host.ok(ws::feed(client, w.s2c, 6), "client reads text and close");
    host.check(
        client.inbox.message_is(Kind::Text, b"bye soon"),
        "client gets the text",
    );
    host.check(
        client.inbox.close == Some(1000) && client.inbox.ctrl() == b"bye",
        "client gets 1000",
    );
    host.check(ws::phase(client) == Phase::Closing, "client answering");
    host.check(ws::flush(client, w.c2s) == Some(1), "client's echo");
    host.check(
        ws::phase(client) == Phase::Closed && !ws::can_shut(client),
        "client waits for the server's EOF",
    );
    host.ok(ws::feed(server, w.c2s, 1), "server reads the echo");
    host.check(server.inbox.close == Some(1000), "server gets 1000 back");
    host.check(
        ws::phase(server) == Phase::Closed && ws::can_shut(server),
        "server closed and shuts first",
    );
    host.ok(ws::eof(client), "client sees the server's EOF");
    host.check(ws::can_shut(client), "client may shut the transport");
}

/// Nothing answers the server's keepalive ping: the pong deadline fails the connection,
/// exactly at the deadline and not before.
fn pong_timeout(
    host: &mut Host,
    client: &mut Peer,
    server: &mut Peer,
    w: &mut Wires,
    clock: &mut Clock,
) {
    let start = clock.now();
    host.ok(ws::drive(server, start), "server timers");
    host.ok(ws::drive(server, start + PING_EVERY), "server timers");
    host.check(ws::flush(server, w.s2c) == Some(1), "keepalive ping");
    clock.set(start + PING_EVERY + PONG_TIMEOUT - 1);
    host.ok(
        ws::drive(server, clock.now()),
        "open just before the pong deadline",
    );
    clock.set(start + PING_EVERY + PONG_TIMEOUT);
    let failed = ws::drive(server, clock.now());
    host.check(
        failed.as_ref().is_err_and(ws::is_pong_timeout),
        "pong timeout at the deadline",
    );
    host.check(
        ws::phase(server) == Phase::Closed,
        "server closed by the timeout",
    );
    host.check(
        ws::flush(server, w.s2c) == Some(0),
        "no close frame to a peer that is gone",
    );
    let unread = w.s2c.len();
    w.s2c.consume(unread);
    host.check(
        ws::phase(client) == Phase::Open,
        "the silent client knows nothing",
    );
}
