//! The key micro-bench figures as a markdown table, without criterion, for the README.
//!
//! `cargo run --release -p benches --bin micro_report [-- --millis 500]`
//!
//! Each figure is the best of 30 timed batches (each batch repeats the operation enough times
//! to take roughly `millis / 30`): the minimum is the figure least disturbed by other work on
//! a shared machine. The operations are the ones `benches/proto.rs` measures (see
//! `benches::micro`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::cli::Args;
use benches::micro::{
    CHROME_REQUEST, SIZE_64K, ascii_text, headers_to_decode, masked_frame, mixed_text,
    random_bytes, receive_all, server_connection, server_handshake, server_header,
    validate_streaming,
};
use ws_proto::frame::FrameHeader;
use ws_proto::mask::{apply_mask, copy_masked};

/// Nanoseconds per call of `f`: the best batch.
fn time_ns(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Calibrate: how many calls fill a batch.
    let batches = 30u32;
    let target = budget / batches;
    let mut n: u64 = 1;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let e = t.elapsed();
        if e >= target / 4 || n >= 1 << 30 {
            let per = e.as_secs_f64() / n as f64;
            n = ((target.as_secs_f64() / per.max(1e-10)) as u64).clamp(1, 1 << 30);
            break;
        }
        n *= 4;
    }
    let mut samples = Vec::with_capacity(batches as usize);
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() * 1e9 / n as f64);
    }
    best(&samples)
}

/// Like [`time_ns`] with a fresh input per call, made by `setup` outside the timed region:
/// times batches of 64 prepared inputs and keeps the best.
fn time_batched_ns<I>(
    budget: Duration,
    mut setup: impl FnMut() -> I,
    mut f: impl FnMut(&mut I),
) -> f64 {
    const K: usize = 64;
    let deadline = Instant::now() + budget;
    let mut samples = Vec::new();
    while Instant::now() < deadline || samples.len() < 5 {
        let mut inputs: Vec<I> = (0..K).map(|_| setup()).collect();
        let t = Instant::now();
        for i in &mut inputs {
            f(i);
        }
        samples.push(t.elapsed().as_secs_f64() * 1e9 / K as f64);
        drop(inputs);
        if samples.len() >= 10_000 {
            break;
        }
    }
    best(&samples)
}

fn best(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::INFINITY, f64::min)
}

fn gbps(bytes: usize, ns: f64) -> String {
    format!("{:.2} GB/s", bytes as f64 / ns)
}

