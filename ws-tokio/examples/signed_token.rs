//! A server that accepts only connections carrying an HMAC-SHA256 signed token, and a client
//! that mints one and connects.
//!
//! The token is `base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))`
//! (no padding), with the payload `<subject>:<expiry in Unix seconds>`. The server checks the
//! MAC in constant time and the expiry against its clock, and takes the token from the
//! `Authorization: Bearer` header, the `access_token` query parameter, or the subprotocols
//! `["bearer", "<token>"]` (what a browser can send). It also refuses browser requests from
//! other sites: the Origin must be the Host or one given with `--allow-origin`.
//!
//! Both sides read the secret from `WS_TOKEN_SECRET`. In one terminal:
//!
//! ```text
//! export WS_TOKEN_SECRET=change-me
//! cargo run -p ws-tokio --example signed_token -- server 127.0.0.1:9002 \
//!     --allow-origin http://localhost:8000
//! ```
//!
//! In another (`--via` is `header`, the default, `query` or `protocol`; a negative `--ttl`
//! mints an expired token, which gets 401):
//!
//! ```text
//! export WS_TOKEN_SECRET=change-me
//! cargo run -p ws-tokio --example signed_token -- client ws://127.0.0.1:9002/chat alice
//! cargo run -p ws-tokio --example signed_token -- client ws://127.0.0.1:9002/chat alice --via protocol
//! cargo run -p ws-tokio --example signed_token -- client ws://127.0.0.1:9002/chat alice --ttl -5
//! cargo run -p ws-tokio --example signed_token -- mint alice 3600
//! ```
//!
//! `mint` prints a token, for example for a browser:
//! `new WebSocket("ws://127.0.0.1:9002/chat", ["bearer", token])`.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::TcpListener;
use ws_tokio::auth::{BearerAuth, SubprotocolToken, TokenError, check_origin};
use ws_tokio::origin::OriginPolicy;
use ws_tokio::{ClientRequest, Error, Message};

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are refused before any decoding.
const MAX_TOKEN: usize = 1024;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// Mints a token for `subject` that expires at `expiry` (Unix seconds).
fn mint(secret: &[u8], subject: &str, expiry: u64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!("{subject}:{expiry}"));
    let mut m = mac(secret);
    m.update(payload.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// Checks a token's MAC (in constant time) and expiry; returns its subject.
fn verify(secret: &[u8], token: &str, now: u64) -> Result<String, TokenError> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::Invalid);
    }
    let (payload, sig) = token.split_once('.').ok_or(TokenError::Invalid)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Invalid)?;
    let mut m = mac(secret);
    m.update(payload.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
    // Authentic from here on: only the server's secret makes such tokens.
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Invalid)?;
    let payload = String::from_utf8(payload).map_err(|_| TokenError::Invalid)?;
    let (subject, expiry) = payload.rsplit_once(':').ok_or(TokenError::Invalid)?;
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::Invalid)?;
    if expiry <= now {
        return Err(TokenError::Invalid);
    }
    Ok(subject.to_string())
}

/// The subject a verified token names, kept for the connection's handler.
#[derive(Clone)]
struct Subject(String);

async fn serve(addr: &str, secret: Vec<u8>, origins: Vec<String>) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let auth = BearerAuth::default()
        .with_query("access_token")
        .with_subprotocol(SubprotocolToken::pair("bearer"))
        .with_realm("signed_token example");
    // The policy borrows its patterns: owned strings from the command line work as they are.
    let origins = std::sync::Arc::new(origins);
    ws_tokio::serve(listener, |mut ws, info| async move {
        let peer = info.remote_addr;
        let Some(Subject(subject)) = info.extensions.get::<Subject>().cloned() else {
            return;
        };
        println!("{peer}: accepted {subject:?}");
        let hello = Message::text(format!("hello {subject}"));
        if ws.send(hello).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = info.recv(&mut ws).await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                return;
            }
        }
        println!("{peer}: closed");
    })
    // The Origin check is done in the callback, with the patterns from the command line, so
    // the built-in one (the Host only) is turned off.
    .origin(OriginPolicy::any())
    .accept_with(move |req| {
        let decided = check_origin(&OriginPolicy::new().with_allowed(&origins[..]), req)
            .and_then(|_| auth.authorize(req, |t| verify(&secret, t, unix_now())))
            .map(|(subject, accept)| accept.extension(Subject(subject)));
        if let Err(reject) = &decided {
            println!("{}: refused with {}", req.path(), reject.status);
        }
        decided
    })
    .await
}

