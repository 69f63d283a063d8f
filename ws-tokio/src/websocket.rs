//! The public WebSocket stream over one transport.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use std::sync::Arc;

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use ws_proto::{CloseFrame, Connection, Message, PreparedMessage, Role, State};

use crate::config::Config;
use crate::engine::{Reader, Whole, Writer, flush_all, poll_recv};
use crate::error::Error;

/// A WebSocket connection over the transport `S`.
///
/// [`recv`](Self::recv) and [`send`](Self::send) are cancel-safe: dropping either future loses
/// no received data, and a message is either queued whole or not at all. Keepalive pings,
/// pongs, close answers and timeouts are handled while `recv` (or the `Stream`) is polled.
///
/// ```no_run
/// # async fn run(mut ws: ws_tokio::WebSocket<tokio::net::TcpStream>) -> Result<(), ws_tokio::Error> {
/// use ws_tokio::Message;
///
/// while let Some(msg) = ws.recv().await {
///     if let m @ (Message::Text(_) | Message::Binary(_)) = msg? {
///         ws.send(m).await?;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WebSocket<S> {
    pub(crate) io: S,
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    pub(crate) fn from_parts(
        io: S,
        mut conn: Connection,
        config: &Config,
        leftover: Vec<u8>,
    ) -> Self {
        let sender = conn.take_sender();
        WebSocket {
            io,
            reader: Reader::new(conn, leftover),
            writer: Writer::new(config, sender),
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.reader.conn.role()
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        self.reader.conn.state()
    }

    /// Whether permessage-deflate was negotiated in the opening handshake.
    pub fn compression_enabled(&self) -> bool {
        self.reader.conn.compression_enabled()
    }

    /// The underlying transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Polls for the next message. See [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let WebSocket { io, reader, writer } = self;
        poll_recv(&mut Whole { io, writer }, reader, cx)
    }

    /// Receives the next message. `None` once the connection has closed cleanly.
    ///
    /// Pings are answered automatically (and returned too); the peer's close frame is returned
    /// once, with its answer already queued, and later calls finish the close handshake and
    /// return `None`. An error reports how the connection ended. Before it waits for data, it
    /// writes out everything queued: pongs, keepalive pings and messages from
    /// [`feed`](Self::feed).
    ///
    /// Cancel-safe: bytes read are processed into the connection's state before the future
    /// returns, so dropping it loses nothing.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Sends a message and flushes it. `Message::Close` starts the close handshake (see
    /// [`close`](Self::close)).
    ///
    /// Cancel-safe in this sense: once the future has been polled past waiting for buffer
    /// space, the message is in the write buffer whole and the next send or flush delivers it.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.start_send_inner(msg)?;
        self.flush().await
    }

    /// Queues a message without writing it; waits for buffer space. It goes out with the next
    /// [`flush`](Self::flush) or [`send`](Self::send), or when [`recv`](Self::recv) next waits
    /// for data. A loop that answers each received message with `feed` thus writes the replies
    /// to one read's worth of messages with one system call.
    pub async fn feed(&mut self, msg: Message) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.start_send_inner(msg)
    }

    /// Sends a [`PreparedMessage`] and flushes it: a server writes the message's shared frame
    /// (compressed once for every connection with the same window) without copying it; a
    /// client encodes its payload as it would any message.
    ///
    /// ```no_run
    /// # async fn run(clients: &mut [ws_tokio::WebSocket<tokio::net::TcpStream>]) -> Result<(), ws_tokio::Error> {
    /// use ws_tokio::{Message, PreparedMessage};
    ///
    /// let prepared = PreparedMessage::new(Message::text("to everyone"))?;
    /// for ws in clients {
    ///     ws.send_prepared(&prepared).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(prepared).await?;
        self.flush().await
    }

    /// Queues a [`PreparedMessage`] without writing it, like [`feed`](Self::feed): several
    /// queued frames leave together in one vectored write.
    pub async fn feed_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.start_send_prepared(prepared)
    }

    /// A `Sink` of `Arc<PreparedMessage>`s over this connection (closing it only flushes).
    pub fn prepared_sink(&mut self) -> PreparedSink<'_, Self> {
        PreparedSink(self)
    }

    fn start_send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        if !self.reader.conn.state().can_send() {
            return Err(Error::Closed);
        }
        self.writer.encode_prepared(prepared)?;
        self.writer.take_controls(&mut self.reader.conn);
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let r = ready!(flush_all(
            &mut self.reader.conn,
            &mut self.writer,
            &mut self.io,
            cx
        ));
        Poll::Ready(r.map_err(|e| self.writer_failed(e)))
    }

    /// Waits for room in the write buffer; `Closed` once nothing more can be sent.
    fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.reader.conn.state().can_send() {
            return Poll::Ready(Err(Error::Closed));
        }
        let r = ready!(self.writer.poll_ready(&mut self.io, cx));
        Poll::Ready(r.map_err(|e| self.writer_failed(e)))
    }

    /// A write failed (the transport, or the write deadline): the connection is over, and
    /// `recv` reports how.
    fn writer_failed(&mut self, e: Error) -> Error {
        let kept = match &e {
            Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
            Error::Timeout(t) => Error::Timeout(*t),
            Error::PeerVanished => Error::PeerVanished,
            _ => return e,
        };
        self.reader.fail(kept);
        e
    }

    fn start_send_inner(&mut self, msg: Message) -> Result<(), Error> {
        if let Message::Close(frame) = msg {
            return self.reader.close(frame.as_ref());
        }
        if !self.reader.conn.state().can_send() {
            return Err(Error::Closed);
        }
        self.writer.encode(msg)?;
        self.writer.take_controls(&mut self.reader.conn);
        Ok(())
    }

    /// Closes the connection: sends a close frame (`None`: one without a code), waits (up to
    /// the close timeout) for the peer's, discarding messages that arrive meanwhile, and ends
    /// the transport. `Ok` when the handshake completed.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.reader.conn.state() == State::Open {
            self.reader.close(frame.as_ref())?;
        }
        self.flush().await?;
        loop {
            match self.recv().await {
                None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Splits into a write half and a read half that can be used from different tasks, in the
    /// order of `futures`' `StreamExt::split` (sink first), so code written for
    /// tokio-tungstenite or axum keeps working. See [`crate::ReadHalf`].
    pub fn split(self) -> (crate::WriteHalf<S>, crate::ReadHalf<S>)
    where
        S: Send + 'static,
    {
        crate::split::split(self)
    }
}

/// A `Sink` of prepared messages over a [`WebSocket`] or a [`WriteHalf`](crate::WriteHalf),
/// from [`WebSocket::prepared_sink`]: the connection's own `Sink` takes [`Message`]s (one item
/// type, so that `SinkExt` calls need no annotations).
#[derive(Debug)]
pub struct PreparedSink<'a, W>(pub(crate) &'a mut W);

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Arc<PreparedMessage>>
    for PreparedSink<'_, WebSocket<S>>
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().0.poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Arc<PreparedMessage>) -> Result<(), Error> {
        self.get_mut().0.start_send_prepared(&item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().0.poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().start_send_inner(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_inner(cx)
    }

    /// Closes with 1000 (unless a close was sent already) and runs the close handshake.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.reader.conn.state() == State::Open {
            this.reader
                .close(Some(&CloseFrame::new(ws_proto::CloseCode::NORMAL, "")))?;
        }
        ready!(this.poll_flush_inner(cx))?;
        loop {
            match ready!(this.poll_recv(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }
}