fn main() {
    let args = Args::from_env();
    let budget = Duration::from_millis(args.get("millis", 500u64));
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut add = |name: &str, ns: f64, tput: String| {
        let t = if ns >= 1000.0 {
            format!("{:.2} µs", ns / 1000.0)
        } else {
            format!("{ns:.1} ns")
        };
        eprintln!("{name:<55} {t:>12} {tput}");
        rows.push((name.to_string(), t, tput));
    };

    // Frame headers.
    for (name, bytes) in headers_to_decode() {
        let ns = time_ns(budget, || {
            black_box(FrameHeader::decode(black_box(&bytes)).ok());
        });
        add(&format!("header decode, {name}"), ns, String::new());
    }
    for len in [16u64, 1 << 20] {
        let h = server_header(len);
        let ns = time_ns(budget, || {
            black_box(black_box(&h).encode());
        });
        add(
            &format!("header encode, server, len {len}"),
            ns,
            String::new(),
        );
    }

    // Masking vs memcpy, 64 KiB in cache.
    let mut buf = random_bytes(SIZE_64K);
    let src = random_bytes(SIZE_64K);
    let mut dst = random_bytes(SIZE_64K);
    let ns = time_ns(budget, || {
        apply_mask(black_box(&mut buf), black_box([1, 2, 3, 4]), 0)
    });
    add("apply_mask, 64 KiB", ns, gbps(SIZE_64K, ns));
    let ns = time_ns(budget, || {
        apply_mask(black_box(&mut buf[1..]), black_box([1, 2, 3, 4]), 1)
    });
    add(
        "apply_mask, 64 KiB - 1, unaligned, offset 1",
        ns,
        gbps(SIZE_64K - 1, ns),
    );
    let ns = time_ns(budget, || {
        black_box(&mut buf).copy_from_slice(black_box(&src))
    });
    add("memcpy, 64 KiB", ns, gbps(SIZE_64K, ns));
    let ns = time_ns(budget, || {
        apply_mask(black_box(&mut buf), black_box([1, 2, 3, 4]), 0);
        black_box(&mut dst).copy_from_slice(black_box(&buf));
    });
    add("apply_mask + memcpy, 64 KiB", ns, gbps(SIZE_64K, ns));
    let mut out = vec![std::mem::MaybeUninit::<u8>::uninit(); SIZE_64K];
    let ns = time_ns(budget, || {
        copy_masked(
            black_box(&src),
            black_box(&mut out),
            black_box([1, 2, 3, 4]),
            0,
        );
    });
    add("copy_masked, 64 KiB", ns, gbps(SIZE_64K, ns));

    // UTF-8 validation.
    for (kind, text) in [
        ("ASCII", ascii_text(SIZE_64K)),
        ("mixed", mixed_text(SIZE_64K)),
    ] {
        let n = text.len();
        let ns = time_ns(budget, || {
            black_box(validate_streaming(black_box(&text)));
        });
        add(
            &format!("UTF-8 {kind} 64 KiB, ws_proto Utf8Validator feed+finish"),
            ns,
            gbps(n, ns),
        );
        let ns = time_ns(budget, || {
            black_box(core::str::from_utf8(black_box(&text)).is_ok());
        });
        add(
            &format!("UTF-8 {kind} 64 KiB, core::str::from_utf8"),
            ns,
            gbps(n, ns),
        );
        let ns = time_ns(budget, || {
            black_box(simdutf8::basic::from_utf8(black_box(&text)).is_ok());
        });
        add(
            &format!("UTF-8 {kind} 64 KiB, simdutf8::basic::from_utf8"),
            ns,
            gbps(n, ns),
        );
    }

    // Server handshake.
    let mut out = [0u8; 512];
    let ns = time_ns(budget, || {
        black_box(server_handshake(black_box(CHROME_REQUEST), &mut out));
    });
    add(
        "server handshake (scan + parse_request + write_accept), Chrome request",
        ns,
        String::new(),
    );

    // Connection::receive.
    for len in [16usize, SIZE_64K] {
        let frame = masked_frame(len);
        let mut conn = server_connection();
        let ns = time_batched_ns(
            budget,
            || frame.clone(),
            |f| {
                black_box(receive_all(&mut conn, f));
            },
        );
        let tput = if len >= 1024 {
            gbps(len, ns)
        } else {
            String::new()
        };
        add(
            &format!("Connection::receive, masked binary frame, {len} B payload"),
            ns,
            tput,
        );
    }

    // Whole binary messages from received bytes: unmask in place then copy into the message,
    // against unmasking while copying (`MessageAssembler::receive`).
    for len in [16usize, SIZE_64K] {
        let frame = masked_frame(len);
        let tput = |ns| {
            if len >= 1024 {
                gbps(len, ns)
            } else {
                String::new()
            }
        };
        let mut conn = server_connection();
        let mut asm = ws_proto::MessageAssembler::new();
        let ns = time_batched_ns(
            budget,
            || frame.clone(),
            |f| {
                let mut pos = 0;
                while pos < f.len() {
                    let Ok((n, ev)) = conn.receive(0, &mut f[pos..]) else {
                        panic!("receive failed");
                    };
                    pos += n;
                    if let Some(ev) = ev {
                        black_box(asm.push(ev));
                    }
                }
            },
        );
        add(
            &format!("Connection::receive + MessageAssembler::push, {len} B binary message"),
            ns,
            tput(ns),
        );
        let ns = time_batched_ns(
            budget,
            || frame.clone(),
            |f| {
                black_box(asm.receive(&mut conn, 0, f).ok());
            },
        );
        add(
            &format!("MessageAssembler::receive, {len} B binary message"),
            ns,
            tput(ns),
        );
    }

    // Whole text messages out of the assembler (the connection validated them already).
    for (name, text) in [
        ("ASCII", ascii_text(SIZE_64K)),
        ("mixed", mixed_text(SIZE_64K)),
    ] {
        let mut asm = ws_proto::MessageAssembler::new();
        let ns = time_batched_ns(
            budget,
            || (),
            |_| {
                let ev = ws_proto::Event::Data {
                    kind: ws_proto::DataKind::Text,
                    payload: &text,
                    frame_fin: true,
                    message_fin: true,
                };
                black_box(asm.push(ev));
            },
        );
        add(
            &format!("MessageAssembler::push, whole 64 KiB {name} text message"),
            ns,
            gbps(text.len(), ns),
        );
    }

    println!("| benchmark | time | throughput |");
    println!("|---|---:|---:|");
    for (n, t, g) in rows {
        println!("| {n} | {t} | {g} |");
    }
}
