//! Echo server testee for kosoku's `fuzzingclient` mode:
//! `testee_server ADDR [--deflate] [--split]` (`--split`: echo through split halves).

use std::process::ExitCode;

use clap::Parser;
use conformance::testee::{serve, testee_config};

/// The echo server testee.
#[derive(Debug, Parser)]
#[command(about = "Echo server testee for the Autobahn fuzzing client")]
struct Args {
    /// Address to listen on (for example 127.0.0.1:9001).
    addr: String,
    /// Accept permessage-deflate.
    #[arg(long)]
    deflate: bool,
    /// Echo through the halves of `WebSocket::split`.
    #[arg(long)]
    split: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(args.addr.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let shown = listener
        .local_addr()
        .map_or_else(|_| args.addr.clone(), |a| a.to_string());
    println!(
        "echo server listening on ws://{shown} (permessage-deflate: {}, split: {})",
        args.deflate, args.split
    );
    match serve(listener, testee_config(args.deflate), args.split).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accept failed: {e}");
            ExitCode::FAILURE
        }
    }
}
