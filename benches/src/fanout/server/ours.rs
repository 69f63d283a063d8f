//! Ours: the fan-out hub of `ws-tokio`, all in this module (a topics layer replaces it in one
//! place).
//!
//! The publisher's task frames each message once as a [`PreparedMessage`] and, with
//! permessage-deflate, compresses it once per window its subscribers negotiated
//! ([`PreparedMessage::compress`] with one shared [`Compressor`]); then it puts one
//! `Arc` of it into a bounded `tokio::sync::broadcast` channel ([`QUEUE`] messages). Each
//! subscriber's task takes what is ready from the channel, queues every frame with
//! [`feed_prepared`](ws_tokio::WebSocket::feed_prepared) (the shared bytes, not a copy) and
//! writes them all with one `flush` (one vectored write for a burst). A subscriber that does
//! not keep up is held back by its write buffer (`write_buffer_size`, 128 KiB) and then
//! loses the messages the channel no longer holds (`Lagged`), instead of growing the server:
//! memory stays bounded by the channel's [`QUEUE`] messages plus each stalled subscriber's
//! write buffer, whatever the number of stalled subscribers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};

use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use ws_proto::deflate::{Compressor, DeflateConfig, negotiate_server};
use ws_tokio::{AcceptResponse, Message, PreparedMessage};

use super::super::PUB_PATH;

/// Messages the channel holds for subscribers that are behind (a burst must fit).
pub const QUEUE: usize = 256;
/// Most frames queued before one flush.
const BATCH: usize = 256;

/// The shared state: the channel, and the compression windows subscribers negotiated.
#[derive(Debug)]
pub(super) struct Hub {
    tx: broadcast::Sender<Arc<PreparedMessage>>,
    /// Bit `b` set: some subscriber's decompressor has a window of `b` bits.
    windows: AtomicU16,
    config: ws_tokio::Config,
}

impl Hub {
    /// `deflate`: accept permessage-deflate at this zlib level, with a shared compressor and
    /// no context takeover. `defaults`: ws-tokio's default timers (pings, write timeout)
    /// instead of the comparison's settings.
    pub(super) fn new(deflate: Option<u8>, defaults: bool) -> Arc<Hub> {
        let base = if defaults {
            ws_tokio::Config::default()
        } else {
            crate::server::ours_config()
        };
        let compression = deflate.map(|level| {
            DeflateConfig::DEFAULT
                .with_shared_compressor(true)
                .with_no_context_takeover(true)
                .with_level(level)
        });
        Arc::new(Hub {
            tx: broadcast::channel(QUEUE).0,
            windows: AtomicU16::new(0),
            config: base.with_compression(compression),
        })
    }
}

/// Serves one connection: the publisher (path [`PUB_PATH`]) or a subscriber.
pub(super) async fn connection(hub: Arc<Hub>, tcp: TcpStream) {
    let mut sub = None;
    let accepted = ws_tokio::accept_with(tcp, hub.config, |req| {
        if req.path() != PUB_PATH {
            if let Some(n) = hub
                .config
                .compression
                .and_then(|dc| negotiate_server(req.extensions(), &dc))
            {
                hub.windows
                    .fetch_or(1 << n.server_max_window_bits.clamp(9, 15), Relaxed);
            }
            // Subscribed before the client sees the 101: it gets every later message.
            sub = Some(hub.tx.subscribe());
        }
        Ok(AcceptResponse::new())
    })
    .await;
    let Ok(mut ws) = accepted else {
        return;
    };
    match sub {
        None => publish(&hub, &mut ws).await,
        Some(rx) => subscribe(rx, &mut ws).await,
    }
}

/// The publisher: every text or binary message framed (and compressed) once, then sent to
/// the channel.
async fn publish(hub: &Hub, ws: &mut ws_tokio::WebSocket<TcpStream>) {
    let mut compressor = hub.config.compression.map(|dc| Compressor::new(dc.level));
    while let Some(Ok(m)) = ws.recv().await {
        if !matches!(m, Message::Text(_) | Message::Binary(_)) {
            continue;
        }
        let Ok(mut prepared) = PreparedMessage::new(m) else {
            continue;
        };
        if let Some(c) = &mut compressor {
            let windows = hub.windows.load(Relaxed);
            for bits in 9..=15u8 {
                if windows & (1 << bits) != 0 {
                    let _ = prepared.compress(c, bits);
                }
            }
        }
        // No subscriber is not an error.
        let _ = hub.tx.send(Arc::new(prepared));
    }
}

/// A subscriber: what is ready in the channel, queued and written with one flush.
async fn subscribe(
    mut rx: broadcast::Receiver<Arc<PreparedMessage>>,
    ws: &mut ws_tokio::WebSocket<TcpStream>,
) {
    loop {
        let first = tokio::select! {
            biased;
            r = rx.recv() => r,
            m = ws.recv() => match m {
                Some(Ok(_)) => continue,
                // A close, an error or the end.
                _ => return,
            },
        };
        let first = match first {
            Ok(m) => m,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        if ws.feed_prepared(&first).await.is_err() {
            return;
        }
        for _ in 1..BATCH {
            match rx.try_recv() {
                Ok(m) => {
                    if ws.feed_prepared(&m).await.is_err() {
                        return;
                    }
                }
                Err(TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}
