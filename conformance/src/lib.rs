//! Autobahn TestSuite conformance for `ws-tokio`, run with kosoku.
//!
//! - [`testee`]: the echo server and echo client that kosoku drives;
//! - [`kosoku`]: installing kosoku in a virtual environment and starting it;
//! - [`report`]: reading its `index.json` and per-case reports;
//! - [`expected`]: `expected-results.json` and the regression check;
//! - [`select`]: case selection (`--cases`).

pub mod expected;
pub mod kosoku;
pub mod report;
pub mod select;
pub mod testee;
