//! Bearer-token authentication and Origin checks through real opening handshakes: each case
//! runs `accept_with` against `client` over an in-memory pipe (one over loopback TCP) and
//! checks the status the client gets, the challenge headers, and the echoed subprotocol.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_tokio::auth::{
    BearerAuth, Source, SubprotocolToken, TokenError, check_origin, tokens_equal,
};
use ws_tokio::origin::{Allowed, OriginPolicy};
use ws_tokio::{AcceptResponse, ClientRequest, Config, Error, Reject, Request, Response};

const TOKEN: &str = "tok-123.abc_XYZ~";

/// Runs one handshake: the server asks `callback`, the client sends `request`. Returns what
/// the client saw and whether the server accepted.
async fn handshake<F>(request: ClientRequest, callback: F) -> (Result<Response, Error>, bool)
where
    F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
{
    let (c, s) = tokio::io::duplex(64 << 10);
    let run = async {
        let server = ws_tokio::accept_with(s, callback_decides(), callback);
        let client = ws_tokio::client(c, request);
        let (server, client) = tokio::join!(server, client);
        (client.map(|(_, r)| r), server.is_ok())
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("handshake timed out")
}

/// The status the client got: 101 or the rejection's.
/// Settings where the callback decides on the Origin (the built-in check is off).
fn callback_decides() -> Config {
    Config::default().with_origin(OriginPolicy::any())
}

async fn status<F>(request: ClientRequest, callback: F) -> u16
where
    F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
{
    match handshake(request, callback).await {
        (Ok(r), true) => r.status,
        (Err(Error::Rejected { status }), false) => status,
        (other, accepted) => panic!("unexpected: {other:?}, server accepted: {accepted}"),
    }
}

/// The raw response head and body to a hand-written request, for header checks.
async fn raw_response<F>(request: &str, callback: F) -> String
where
    F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
{
    let (mut c, s) = tokio::io::duplex(64 << 10);
    let run = async {
        let server = ws_tokio::accept_with(s, callback_decides(), callback);
        let client = async {
            c.write_all(request.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            c.read_to_end(&mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        };
        tokio::join!(server, client).1
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("handshake timed out")
}

fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn req(path: &str) -> ClientRequest {
    ClientRequest::new("example.com", path)
}

fn bearer(value: &str) -> ClientRequest {
    req("/ws").header("Authorization", value)
}

fn everywhere() -> BearerAuth {
    BearerAuth::default()
        .with_query("access_token")
        .with_subprotocol(SubprotocolToken::pair("bearer"))
}

#[tokio::test]
async fn header_token_right_wrong_and_missing() {
    let auth = BearerAuth::default();
    let check = |r| {
        let auth = auth.clone();
        status(r, move |req| auth.authorize_token(req, TOKEN.as_bytes()))
    };
    assert_eq!(check(bearer(&format!("Bearer {TOKEN}"))).await, 101);
    assert_eq!(check(bearer(&format!("bearer {TOKEN}"))).await, 101);
    assert_eq!(check(bearer(&format!("BEARER   {TOKEN}"))).await, 101);
    // Wrong: 401 invalid_token (RFC 6750 section 3.1).
    assert_eq!(check(bearer("Bearer tok-124.abc_XYZ~")).await, 401);
    assert_eq!(check(bearer(&format!("Bearer {TOKEN}x"))).await, 401);
    assert_eq!(check(bearer("Bearer tok")).await, 401);
    // Missing, or another scheme: 401 with a bare challenge.
    assert_eq!(check(req("/ws")).await, 401);
    assert_eq!(check(bearer("Basic dXNlcjpwYXNz")).await, 401);
    // Malformed: 400 invalid_request.
    assert_eq!(check(bearer("Bearer")).await, 400);
    assert_eq!(check(bearer("Bearer ")).await, 400);
    assert_eq!(check(bearer(&format!("Bearer {TOKEN} extra"))).await, 400);
    assert_eq!(check(bearer("Bearer a,b")).await, 400);
    assert_eq!(check(bearer("Bearer ===")).await, 400);
    // Two Authorization headers with bearer tokens.
    let two = bearer(&format!("Bearer {TOKEN}")).header("Authorization", format!("Bearer {TOKEN}"));
    assert_eq!(check(two).await, 400);
    // The header is ignored when turned off.
    let off = BearerAuth::default().with_header(false).with_query("t");
    assert_eq!(
        status(bearer(&format!("Bearer {TOKEN}")), |req| off
            .authorize_token(req, TOKEN.as_bytes()))
        .await,
        401
    );
}

#[tokio::test]
async fn challenges_follow_rfc_6750() {
    let auth = BearerAuth::default().with_realm("chat \"eu\"");
    let missing = raw_response(&upgrade_request(""), |req| {
        auth.authorize_token(req, TOKEN.as_bytes())
    })
    .await;
    assert!(missing.starts_with("HTTP/1.1 401 "), "{missing}");
    assert!(
        missing.contains("\r\nWWW-Authenticate: Bearer realm=\"chat \\\"eu\\\"\"\r\n"),
        "{missing}"
    );
    assert!(!missing.contains("error="), "{missing}");

    let wrong = raw_response(&upgrade_request("Authorization: Bearer nope\r\n"), |req| {
        auth.authorize_token(req, TOKEN.as_bytes())
    })
    .await;
    assert!(wrong.starts_with("HTTP/1.1 401 "), "{wrong}");
    assert!(
        wrong.contains(
            "\r\nWWW-Authenticate: Bearer realm=\"chat \\\"eu\\\"\", error=\"invalid_token\"\r\n"
        ),
        "{wrong}"
    );

    let plain = BearerAuth::default();
    let bad = raw_response(&upgrade_request("Authorization: Bearer\r\n"), |req| {
        plain.authorize_token(req, TOKEN.as_bytes())
    })
    .await;
    assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
    assert!(
        bad.contains("\r\nWWW-Authenticate: Bearer error=\"invalid_request\"\r\n"),
        "{bad}"
    );

    let scope = raw_response(&upgrade_request("Authorization: Bearer ok\r\n"), |req| {
        plain
            .authorize(req, |_| Err::<(), _>(TokenError::InsufficientScope))
            .map(|(_, a)| a)
    })
    .await;
    assert!(scope.starts_with("HTTP/1.1 403 "), "{scope}");
    assert!(scope.contains("error=\"insufficient_scope\""), "{scope}");
}

#[tokio::test]
async fn query_token_is_percent_decoded() {
    let auth = BearerAuth::default().with_query("access_token");
    let expect = |expected: &'static str, path: &str| {
        let auth = auth.clone();
        status(req(path), move |req| {
            auth.authorize_token(req, expected.as_bytes())
        })
    };
    assert_eq!(
        expect(TOKEN, &format!("/ws?access_token={TOKEN}")).await,
        101
    );
    assert_eq!(
        expect(TOKEN, &format!("/ws?room=1&access_token={TOKEN}&x")).await,
        101
    );
    assert_eq!(expect("a+b/c=", "/ws?access_token=a%2Bb%2Fc%3D").await, 101);
    // `+` is a space in a query (as URLSearchParams writes it).
    assert_eq!(expect("a b", "/ws?access_token=a+b").await, 101);
    assert_eq!(expect("a+b", "/ws?access_token=a+b").await, 401);
    assert_eq!(expect(TOKEN, "/ws?access_token=wrong").await, 401);
    assert_eq!(expect(TOKEN, "/ws?token=abc").await, 401);
    assert_eq!(expect(TOKEN, "/ws").await, 401);
    assert_eq!(expect(TOKEN, "/ws?access_token=").await, 400);
    assert_eq!(
        expect(
            TOKEN,
            &format!("/ws?access_token={TOKEN}&access_token={TOKEN}")
        )
        .await,
        400
    );
    // Off by default.
    let header_only = BearerAuth::default();
    assert_eq!(
        status(req(&format!("/ws?access_token={TOKEN}")), |req| header_only
            .authorize_token(req, TOKEN.as_bytes()))
        .await,
        401
    );
}

#[tokio::test]
async fn subprotocol_pair_echoes_the_marker_never_the_token() {
    let auth = BearerAuth::default().with_subprotocol(SubprotocolToken::pair("bearer"));
    let run = |r: ClientRequest| {
        let auth = auth.clone();
        handshake(r, move |req| auth.authorize_token(req, TOKEN.as_bytes()))
    };
    let (resp, accepted) = run(req("/ws").protocol("bearer").protocol(TOKEN)).await;
    let resp = resp.unwrap();
    assert!(accepted);
    assert_eq!(resp.protocol.as_deref(), Some("bearer"));
    // With an application protocol offered first, the marker is still what is echoed.
    let (resp, _) = run(req("/ws")
        .protocol("chat")
        .protocol("bearer")
        .protocol(TOKEN))
    .await;
    assert_eq!(resp.unwrap().protocol.as_deref(), Some("bearer"));

    let code = |r| {
        let auth = auth.clone();
        status(r, move |req| auth.authorize_token(req, TOKEN.as_bytes()))
    };
    assert_eq!(
        code(req("/ws").protocol("bearer").protocol("wrong")).await,
        401
    );
    assert_eq!(code(req("/ws").protocol("chat")).await, 401);
    assert_eq!(
        code(req("/ws").protocol(TOKEN).protocol("bearer")).await,
        400
    );
    assert_eq!(
        code(req("/ws").protocol("bearer").protocol("bearer")).await,
        400
    );
    assert_eq!(
        code(
            req("/ws")
                .protocol("bearer")
                .protocol(TOKEN)
                .protocol("bearer")
                .protocol(TOKEN)
        )
        .await,
        400
    );
}

#[tokio::test]
async fn subprotocol_prefix_echoes_the_named_protocol() {
    let auth = BearerAuth::default()
        .with_header(false)
        .with_subprotocol(SubprotocolToken::prefixed("access_token.", "chat.v1"));
    let run = |r: ClientRequest| {
        let auth = auth.clone();
        handshake(r, move |req| auth.authorize_token(req, TOKEN.as_bytes()))
    };
    let token_proto = format!("access_token.{TOKEN}");
    let (resp, accepted) = run(req("/ws").protocol("chat.v1").protocol(&token_proto)).await;
    assert!(accepted);
    assert_eq!(resp.unwrap().protocol.as_deref(), Some("chat.v1"));
    let (resp, _) = run(req("/ws").protocol(&token_proto).protocol("chat.v1")).await;
    assert_eq!(resp.unwrap().protocol.as_deref(), Some("chat.v1"));

    let code = |r| {
        let auth = auth.clone();
        status(r, move |req| auth.authorize_token(req, TOKEN.as_bytes()))
    };
    assert_eq!(
        code(req("/ws").protocol("chat.v1").protocol("access_token.nope")).await,
        401
    );
    // The protocol to echo must be offered: otherwise a browser would fail the connection.
    assert_eq!(code(req("/ws").protocol(&token_proto)).await, 400);
    assert_eq!(
        code(req("/ws").protocol("chat.v1").protocol("access_token.")).await,
        400
    );
    assert_eq!(code(req("/ws").protocol("chat.v1")).await, 401);
}

#[tokio::test]
async fn a_token_in_two_places_is_refused() {
    let auth = everywhere();
    let code = |r| {
        let auth = auth.clone();
        status(r, move |req| auth.authorize_token(req, TOKEN.as_bytes()))
    };
    let q = format!("/ws?access_token={TOKEN}");
    let h = format!("Bearer {TOKEN}");
    assert_eq!(code(req(&q)).await, 101);
    assert_eq!(code(bearer(&h)).await, 101);
    assert_eq!(
        code(req("/ws").protocol("bearer").protocol(TOKEN)).await,
        101
    );
    assert_eq!(code(req(&q).header("Authorization", h.clone())).await, 400);
    assert_eq!(
        code(bearer(&h).protocol("bearer").protocol(TOKEN)).await,
        400
    );
    assert_eq!(code(req(&q).protocol("bearer").protocol(TOKEN)).await, 400);
}

#[tokio::test]
async fn the_verifier_sees_the_token_and_its_value_comes_back() {
    let auth = everywhere();
    let mut seen = None;
    let code = status(req("/ws?access_token=alice%3A42"), |req| {
        let (user, accept) = auth.authorize(req, |t| {
            t.split_once(':')
                .filter(|(_, n)| *n == "42")
                .map(|(u, _)| u.to_string())
                .ok_or(TokenError::Invalid)
        })?;
        seen = Some(user);
        Ok(accept)
    })
    .await;
    assert_eq!(code, 101);
    assert_eq!(seen.as_deref(), Some("alice"));
}

#[tokio::test]
async fn credentials_report_their_source_and_carrier() {
    let auth = everywhere();
    let mut found = Vec::new();
    for r in [
        bearer("Bearer h"),
        req("/ws?access_token=q"),
        req("/ws").protocol("chat").protocol("bearer").protocol("p"),
    ] {
        let code = status(r, |req| {
            let c = auth.credential(req)?;
            found.push((
                c.token().to_string(),
                c.source(),
                c.protocol().map(String::from),
                c.token_protocol().map(String::from),
            ));
            Ok(c.accept())
        })
        .await;
        assert_eq!(code, 101);
    }
    assert_eq!(
        found,
        [
            ("h".into(), Source::Header, None, None),
            ("q".into(), Source::Query, None, None),
            (
                "p".into(),
                Source::Subprotocol,
                Some("bearer".into()),
                Some("p".into())
            ),
        ]
    );
}

#[tokio::test]
async fn origin_refusals_are_403() {
    let same = OriginPolicy::new();
    let listed = OriginPolicy::new().with_allowed(&["https://app.example.org"]);
    let code = |origin: Option<&str>, policy: OriginPolicy<'static>| {
        let mut r = req("/ws");
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        status(r, move |req| {
            check_origin(&policy, req).map(|_| AcceptResponse::new())
        })
    };
    assert_eq!(code(None, same).await, 101);
    assert_eq!(code(Some("https://example.com"), same).await, 101);
    assert_eq!(code(Some("https://evil.com"), same).await, 403);
    assert_eq!(code(Some("https://example.com.evil.com"), same).await, 403);
    assert_eq!(code(Some("null"), same).await, 403);
    assert_eq!(code(Some("https://u@example.com"), same).await, 403);
    assert_eq!(code(Some("https://app.example.org"), listed).await, 101);
    assert_eq!(
        code(Some("https://evil.com"), OriginPolicy::any()).await,
        101
    );

    let mut allowed = None;
    status(
        req("/ws").header("Origin", "https://app.example.org"),
        |req| {
            allowed = Some(check_origin(&listed, req)?);
            Ok(AcceptResponse::new())
        },
    )
    .await;
    assert_eq!(allowed, Some(Allowed::Listed));
}

#[tokio::test]
async fn origin_and_token_together_over_loopback_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async {
        let auth = everywhere();
        let policy = OriginPolicy::new();
        let mut results = Vec::new();
        for _ in 0..3 {
            let (tcp, _) = listener.accept().await.unwrap();
            let r = ws_tokio::accept_with(tcp, callback_decides(), |req| {
                check_origin(&policy, req)?;
                auth.authorize_token(req, TOKEN.as_bytes())
            })
            .await;
            results.push(match r {
                Ok(_) => 101,
                Err(Error::Rejected { status }) => status,
                Err(e) => panic!("{e:?}"),
            });
        }
        results
    };
    let url = format!("ws://{addr}/ws?access_token={TOKEN}");
    let client = async {
        let host = addr.to_string();
        let mut got = Vec::new();
        for origin in [
            format!("http://{host}"),
            "https://evil.com".to_string(),
            String::new(),
        ] {
            let mut r = ClientRequest::default();
            if !origin.is_empty() {
                r = r.header("Origin", origin);
            }
            got.push(match ws_tokio::connect_request(&url, r).await {
                Ok((_, resp)) => resp.status,
                Err(Error::Rejected { status }) => status,
                Err(e) => panic!("{e:?}"),
            });
        }
        got
    };
    let (server, client) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(server, client)
    })
    .await
    .unwrap();
    assert_eq!(server, [101, 403, 101]);
    assert_eq!(client, server);
}

#[test]
fn tokens_compare_by_content_and_length() {
    assert!(tokens_equal(b"secret", b"secret"));
    assert!(tokens_equal(b"", b""));
    assert!(!tokens_equal(b"secret", b"secreT"));
    assert!(!tokens_equal(b"secret", b"secret2"));
    assert!(!tokens_equal(b"secret", b""));
}
