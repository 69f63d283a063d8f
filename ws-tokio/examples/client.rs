//! An interactive command-line client: lines from stdin are sent as text, received messages
//! are printed.
//!
//! `cargo run -p ws-tokio --example client -- [--show-ping-pong] ws://127.0.0.1:9001/`
//!
//! Commands: `/ping [payload]` sends a ping, `/close [CODE [REASON]]` closes, anything else is
//! sent as a text message. End of input closes with 1000.

use tokio::io::{AsyncBufReadExt, BufReader};
use ws_tokio::{CloseCode, CloseFrame, Message};

fn print_message(msg: &Message, show_control: bool) {
    match msg {
        Message::Text(t) => println!("< {t}"),
        Message::Binary(b) => println!(
            "< [binary {} bytes] {:02x?}",
            b.len(),
            &b[..b.len().min(32)]
        ),
        Message::Ping(p) if show_control => println!("< [ping {:?}]", String::from_utf8_lossy(p)),
        Message::Pong(p) if show_control => println!("< [pong {:?}]", String::from_utf8_lossy(p)),
        Message::Close(Some(f)) => println!("< [close {} {:?}]", f.code.0, f.reason),
        Message::Close(None) => println!("< [close]"),
        _ => {}
    }
}

/// Parses `/close [CODE [REASON]]` (1000 when no code is given).
fn parse_close(args: &str) -> CloseFrame {
    let mut parts = args.trim().splitn(2, ' ');
    let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
    CloseFrame::new(CloseCode(code), parts.next().unwrap_or(""))
}

#[tokio::main]
async fn main() {
    let mut show_control = false;
    let mut url = None;
    for a in std::env::args().skip(1) {
        if a == "--show-ping-pong" {
            show_control = true;
        } else {
            url = Some(a);
        }
    }
    let Some(url) = url else {
        eprintln!("usage: client [--show-ping-pong] ws://host:port/path");
        std::process::exit(2);
    };
    let ws = match ws_tokio::connect(&url).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("connect failed: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("connected to {url}");
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                Ok(m) => print_message(&m, show_control),
                Err(e) => {
                    eprintln!("connection ended: {e}");
                    return 1;
                }
            }
        }
        eprintln!("connection closed");
        0
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = reader_finished(&reader) => break,
        };
        let r = match line {
            Ok(Some(line)) => {
                if let Some(p) = line.strip_prefix("/ping") {
                    tx.send(Message::ping(p.trim().as_bytes().to_vec())).await
                } else if let Some(args) = line.strip_prefix("/close") {
                    let r = tx.close(Some(parse_close(args))).await;
                    if r.is_ok() {
                        break;
                    }
                    r
                } else {
                    tx.send(Message::text(line)).await
                }
            }
            _ => {
                let _ = tx.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))).await;
                break;
            }
        };
        if let Err(e) = r {
            eprintln!("send failed: {e}");
            break;
        }
    }
    let code = reader.await.unwrap_or(1);
    std::process::exit(code);
}

async fn reader_finished(h: &tokio::task::JoinHandle<i32>) {
    while !h.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
