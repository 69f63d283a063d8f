//! Prints compress and inflate throughput of the permessage-deflate codec for 64 KiB of text.
//!
//! `cargo run --release -p ws-proto --features deflate --example deflate_speed`

use std::time::Instant;

use ws_proto::deflate::{self, DeflateConfig};
use ws_proto::{Config, Connection, OpCode};

fn main() {
    let level = std::env::var("LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(DeflateConfig::DEFAULT.level);
    let dc = DeflateConfig::DEFAULT.with_level(level);
    let n = deflate::negotiate_server(["permessage-deflate"], &dc).unwrap();
    let mut text = String::new();
    let mut x: u32 = 1;
    while text.len() < 64 << 10 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        text.push_str(&format!(
            "{{\"id\":{},\"price\":{}.{},\"sym\":\"AB{}\"}},",
            x % 1000,
            x % 97,
            x % 100,
            x % 7
        ));
    }
    if std::env::args().any(|a| a == "--hex") {
        text = (0..64 << 10)
            .map(|i| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223 + i);
                b"0123456789abcdef"[(x >> 28) as usize] as char
            })
            .collect();
    }
    let cfg = Config::DEFAULT.with_ping_interval(None);
    let mut server = Connection::server(cfg, 0).unwrap();
    server.set_deflate(n);
    let mut client = Connection::client(cfg, 1, 0).unwrap();
    client.set_deflate(n);
    let rounds = 200;
    let mut wire = Vec::new();
    let (mut c, mut d) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let mut got = 0;
    let mut wire_len = 0;
    for _ in 0..rounds {
        wire.clear();
        let t = Instant::now();
        server
            .encode_message(OpCode::Text, text.as_bytes(), &mut wire)
            .unwrap();
        c += t.elapsed();
        wire_len += wire.len();
        let t = Instant::now();
        let mut pos = 0;
        while pos < wire.len() {
            let (used, ev) = client.receive(0, &mut wire[pos..]).unwrap();
            pos += used;
            if let Some(ws_proto::Event::Data { payload, .. }) = ev {
                got += payload.len();
            }
        }
        d += t.elapsed();
    }
    let ratio = wire_len as f64 / (text.len() * rounds) as f64;
    assert_eq!(got, text.len() * rounds);
    let mb = (text.len() * rounds) as f64 / 1e6;
    println!("64 KiB text, level {level}, ratio {ratio:.3}");
    println!("compress   {:.0} MB/s", mb / c.as_secs_f64());
    println!("decompress {:.0} MB/s", mb / d.as_secs_f64());
}
