//! Echo server testee for kosoku's `fuzzingclient` mode: `testee_server ADDR [--deflate]`.

use std::process::ExitCode;

use conformance::testee::{serve, testee_config};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, deflate) = match args.as_slice() {
        [addr] => (addr, false),
        [addr, flag] if flag == "--deflate" => (addr, true),
        _ => {
            eprintln!("usage: testee_server ADDR [--deflate]   (e.g. 127.0.0.1:9001)");
            return ExitCode::from(2);
        }
    };
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
    println!("echo server listening on ws://{shown} (permessage-deflate: {deflate})");
    match serve(listener, testee_config(deflate)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accept failed: {e}");
            ExitCode::FAILURE
        }
    }
}
