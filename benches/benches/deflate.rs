//! permessage-deflate throughput: compressing and inflating 64 KiB messages of plain text and of
//! JSON-like data through a connection pair (context takeover, level 1).

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use ws_proto::deflate::{self, DeflateConfig};
use ws_proto::{Config, Connection, Event, OpCode};

fn json_like(len: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut x: u32 = 7;
    while out.len() < len {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        out.push_str(&format!(
            "{{\"id\":{},\"symbol\":\"S{}\",\"price\":{}.{:02},\"side\":\"{}\"}},",
            x % 100_000,
            x % 50,
            x % 1000,
            x % 100,
            if x & 1 == 0 { "buy" } else { "sell" }
        ));
    }
    out.truncate(len);
    out.into_bytes()
}

fn text(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "protocol",
        "frame",
        "message",
        "server",
        "client",
        "close",
        "ping",
        "data",
        "window",
        "context",
        "compression",
        "handshake",
        "and",
        "of",
        "a",
        "to",
        "is",
    ];
    let mut out = String::new();
    let mut x: u32 = 11;
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.push_str(WORDS[(x >> 16) as usize % WORDS.len()]);
        out.push(if x.is_multiple_of(13) { '\n' } else { ' ' });
    }
    out.truncate(len);
    out.into_bytes()
}

fn pair() -> (Connection, Connection) {
    let params = deflate::negotiate_server(["permessage-deflate"], &DeflateConfig::DEFAULT)
        .expect("negotiated");
    let cfg = Config::DEFAULT.with_ping_interval(None);
    let mut server = Connection::server(cfg, 0).expect("server");
    server.set_deflate(params);
    let mut client = Connection::client(cfg, 42, 0).expect("client");
    client.set_deflate(params);
    (server, client)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("permessage-deflate 64 KiB");
    for (name, data) in [("text", text(64 << 10)), ("json", json_like(64 << 10))] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let (mut server, mut client) = pair();
        let mut wire = Vec::with_capacity(data.len() + 64);
        g.bench_with_input(BenchmarkId::new("compress", name), &data, |b, data| {
            b.iter(|| {
                wire.clear();
                server
                    .encode_message(OpCode::Text, black_box(data), &mut wire)
                    .expect("encode");
            })
        });
        // Inflating needs the sender's context in step: compress and inflate each message, and
        // subtract the compress time measured above to read the inflate cost.
        let (mut server, _) = pair();
        g.bench_with_input(
            BenchmarkId::new("compress+inflate", name),
            &data,
            |b, data| {
                b.iter(|| {
                    wire.clear();
                    server
                        .encode_message(OpCode::Text, data, &mut wire)
                        .expect("encode");
                    let mut pos = 0;
                    let mut got = 0;
                    while pos < wire.len() {
                        let (used, ev) = client.receive(0, &mut wire[pos..]).expect("receive");
                        pos += used;
                        if let Some(Event::Data { payload, .. }) = ev {
                            got += payload.len();
                        }
                    }
                    assert_eq!(got, data.len());
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
