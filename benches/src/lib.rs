//! Benchmarks (see `benches/`).
