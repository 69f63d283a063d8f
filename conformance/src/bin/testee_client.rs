//! Echo client testee for kosoku's `fuzzingserver` mode: `testee_client URL AGENT [--deflate]`.

use std::process::ExitCode;

use conformance::testee::{ClientOptions, run_client, testee_config};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, agent, deflate) = match args.as_slice() {
        [url, agent] => (url, agent, false),
        [url, agent, flag] if flag == "--deflate" => (url, agent, true),
        _ => {
            eprintln!(
                "usage: testee_client URL AGENT [--deflate]   (e.g. ws://127.0.0.1:9001 ws-tokio)"
            );
            return ExitCode::from(2);
        }
    };
    let options = ClientOptions {
        config: testee_config(deflate),
        ..ClientOptions::default()
    };
    match run_client(url, agent, options).await {
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
