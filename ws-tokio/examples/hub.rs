//! A chat hub in the shape of the Go fiber hub users measured: JSON text events from the
//! clients, `CHAT_MSG` broadcasts to every client, and one from the server every 3 s.
//!
//! `cargo run --release -p ws-tokio --example hub -- [ADDR] [--tick-ms 3000]`
//!
//! Client to server, one JSON object per text message:
//!
//! ```text
//! {"event":"SET_NAME","data":"alice"}   the name this client's messages go out under
//! {"event":"SAY","data":"hello"}        a CHAT_MSG to every client, the sender included
//! {"event":"LEAVE"}                     the server closes the connection with 1000
//! ```
//!
//! Server to clients:
//!
//! ```text
//! {"event":"CHAT_MSG","data":{"from":"alice","text":"hello"}}
//! {"event":"CHAT_MSG","data":{"from":"server","text":"3 clients connected"}}   every 3 s
//! {"event":"ERROR","data":"..."}        to the sender alone, for what it cannot take
//! ```
//!
//! Names are cut to 32 characters and messages are at most 4 KiB (a longer one closes the
//! connection with 1009). Each broadcast is serialised and framed once for every client (see
//! `ws_tokio::topics`). It prints `listening on ws://ADDR` once bound (port 0 picks one).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use ws_tokio::topics::{Subscriber, Topics};
use ws_tokio::{CloseCode, CloseFrame, Config, Message};

/// The longest name kept, in characters.
const MAX_NAME: usize = 32;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "SCREAMING_SNAKE_CASE")]
enum ClientEvent {
    SetName(String),
    Say(String),
    Leave,
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "event", content = "data", rename_all = "SCREAMING_SNAKE_CASE")]
enum ServerEvent<'a> {
    ChatMsg { from: &'a str, text: &'a str },
    Error(&'a str),
}

impl ServerEvent<'_> {
    fn message(&self) -> Message {
        // Serialising these types cannot fail (string keys, no maps of other keys).
        Message::text(serde_json::to_string(self).unwrap_or_default())
    }
}

fn tick_ms() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--tick-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// One client's session: its events until it leaves or goes.
async fn session(mut sub: Subscriber<tokio::net::TcpStream>) {
    let mut name = String::from("anonymous");
    while let Some(Ok(msg)) = sub.recv().await {
        let event = match &msg {
            Message::Text(t) => serde_json::from_str::<ClientEvent>(t.as_str()),
            Message::Binary(_) => {
                let reply = ServerEvent::Error("events are JSON text").message();
                if sub.send(reply).await.is_err() {
                    return;
                }
                continue;
            }
            _ => continue,
        };
        match event {
            Ok(ClientEvent::SetName(n)) => name = n.chars().take(MAX_NAME).collect(),
            Ok(ClientEvent::Say(text)) => {
                let chat = ServerEvent::ChatMsg {
                    from: &name,
                    text: &text,
                };
                let _ = sub.registry().publish_all(chat.message());
            }
            Ok(ClientEvent::Leave) => {
                let _ = sub
                    .close(Some(CloseFrame::new(CloseCode::NORMAL, "bye")))
                    .await;
                return;
            }
            Err(e) => {
                let reply = ServerEvent::Error(&e.to_string()).message();
                if sub.send(reply).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), ws_tokio::Error> {
    let addr = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "127.0.0.1:9003".into());
    let config = Config::default()
        .with_compression(None)
        .with_max_message_size(4 << 10);
    let topics = Topics::default();
    let ticker = topics.clone();
    let every = Duration::from_millis(tick_ms().max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let text = format!("{} clients connected", ticker.stats().subscribers);
            let chat = ServerEvent::ChatMsg {
                from: "server",
                text: &text,
            };
            let _ = ticker.publish_all(chat.message());
        }
    });
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    ws_tokio::serve(listener, move |ws, _info| session(topics.subscriber(ws)))
        .config(config)
        .await
}
