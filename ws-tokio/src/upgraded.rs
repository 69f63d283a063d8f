//! A WebSocket over a stream whose opening handshake was done elsewhere.

use tokio::io::{AsyncRead, AsyncWrite};
use ws_proto::Role;
use ws_proto::deflate::Negotiated;

use crate::config::Config;
use crate::error::Error;
use crate::handshake::connection;
use crate::websocket::WebSocket;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Runs the WebSocket protocol over `io`, a stream whose opening handshake is already done:
    /// an HTTP/2 extended CONNECT stream (RFC 8441; the `http2` module, with the `http`
    /// feature, does that handshake), a hyper HTTP/1.1 `Upgraded`, or any transport where both ends agreed on a
    /// WebSocket by other means. Nothing is read or written here.
    ///
    /// `role` is this end's; a client masks what it sends, a server expects masked frames.
    /// `deflate` is the permessage-deflate agreement of the handshake (`None` for none, as made
    /// by [`deflate::negotiate_server`](crate::deflate::negotiate_server) or
    /// [`deflate::negotiate_client`](crate::deflate::negotiate_client)); `config.compression`
    /// and `config.handshake_timeout` are not used.
    ///
    /// Fails with [`Error::Usage`] when `config` makes no sense (for example a zero limit).
    pub fn from_upgraded(
        io: S,
        role: Role,
        config: Config,
        deflate: Option<Negotiated>,
    ) -> Result<Self, Error> {
        Self::from_upgraded_with_buffered(io, role, config, deflate, Vec::new())
    }

    /// [`from_upgraded`](Self::from_upgraded) for a stream from which bytes past the handshake
    /// were already read: `buffered` holds them, and they are processed before anything read
    /// from `io`.
    pub fn from_upgraded_with_buffered(
        io: S,
        role: Role,
        config: Config,
        deflate: Option<Negotiated>,
        buffered: Vec<u8>,
    ) -> Result<Self, Error> {
        let conn = connection(role, &config, deflate)?;
        Ok(WebSocket::from_parts(io, conn, &config, buffered))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::DuplexStream;
    use ws_proto::deflate::{self, DeflateConfig};
    use ws_proto::{CloseCode, CloseFrame, Message};

    use super::*;

    async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
        match tokio::time::timeout(Duration::from_secs(10), f).await {
            Ok(v) => v,
            Err(_) => panic!("timed out: {what}"),
        }
    }

    fn config() -> Config {
        Config::default()
            .with_ping_interval(None)
            .with_close_timeout(Duration::from_secs(2))
    }

    /// The agreement both ends reach for the default offer.
    fn agreed() -> Negotiated {
        let mut offer = [0u8; 256];
        let len = deflate::write_offer(&DeflateConfig::DEFAULT, &mut offer).unwrap();
        let offer = std::str::from_utf8(&offer[..len]).unwrap();
        let n = deflate::negotiate_server(offer.split(", "), &DeflateConfig::DEFAULT).unwrap();
        let mut answer = [0u8; 256];
        let len = deflate::write_response(&n, &mut answer).unwrap();
        let answer = std::str::from_utf8(&answer[..len]).unwrap();
        let c = deflate::negotiate_client([answer], &DeflateConfig::DEFAULT)
            .unwrap()
            .unwrap();
        assert_eq!(c, n);
        n
    }

    fn pair(deflate: Option<Negotiated>) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
        let (a, b) = tokio::io::duplex(64 << 10);
        let server = WebSocket::from_upgraded(a, Role::Server, config(), deflate).unwrap();
        let client = WebSocket::from_upgraded(b, Role::Client, config(), deflate).unwrap();
        (server, client)
    }

    async fn echo_once(server: &mut WebSocket<DuplexStream>) {
        match bounded("server recv", server.recv()).await {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                bounded("server send", server.send(m)).await.unwrap()
            }
            other => panic!("server got {other:?}"),
        }
    }

    async fn round_trips(deflate: Option<Negotiated>) {
        let (mut server, mut client) = pair(deflate);
        assert_eq!(server.role(), Role::Server);
        assert_eq!(client.role(), Role::Client);
        assert_eq!(server.compression_enabled(), deflate.is_some());
        assert_eq!(client.compression_enabled(), deflate.is_some());
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let messages = [
            Message::text("hello"),
            Message::text(""),
            Message::binary(big),
            Message::binary(Vec::new()),
        ];
        for m in messages {
            // The pipe holds less than the large message: both ends run at once.
            let client_side = async {
                bounded("client send", client.send(m.clone()))
                    .await
                    .unwrap();
                bounded("client recv", client.recv()).await
            };
            let (got, ()) = tokio::join!(client_side, echo_once(&mut server));
            assert_eq!(got.unwrap().unwrap(), m);
        }

        let srv = tokio::spawn(async move {
            let mut closes = Vec::new();
            while let Some(m) = server.recv().await {
                closes.push(m.unwrap());
            }
            closes
        });
        bounded(
            "close",
            client.close(Some(CloseFrame::new(CloseCode::NORMAL, "done"))),
        )
        .await
        .unwrap();
        let closes = bounded("server end", srv).await.unwrap();
        assert_eq!(
            closes,
            [Message::Close(Some(CloseFrame::new(
                CloseCode::NORMAL,
                "done"
            )))]
        );
    }

    #[tokio::test]
    async fn client_and_server_without_handshake() {
        round_trips(None).await;
    }

    #[tokio::test]
    async fn client_and_server_with_deflate() {
        round_trips(Some(agreed())).await;
    }

    #[tokio::test]
    async fn buffered_bytes_come_first() {
        let (a, b) = tokio::io::duplex(1024);
        // A masked text frame "hi" that arrived with the handshake.
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x82];
        frame.extend_from_slice(&mask);
        frame.extend(b"hi".iter().zip(mask).map(|(b, m)| b ^ m));
        let mut server =
            WebSocket::from_upgraded_with_buffered(a, Role::Server, config(), None, frame).unwrap();
        let mut client = WebSocket::from_upgraded(b, Role::Client, config(), None).unwrap();
        bounded("client send", client.send(Message::text("there")))
            .await
            .unwrap();
        let first = bounded("first", server.recv()).await.unwrap().unwrap();
        let second = bounded("second", server.recv()).await.unwrap().unwrap();
        assert_eq!(first, Message::text("hi"));
        assert_eq!(second, Message::text("there"));
    }

    #[tokio::test]
    async fn invalid_config_is_an_error() {
        let (a, _b) = tokio::io::duplex(64);
        let bad = config().with_max_frame_size(0);
        let r = WebSocket::from_upgraded(a, Role::Client, bad, None);
        assert!(matches!(r, Err(Error::Usage(_))), "{r:?}");
    }
}
