//! Echo server testee behind axum for kosoku's `fuzzingclient` mode (feature `axum`):
//! `testee_axum ADDR [--deflate]`.

use std::process::ExitCode;

use conformance::axum_testee::serve;
use conformance::testee::testee_config;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = args.get(1..).unwrap_or_default();
    let (Some(addr), true) = (args.first(), flags.iter().all(|f| f == "--deflate")) else {
        eprintln!("usage: testee_axum ADDR [--deflate]   (e.g. 127.0.0.1:9001)");
        return ExitCode::from(2);
    };
    let deflate = !flags.is_empty();
    let listener = match tokio::net::TcpListener::bind(addr.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown = listener
        .local_addr()
        .map_or_else(|_| addr.clone(), |a| a.to_string());
    println!("axum echo server listening on ws://{shown} (permessage-deflate: {deflate})");
    match serve(listener, testee_config(deflate)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve failed: {e}");
            ExitCode::FAILURE
        }
    }
}
