//! The fan-out benchmark server: every text or binary message any client sends goes to every
//! connected client, the sender included.
//!
//! `cargo run --release -p ws-tokio --example broadcast -- ADDR [--deflate]
//! [--queue-messages N] [--queue-bytes N] [--drop-oldest]`
//!
//! Each message is framed once for all recipients (a [`PreparedMessage`](ws_tokio::PreparedMessage)
//! in every subscriber's queue) and written by each subscriber's own task, which sends what
//! queued up since its last write in one vectored write.
//!
//! With `--deflate` it accepts permessage-deflate with a shared compressor (a connection keeps
//! no compressor of its own: each message is compressed once per distinct window among the
//! clients, not once per client) and answers with `client_no_context_takeover`, so it keeps no
//! decompressor between a client's messages either. Without it, compression is declined.
//!
//! A client whose queue fills (1024 messages or 4 MiB by default) is closed with 1008; with
//! `--drop-oldest` its oldest messages are dropped instead. It prints `listening on ws://ADDR`
//! once bound (port 0 picks one).

use tokio::net::TcpListener;
use ws_tokio::topics::{Overflow, QueueConfig, Topics};
use ws_tokio::{Config, DeflateConfig, Message};

/// The value after `name` on the command line.
fn value(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    match args.get(i + 1).map(|v| v.parse()) {
        Some(Ok(v)) => Some(v),
        _ => {
            eprintln!("{name} takes a number");
            std::process::exit(2);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), ws_tokio::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let deflate = args.iter().any(|a| a == "--deflate");
    let mut queue = QueueConfig::default();
    if let Some(n) = value(&args, "--queue-messages") {
        queue = queue.with_max_messages(n);
    }
    if let Some(n) = value(&args, "--queue-bytes") {
        queue = queue.with_max_bytes(n);
    }
    if args.iter().any(|a| a == "--drop-oldest") {
        queue = queue.with_overflow(Overflow::DropOldest);
    }
    // The default compression keeps no state per connection: frames are compressed with this
    // thread's compressor (a published message once for all), and clients are asked to reset
    // their context after every message.
    let compression = deflate.then_some(DeflateConfig::DEFAULT);
    let config = Config::default().with_compression(compression);
    let topics = Topics::new(queue);
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    ws_tokio::serve(listener, move |ws, _info| {
        let topics = topics.clone();
        async move {
            let mut sub = topics.subscriber(ws);
            while let Some(Ok(msg)) = sub.recv().await {
                if let Message::Text(_) | Message::Binary(_) = msg {
                    // Never waits: a full queue is the slow client's problem (its policy).
                    let _ = topics.publish_all(msg);
                }
            }
        }
    })
    .config(config)
    .await
}
