//! Echo server testee for kosoku's `fuzzingclient` mode: `testee_server ADDR`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr] = args.as_slice() else {
        eprintln!("usage: testee_server ADDR   (e.g. 127.0.0.1:9001)");
        return ExitCode::from(2);
    };
    let listener = match tokio::net::TcpListener::bind(addr.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("echo server listening on ws://{a}"),
        Err(_) => println!("echo server listening on ws://{addr}"),
    }
    match conformance::testee::serve(listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accept failed: {e}");
            ExitCode::FAILURE
        }
    }
}
