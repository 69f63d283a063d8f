//! Echo client testee for kosoku's `fuzzingserver` mode: `testee_client URL AGENT`.

use std::process::ExitCode;

use conformance::testee::{ClientOptions, run_client};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, agent] = args.as_slice() else {
        eprintln!("usage: testee_client URL AGENT   (e.g. ws://127.0.0.1:9001 ws-tokio)");
        return ExitCode::from(2);
    };
    match run_client(url, agent, ClientOptions::default()).await {
        Ok(s) => {
            println!(
                "ran {} cases ({} ended with an error, {} could not connect, {} timed out)",
                s.case_count, s.case_errors, s.connect_errors, s.timeouts
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