async fn run_client(url: &str, token: &str, via: &str) -> Result<(), Error> {
    let mut url = url.to_string();
    let mut request = ClientRequest::default();
    match via {
        "header" => request = request.header("Authorization", format!("Bearer {token}")),
        "query" => {
            let sep = if url.contains('?') { '&' } else { '?' };
            // base64url and '.' need no percent-encoding in a query.
            url = format!("{url}{sep}access_token={token}");
        }
        "protocol" => request = request.protocol("bearer").protocol(token),
        _ => unreachable!("checked by main"),
    }
    let (mut ws, response) = ws_tokio::connect_request(&url, request).await?;
    println!(
        "connected ({}, subprotocol {:?})",
        response.status, response.protocol
    );
    ws.send(Message::Text("ping".into())).await?;
    for _ in 0..2 {
        match ws.recv().await {
            Some(Ok(Message::Text(t))) => println!("< {t}"),
            Some(Ok(other)) => println!("< {other:?}"),
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    ws.close(Some(ws_tokio::CloseFrame::new(
        ws_tokio::CloseCode::NORMAL,
        "bye",
    )))
    .await
}

const USAGE: &str = "usage:\n  signed_token server [ADDR] [--allow-origin ORIGIN]...\n  signed_token client URL SUBJECT \
    [--via header|query|protocol] [--ttl SECONDS]\n  signed_token mint SUBJECT [TTL_SECONDS]\n\
    The secret comes from WS_TOKEN_SECRET.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(secret) = std::env::var_os("WS_TOKEN_SECRET").filter(|s| !s.is_empty()) else {
        eprintln!("set WS_TOKEN_SECRET\n{USAGE}");
        return ExitCode::from(2);
    };
    let secret = secret.into_encoded_bytes();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["server", rest @ ..] => {
            let (addr, mut rest) = match rest {
                [a, more @ ..] if !a.starts_with("--") => (*a, more),
                _ => ("127.0.0.1:9002", rest),
            };
            let mut origins = Vec::new();
            while let ["--allow-origin", origin, more @ ..] = rest {
                if !ws_tokio::origin::is_valid_pattern(origin) {
                    eprintln!("not an origin pattern: {origin}");
                    return ExitCode::from(2);
                }
                origins.push(origin.to_string());
                rest = more;
            }
            if !rest.is_empty() {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
            match serve(addr, secret, origins).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        ["mint", subject, rest @ ..] if rest.len() <= 1 => {
            let Some(ttl) = rest.first().map_or(Some(3600), |t| t.parse::<i64>().ok()) else {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            };
            println!(
                "{}",
                mint(&secret, subject, unix_now().saturating_add_signed(ttl))
            );
            ExitCode::SUCCESS
        }
        ["client", url, subject, rest @ ..] => {
            let (mut via, mut ttl) = ("header", 60i64);
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                match (*flag, it.next().copied()) {
                    ("--via", Some(v @ ("header" | "query" | "protocol"))) => via = v,
                    ("--ttl", Some(t)) if t.parse::<i64>().is_ok() => ttl = t.parse().unwrap(),
                    _ => {
                        eprintln!("{USAGE}");
                        return ExitCode::from(2);
                    }
                }
            }
            let token = mint(&secret, subject, unix_now().saturating_add_signed(ttl));
            match run_client(url, &token, via).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(Error::Rejected { status }) => {
                    eprintln!("refused by the server: HTTP {status}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire() {
        let t = mint(b"k", "alice", 100);
        assert_eq!(verify(b"k", &t, 99), Ok("alice".into()));
        assert_eq!(verify(b"k", &t, 100), Err(TokenError::Invalid));
        assert_eq!(verify(b"other", &t, 99), Err(TokenError::Invalid));
        // A payload changed without the secret fails the MAC.
        let (_, sig) = t.split_once('.').unwrap();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode("alice:999999"));
        assert_eq!(verify(b"k", &forged, 99), Err(TokenError::Invalid));
        for bad in ["", ".", "abc", "a.b", &"a".repeat(MAX_TOKEN + 1)] {
            assert_eq!(verify(b"k", bad, 0), Err(TokenError::Invalid), "{bad}");
        }
    }
}
