//! Echoes every text and binary message back, on the serve loop: connection caps (total and
//! per IP, answered with 503), the handshake deadline, backoff when descriptors run out, and
//! a graceful shutdown on Ctrl-C that closes every connection with 1001.
//!
//! `cargo run -p ws-tokio --example echo_server -- 127.0.0.1:9001`

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), ws_tokio::Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let server = ws_tokio::serve(listener, |mut ws, info| async move {
        // `info.recv` is `ws.recv` until the server shuts down; then it closes with 1001.
        while let Some(msg) = info.recv(&mut ws).await {
            match msg {
                Ok(m) if m.is_text() || m.is_binary() => {
                    if let Err(e) = ws.send(m).await {
                        eprintln!("{}: send failed: {e}", info.remote_addr);
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("{}: {e}", info.remote_addr);
                    return;
                }
            }
        }
    })
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("shutting down: closing every connection with 1001");
    });
    println!(
        "up to {} connections at once",
        server.effective_max_connections()
    );
    server.await
}
