//! Benchmarks for `ws-proto` and `ws-tokio`.
//!
//! - `benches/proto.rs`: criterion micro benches of the sans-IO core (header codec, masking,
//!   UTF-8 validation, the server handshake, `Connection::receive`).
//! - `src/bin/micro_report.rs`: the same figures without criterion, as a markdown table.
//! - `src/bin/bench_server.rs`: one echo server per implementation (ours, tokio-tungstenite,
//!   fastwebsockets, tokio-websockets), all built the same way.
//! - `src/bin/bench_load.rs`: the load generator on the command line: `ws_tokio::load` (the
//!   one behind `ws bench`: a raw client, a fresh random mask per frame, round trips
//!   measured, k6-style session figures and a k6-like ramping scenario).
//! - `src/bin/bench_all.rs`: the driver that runs the whole matrix and writes `RESULTS.md`.
//! - `src/bin/soak.rs`: the serve loop held for minutes with keepalive pings while some
//!   clients stop answering; the server's RSS curve.
//!
//! The library holds the parts those binaries share.

pub mod child;
pub mod cli;
pub mod fanout;
pub mod micro;
pub mod procfs;
pub mod report;
pub mod server;
pub mod stats;
