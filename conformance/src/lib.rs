//! Autobahn TestSuite conformance for `ws-tokio`, or for any WebSocket server or client, run
//! with kosoku.
//!
//! - [`testee`]: the echo server and echo client that kosoku drives;
//! - [`external`]: an external server or client program under test, and the client
//!   program's contract;
//! - `axum_testee` (feature `axum`): the echo server behind axum;
//! - [`kosoku`]: installing kosoku in a virtual environment and starting it;
//! - [`report`]: reading its `index.json` and per-case reports;
//! - [`expected`]: `expected-results.json` and the regression check;
//! - [`select`]: case selection (`--cases`);
//! - [`cli`]: the runner's command line.

#[cfg(feature = "axum")]
pub mod axum_testee;
pub mod cli;
pub mod expected;
pub mod external;
pub mod kosoku;
pub mod report;
pub mod select;
pub mod testee;
