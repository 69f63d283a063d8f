//! `ws`: a WebSocket client, server and load generator on ws-tokio.
//!
//! ```text
//! ws connect ws://127.0.0.1:9001/          # interactive, like `wscat -c`
//! ws connect -x hello -w 1 ws://host/      # send, print the replies for 1 s, exit
//! ws serve 127.0.0.1:9001                  # echo server (--broadcast, --tls CERT KEY)
//! ws bench ws://127.0.0.1:9001/ -c 100     # closed-loop echo load
//! ws bench ws://127.0.0.1:9001/ --vus 1000 # k6-style scenario
//! ```
//!
//! Install with `cargo install --path ws-tokio --features cli`.

mod args;
mod bench;
mod connect;
mod input;
mod output;
mod serve;
mod tls;

use clap::Parser;

use args::{Cli, Command};

/// Exit statuses, the same for every command.
pub(crate) mod exit {
    /// Closed normally (1000, 1001 or no code), or the run completed without errors.
    pub(crate) const OK: i32 = 0;
    /// Could not connect (TCP, DNS, proxy, TLS, refused handshake) or could not start.
    pub(crate) const CONNECT: i32 = 1;
    /// Bad arguments or files (clap's own status for usage errors).
    pub(crate) const USAGE: i32 = 2;
    /// Closed with a code other than 1000, 1001 or none (either side's); for `ws bench`, a
    /// run in which some connections or messages failed.
    pub(crate) const CLOSE_CODE: i32 = 3;
    /// The connection was lost without a close handshake.
    pub(crate) const LOST: i32 = 4;
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Connect(a) => connect::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Bench(a) => bench::run(a),
    };
    std::process::exit(code);
}
