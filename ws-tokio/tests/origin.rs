//! The default Origin rule at accept: a browser's cross-site request is refused with 403,
//! same-site and Origin-less requests pass, and the rule can be turned off or widened.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_tokio::origin::OriginPolicy;
use ws_tokio::{Config, Error};

/// The status line a server accepting with `config` answers a request with these headers.
async fn status(config: Config, host: &str, origin: Option<&str>) -> (String, Result<(), Error>) {
    let (mut raw, io) = tokio::io::duplex(16 << 10);
    let srv =
        tokio::spawn(async move { ws_tokio::accept_with_config(io, config).await.map(|_| ()) });
    let mut req = format!(
        "GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    req.push_str("\r\n");
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(raw.read_u8().await.unwrap());
    }
    let line = String::from_utf8(head)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    (line, srv.await.unwrap())
}

#[tokio::test]
async fn cross_site_browsers_are_refused_by_default() {
    let d = Config::default();
    let (line, r) = status(d, "chat.example.com", Some("https://evil.example.net")).await;
    assert_eq!(line, "HTTP/1.1 403 Forbidden");
    assert!(matches!(r, Err(Error::Rejected { status: 403 })), "{r:?}");
    // Same host (and the scheme's default port): accepted.
    let (line, r) = status(d, "chat.example.com", Some("https://chat.example.com")).await;
    assert_eq!(line, "HTTP/1.1 101 Switching Protocols");
    assert!(r.is_ok());
    let (line, _) = status(d, "127.0.0.1:9001", Some("http://127.0.0.1:9001")).await;
    assert_eq!(line, "HTTP/1.1 101 Switching Protocols");
    // Another port is another origin.
    let (line, _) = status(d, "127.0.0.1:9001", Some("http://127.0.0.1:8000")).await;
    assert_eq!(line, "HTTP/1.1 403 Forbidden");
    // No Origin: not a browser, passes. `null` (sandboxed pages, files) does not.
    let (line, _) = status(d, "chat.example.com", None).await;
    assert_eq!(line, "HTTP/1.1 101 Switching Protocols");
    let (line, _) = status(d, "chat.example.com", Some("null")).await;
    assert_eq!(line, "HTTP/1.1 403 Forbidden");
}

#[tokio::test]
async fn the_rule_can_be_widened_or_turned_off() {
    static ALLOWED: [&str; 2] = ["https://app.example.com", "*.partner.example"];
    let widened = Config::default().with_origin(OriginPolicy::new().with_allowed(&ALLOWED));
    for (origin, want) in [
        ("https://app.example.com", "101"),
        ("https://a.b.partner.example", "101"),
        ("https://partner.example", "403"),
        ("https://evil.example", "403"),
    ] {
        let (line, _) = status(widened, "chat.example.com", Some(origin)).await;
        assert!(line.contains(want), "{origin}: {line}");
    }
    let off = Config::default().with_origin(OriginPolicy::any());
    let (line, _) = status(off, "chat.example.com", Some("https://evil.example")).await;
    assert_eq!(line, "HTTP/1.1 101 Switching Protocols");
}
