//! Echoes every text and binary message back.
//!
//! `cargo run -p ws-tokio --example echo_server -- 127.0.0.1:9001`

use tokio::net::TcpListener;
use ws_tokio::{Config, Message};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let mut ws = match ws_tokio::accept_with_config(tcp, Config::default()).await {
                Ok(ws) => ws,
                Err(e) => {
                    eprintln!("{peer}: handshake failed: {e}");
                    return;
                }
            };
            while let Some(msg) = ws.recv().await {
                match msg {
                    Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                        if let Err(e) = ws.send(m).await {
                            eprintln!("{peer}: send failed: {e}");
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("{peer}: {e}");
                        return;
                    }
                }
            }
        });
    }
}
