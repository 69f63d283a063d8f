//! Autobahn TestSuite conformance for `ws-tokio`, run with kosoku.
//!
//! - [`testee`]: the echo server and echo client that kosoku drives (with the `axum` feature,
//!   `axum_testee`: the echo server behind axum);
//! - [`kosoku`]: installing kosoku in a virtual environment and starting it;
//! - [`report`]: reading its `index.json` and per-case reports;
//! - [`expected`]: `expected-results.json` and the regression check.

#[cfg(feature = "axum")]
pub mod axum_testee;
pub mod expected;
pub mod glob;
pub mod kosoku;
pub mod report;
pub mod testee;
pub mod timefmt;
