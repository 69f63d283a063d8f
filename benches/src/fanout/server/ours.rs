//! Ours: `ws_tokio::topics`, as a server built on it would use it.
//!
//! Every subscriber connection is a [`Subscriber`](ws_tokio::topics::Subscriber) of one topic;
//! the publisher's task publishes each text or binary message to it. The message is framed
//! once, and with permessage-deflate compressed once per window its subscribers negotiated
//! (with this thread's shared compressor); each subscriber's queue gets an `Arc` of it, and
//! the subscriber's own task writes what queued up since its last write with one vectored
//! write. A subscriber that falls behind by its queue's bound (1024 messages or 4 MiB, the
//! defaults) is closed with 1008, so memory stays bounded whatever the number of stalled
//! subscribers.

use tokio::net::TcpStream;
use ws_tokio::topics::Topics;
use ws_tokio::{AcceptResponse, DeflateConfig, Message};

use super::super::PUB_PATH;

/// The one topic every subscriber is on.
const TOPIC: &str = "feed";

/// The shared state: the topics, and the connection settings.
#[derive(Debug, Clone)]
pub(super) struct Hub {
    topics: Topics,
    config: ws_tokio::Config,
}

impl Hub {
    /// `deflate`: accept permessage-deflate at this zlib level (the default mode otherwise: a
    /// shared compressor, clients asked for `client_no_context_takeover`). `defaults`:
    /// ws-tokio's default timers (pings, write timeout) instead of the comparison's settings.
    pub(super) fn new(deflate: Option<u8>, defaults: bool) -> Hub {
        let base = if defaults {
            ws_tokio::Config::default()
        } else {
            crate::server::ours_config()
        };
        let compression = deflate.map(|level| DeflateConfig::DEFAULT.with_level(level));
        Hub {
            topics: Topics::default(),
            config: base.with_compression(compression),
        }
    }
}

/// Serves one connection: the publisher (path [`PUB_PATH`]) or a subscriber.
pub(super) async fn connection(hub: Hub, tcp: TcpStream) {
    let mut publisher = false;
    let accepted = ws_tokio::accept_with(tcp, hub.config, |req| {
        publisher = req.path() == PUB_PATH;
        Ok(AcceptResponse::new())
    })
    .await;
    let Ok(mut ws) = accepted else {
        return;
    };
    if publisher {
        while let Some(Ok(m)) = ws.recv().await {
            if let Message::Text(_) | Message::Binary(_) = m {
                // Never waits: a full queue closes its subscriber.
                let _ = hub.topics.publish(TOPIC, m);
            }
        }
    } else {
        let mut sub = hub.topics.subscriber(ws);
        sub.subscribe(TOPIC);
        // Writing happens while `recv` waits for the peer.
        while let Some(Ok(_)) = sub.recv().await {}
    }
}

/// What the server may hold for `stalled` subscribers that never read, with messages of
/// `size` bytes: the messages their queues share (up to the queue bound, framed plain and
/// compressed) and each one's write buffer (128 KiB), before the overflow closes them.
pub fn memory_bound(size: usize, stalled: usize) -> usize {
    let q = ws_tokio::topics::QueueConfig::default();
    let retained = q.max_messages.min(q.max_bytes / size.max(1) + 1);
    retained * size * 2 + stalled * (128 << 10)
}
