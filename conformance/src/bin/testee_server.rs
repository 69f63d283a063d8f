//! Echo server testee for kosoku's `fuzzingclient` mode:
//! `testee_server ADDR [--deflate] [--split]` (`--split`: echo through split halves).

use std::process::ExitCode;

use conformance::testee::{serve, testee_config};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = args.get(1..).unwrap_or_default();
    let (Some(addr), true) = (
        args.first(),
        flags.iter().all(|f| f == "--deflate" || f == "--split"),
    ) else {
        eprintln!("usage: testee_server ADDR [--deflate] [--split]   (e.g. 127.0.0.1:9001)");
        return ExitCode::from(2);
    };
    let deflate = flags.iter().any(|f| f == "--deflate");
    let split = flags.iter().any(|f| f == "--split");
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
    println!(
        "echo server listening on ws://{shown} (permessage-deflate: {deflate}, split: {split})"
    );
    match serve(listener, testee_config(deflate), split).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accept failed: {e}");
            ExitCode::FAILURE
        }
    }
}
