//! What keeping no compression state per connection costs: ratio and CPU of the default mode
//! (every message compressed on its own, by a shared compressor, and inflated by a state lent
//! from a pool) against context takeover (a compressor and a decompressor per connection, each
//! keeping the window of the messages before).
//!
//! `cargo run --release -p ws-proto --features deflate --example deflate_modes [-- --size N]`
//!
//! A stream of JSON-like ticks (`--size` bytes each, default 250) goes from a server to a
//! client and is checked on arrival; prints bytes on the wire per message (and the ratio) and
//! microseconds per message to compress and to inflate.

use std::time::{Duration, Instant};

use ws_proto::deflate::{self, Compressor, DeflateConfig, Negotiated};
use ws_proto::{Config, Connection, Event, OpCode};

fn agree(server: &DeflateConfig) -> (Negotiated, Negotiated) {
    let s = deflate::negotiate_server(["permessage-deflate; client_max_window_bits"], server)
        .expect("accepted");
    let mut answer = [0u8; 256];
    let n = deflate::write_response(&s, &mut answer).expect("answer");
    let answer = std::str::from_utf8(&answer[..n]).expect("ascii");
    let c = deflate::negotiate_client([answer], &DeflateConfig::DEFAULT)
        .expect("valid")
        .expect("agreed");
    (s, c)
}

fn ticks(count: usize, size: usize) -> Vec<String> {
    let mut x: u32 = 7;
    (0..count)
        .map(|i| {
            let mut t = String::new();
            while t.len() < size {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                t.push_str(&format!(
                    "{{\"seq\":{i},\"sym\":\"AB{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"size\":{}}}",
                    x % 7,
                    100 + x % 50,
                    x % 100,
                    101 + x % 50,
                    (x >> 8) % 100,
                    (x >> 4) % 1000
                ));
            }
            t.truncate(size);
            t
        })
        .collect()
}

struct Figures {
    wire: usize,
    compress: Duration,
    inflate: Duration,
}

fn run(messages: &[String], server_config: DeflateConfig) -> Figures {
    let cfg = Config::DEFAULT.with_ping_interval(None);
    let (s, c) = agree(&server_config);
    let mut server = Connection::server(cfg, 0).expect("server");
    server.set_deflate(s);
    let mut client = Connection::client(cfg, 1, 0).expect("client");
    client.set_deflate(c);
    let shared = server.sender().shared_compression().is_some();
    let mut tx = server.take_sender();
    let mut compressor = Compressor::new(2);
    let mut f = Figures {
        wire: 0,
        compress: Duration::ZERO,
        inflate: Duration::ZERO,
    };
    let mut wire = Vec::new();
    for m in messages {
        wire.clear();
        let t = Instant::now();
        let c = shared.then_some(&mut compressor);
        tx.encode_message_with(OpCode::Text, m.as_bytes(), &mut wire, c)
            .expect("encode");
        f.compress += t.elapsed();
        f.wire += wire.len();
        let t = Instant::now();
        let mut got = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let (n, ev) = client.receive(0, &mut wire[pos..]).expect("receive");
            pos += n;
            if let Some(Event::Data { payload, .. }) = ev {
                got.extend_from_slice(payload);
            }
        }
        f.inflate += t.elapsed();
        assert_eq!(got, m.as_bytes());
    }
    f
}

fn main() {
    let size = std::env::args()
        .skip_while(|a| a != "--size")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(250);
    let count = 20_000;
    let messages = ticks(count, size);
    println!("{count} JSON-like messages of {size} bytes, server to client, level 2:");
    println!("mode                          wire B/msg  ratio  compress us/msg  inflate us/msg");
    for (name, config) in [
        ("default (no state kept)", DeflateConfig::DEFAULT),
        ("context takeover", DeflateConfig::CONTEXT_TAKEOVER),
    ] {
        // Once to warm up, once measured.
        run(&messages[..1000], config);
        let f = run(&messages, config);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / count as f64;
        println!(
            "{name:<30}{:>10.1}  {:>5.2}  {:>15.2}  {:>14.2}",
            f.wire as f64 / count as f64,
            f.wire as f64 / (count * size) as f64,
            per(f.compress),
            per(f.inflate)
        );
    }
}
