//! Criterion micro benches of the sans-IO core.
//!
//! `cargo bench -p benches --bench proto -- --warm-up-time 1 --measurement-time 2`
#![allow(missing_docs)]

use std::hint::black_box;

use benches::micro::{
    CHROME_REQUEST, SIZE_64K, ascii_text, headers_to_decode, masked_frame, mixed_text,
    random_bytes, receive_all, server_connection, server_handshake, server_header,
    validate_streaming,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ws_proto::frame::FrameHeader;
use ws_proto::mask::apply_mask;

fn header(c: &mut Criterion) {
    let mut g = c.benchmark_group("header");
    for (name, bytes) in headers_to_decode() {
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| FrameHeader::decode(black_box(&bytes)))
        });
    }
    for len in [16u64, 1024, 1 << 20] {
        let h = server_header(len);
        g.bench_function(format!("encode/server_len{len}"), |b| {
            b.iter(|| black_box(black_box(&h).encode()))
        });
    }
    g.finish();
}

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask_64KiB");
    g.throughput(Throughput::Bytes(SIZE_64K as u64));
    let mut buf = random_bytes(SIZE_64K);
    let src = random_bytes(SIZE_64K);
    g.bench_function("apply_mask", |b| {
        b.iter(|| apply_mask(black_box(&mut buf), black_box([1, 2, 3, 4]), 0))
    });
    g.bench_function("apply_mask_unaligned_offset", |b| {
        b.iter(|| apply_mask(black_box(&mut buf[1..]), black_box([1, 2, 3, 4]), 1))
    });
    g.bench_function("memcpy", |b| {
        b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&src)))
    });
    g.finish();
}

fn utf8(c: &mut Criterion) {
    for (name, text) in [
        ("ascii", ascii_text(SIZE_64K)),
        ("mixed", mixed_text(SIZE_64K)),
    ] {
        let mut g = c.benchmark_group(format!("utf8_64KiB_{name}"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("ws_proto_Utf8Validator", |b| {
            b.iter(|| validate_streaming(black_box(&text)))
        });
        g.bench_function("core_str_from_utf8", |b| {
            b.iter(|| core::str::from_utf8(black_box(&text)).is_ok())
        });
        g.bench_function("simdutf8_basic", |b| {
            b.iter(|| simdutf8::basic::from_utf8(black_box(&text)).is_ok())
        });
        g.finish();
    }
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    let mut out = [0u8; 512];
    g.bench_function("server_chrome_request", |b| {
        b.iter(|| server_handshake(black_box(CHROME_REQUEST), &mut out))
    });
    g.finish();
}

fn receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("connection_receive");
    for len in [16usize, SIZE_64K] {
        let frame = masked_frame(len);
        let mut conn = server_connection();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("masked_binary_{len}B"), |b| {
            b.iter_batched_ref(
                || frame.clone(),
                |f| receive_all(&mut conn, f),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, header, mask, utf8, handshake, receive);
criterion_main!(benches);
