//! permessage-deflate (RFC 7692): negotiation for both roles, and the per-connection codec
//! with an output budget.
//!
//! Negotiation is `no_std` and allocation-free. The codec (feature `deflate`) uses `zlib-rs`,
//! which can honour a compressor window smaller than 15 bits.

use crate::error::{Error, HandshakeError};
use crate::handshake::extension::{Extension, Param, Params};
use crate::handshake::write::Writer;

/// The extension token.
pub const EXTENSION: &str = "permessage-deflate";

/// What this endpoint is willing to do.
///
/// ```
/// use ws_proto::deflate::DeflateConfig;
///
/// let lean = DeflateConfig::default().with_no_context_takeover(true).with_max_window_bits(10);
/// assert_eq!(lean.max_window_bits, 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Ask the peer not to keep its compression context between messages, and (server) reset
    /// our own context too: the memory-lean mode, where buffers are released between messages.
    pub no_context_takeover: bool,
    /// Largest LZ77 window (9-15) our compressor uses, unless the peer asks for less.
    pub max_window_bits: u8,
    /// Accept a peer's request that we reset our context per message (server: the
    /// `server_no_context_takeover` parameter in an offer). Declining means the offer is refused.
    pub accept_no_context_takeover: bool,
    /// Accept a peer's request for a smaller compressor window (`server_max_window_bits` in an
    /// offer, `client_max_window_bits` in a response). Declining means the offer is refused.
    pub accept_max_window_bits: bool,
    /// Messages shorter than this are sent uncompressed.
    pub min_size: usize,
    /// zlib compression level, 0-9.
    pub level: u8,
    /// Compress with a [`Compressor`] the caller holds (one per thread, say) instead of one per
    /// connection: every message is compressed on its own, no compression state is kept per
    /// connection, and a message sent to many connections is compressed once for all of them
    /// ([`PreparedMessage`](crate::PreparedMessage)). RFC 7692 lets a sender drop its context
    /// at any message. Costs some ratio on streams of similar messages.
    pub shared_compressor: bool,
    /// Server: ask the client to reset its compression context after every message
    /// (`client_no_context_takeover`; RFC 7692 section 7.1.1.2 lets a server ask even when the
    /// offer did not), so that no decompressor state is held between messages (see
    /// [`InflatePool`]). Clients ignore it.
    pub client_no_context_takeover: bool,
}

impl DeflateConfig {
    /// The defaults, for servers with very many connections as much as for clients: no
    /// compression state kept per connection between messages. Messages are compressed with a
    /// shared compressor, each on its own; a server asks its clients to do the same
    /// (`client_no_context_takeover`) and lends its decompressor state from a pool; a client
    /// lets the server keep its context. 15-bit windows, every parameter accepted, messages of
    /// 16 bytes or more compressed at level 2. (Level 1 is faster but uses fixed codes only,
    /// which make incompressible data about 5% larger; from level 2 on the compressor falls
    /// back to stored blocks, and text comes out a quarter smaller than at level 1.)
    pub const DEFAULT: DeflateConfig = DeflateConfig {
        no_context_takeover: false,
        max_window_bits: 15,
        accept_no_context_takeover: true,
        accept_max_window_bits: true,
        min_size: 16,
        level: 2,
        shared_compressor: true,
        client_no_context_takeover: true,
    };

    /// Context takeover both ways, with a compressor per connection: better ratios on streams
    /// of similar messages, at about 300 KiB of compressor and decompressor state per
    /// connection.
    pub const CONTEXT_TAKEOVER: DeflateConfig = DeflateConfig {
        shared_compressor: false,
        client_no_context_takeover: false,
        ..Self::DEFAULT
    };

    /// No context takeover in either direction, asked of the peer too (a client asks the
    /// server to reset its context as well).
    pub const LEAN: DeflateConfig = DeflateConfig {
        no_context_takeover: true,
        ..Self::DEFAULT
    };
}

impl DeflateConfig {
    /// Sets whether both sides reset their compression context after every message.
    pub const fn with_no_context_takeover(mut self, on: bool) -> Self {
        self.no_context_takeover = on;
        self
    }

    /// Sets the largest window (9-15) our compressor uses.
    pub const fn with_max_window_bits(mut self, bits: u8) -> Self {
        self.max_window_bits = bits;
        self
    }

    /// Sets whether a peer's request that we reset our context per message is accepted.
    pub const fn with_accept_no_context_takeover(mut self, on: bool) -> Self {
        self.accept_no_context_takeover = on;
        self
    }

    /// Sets whether a peer's request for a smaller compressor window is accepted.
    pub const fn with_accept_max_window_bits(mut self, on: bool) -> Self {
        self.accept_max_window_bits = on;
        self
    }

    /// Sets the size below which messages are sent uncompressed.
    pub const fn with_min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// Sets the zlib compression level, 0-9.
    pub const fn with_level(mut self, level: u8) -> Self {
        self.level = level;
        self
    }

    /// Sets whether a server asks its clients to reset their compression context after every
    /// message.
    pub const fn with_client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// Sets whether messages are compressed with a shared [`Compressor`] (no compression state
    /// per connection).
    pub const fn with_shared_compressor(mut self, on: bool) -> Self {
        self.shared_compressor = on;
        self
    }
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The agreed parameters of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's compressor window, 8-15.
    pub server_max_window_bits: u8,
    /// The client's compressor window, 8-15.
    pub client_max_window_bits: u8,
    /// Messages shorter than this are sent uncompressed (local setting).
    pub min_size: usize,
    /// Compression level (local setting).
    pub level: u8,
    /// Messages are compressed with a shared compressor (local setting).
    pub shared_compressor: bool,
}

/// The parameters of one `permessage-deflate` offer or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `Some(None)`: present without a value.
    server_max_window_bits: Option<Option<u8>>,
    client_max_window_bits: Option<Option<u8>>,
}

/// A window-bits value: absent, or 8-15 written with one or two digits (quoted or not).
fn parse_bits(v: Option<&str>) -> Result<Option<u8>, ()> {
    let Some(v) = v else {
        return Ok(None);
    };
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    match v.parse::<u8>() {
        Ok(b @ 8..=15) => Ok(Some(b)),
        _ => Err(()),
    }
}

/// Gives the parameters of one `permessage-deflate` item their meaning; errors on unknown,
/// duplicate or malformed parameters.
fn parse_params(params: Params<'_>) -> Result<Parsed, ()> {
    let mut p = Parsed::default();
    for param in params {
        let Param { name, value } = param.map_err(|_| ())?;
        match kind(name) {
            N::ServerNoContext if value.is_none() && !p.server_no_context_takeover => {
                p.server_no_context_takeover = true
            }
            N::ClientNoContext if value.is_none() && !p.client_no_context_takeover => {
                p.client_no_context_takeover = true
            }
            N::ServerBits if p.server_max_window_bits.is_none() => {
                p.server_max_window_bits = Some(parse_bits(value)?)
            }
            N::ClientBits if p.client_max_window_bits.is_none() => {
                p.client_max_window_bits = Some(parse_bits(value)?)
            }
            _ => return Err(()),
        }
    }
    Ok(p)
}

/// Known parameter names.
#[derive(PartialEq, Eq)]
enum N {
    ServerNoContext,
    ClientNoContext,
    ServerBits,
    ClientBits,
    Other,
}

/// Which parameter `name` is (case-insensitive).
fn kind(name: &str) -> N {
    let eq = |s: &str| name.eq_ignore_ascii_case(s);
    if eq("server_no_context_takeover") {
        N::ServerNoContext
    } else if eq("client_no_context_takeover") {
        N::ClientNoContext
    } else if eq("server_max_window_bits") {
        N::ServerBits
    } else if eq("client_max_window_bits") {
        N::ClientBits
    } else {
        N::Other
    }
}

/// Server side: picks the first acceptable `permessage-deflate` offer among `offers` (one item
/// per extension offer, as [`crate::handshake::Request::extensions`] yields them).
/// Malformed offers are skipped; `None` when none is acceptable.
pub fn negotiate_server<'a>(
    offers: impl IntoIterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Option<Negotiated> {
    for item in offers {
        let Extension { name, params } = Extension::parse(item);
        if !name.eq_ignore_ascii_case(EXTENSION) {
            continue;
        }
        let Ok(p) = parse_params(params) else {
            continue;
        };
        if p.server_no_context_takeover && !config.accept_no_context_takeover {
            continue;
        }
        let server_bits = match p.server_max_window_bits {
            Some(None) => continue,
            Some(Some(b)) if !config.accept_max_window_bits => {
                if b < config.max_window_bits {
                    continue;
                }
                config.max_window_bits
            }
            Some(Some(b)) => b.min(config.max_window_bits),
            None => config.max_window_bits,
        };
        // The client's window: we inflate with a full window, so we never need to limit it.
        let client_bits = match p.client_max_window_bits {
            Some(Some(b)) => b,
            _ => 15,
        };
        return Some(Negotiated {
            server_no_context_takeover: p.server_no_context_takeover || config.no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover
                || config.no_context_takeover
                || config.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            min_size: config.min_size,
            level: config.level,
            shared_compressor: config.shared_compressor,
        });
    }
    None
}

/// Writes `name` followed by window bits.
fn put_bits(w: &mut Writer<'_>, name: &[u8], bits: u8) -> Result<(), Error> {
    w.put(name)?;
    w.decimal(usize::from(bits))
}

/// Server side: writes the `Sec-WebSocket-Extensions` value answering an accepted offer.
pub fn write_response(n: &Negotiated, out: &mut [u8]) -> Result<usize, Error> {
    let mut w = Writer::new(out);
    w.put(EXTENSION.as_bytes())?;
    if n.server_no_context_takeover {
        w.put(b"; server_no_context_takeover")?;
    }
    if n.client_no_context_takeover {
        w.put(b"; client_no_context_takeover")?;
    }
    if n.server_max_window_bits < 15 {
        put_bits(
            &mut w,
            b"; server_max_window_bits=",
            n.server_max_window_bits,
        )?;
    }
    if n.client_max_window_bits < 15 {
        put_bits(
            &mut w,
            b"; client_max_window_bits=",
            n.client_max_window_bits,
        )?;
    }
    Ok(w.finish())
}

/// Client side: writes the offer (`Sec-WebSocket-Extensions` value).
pub fn write_offer(config: &DeflateConfig, out: &mut [u8]) -> Result<usize, Error> {
    let mut w = Writer::new(out);
    w.put(EXTENSION.as_bytes())?;
    if config.no_context_takeover {
        w.put(b"; server_no_context_takeover; client_no_context_takeover")?;
    }
    if config.max_window_bits < 15 {
        put_bits(&mut w, b"; server_max_window_bits=", config.max_window_bits)?;
    }
    if config.accept_max_window_bits {
        w.put(b"; client_max_window_bits")?;
    }
    if !config.no_context_takeover && config.accept_no_context_takeover {
        // A second, less preferred offer: servers that want the client to reset its context
        // per message can pick this one (RFC 7692 section 5: offers in preference order).
        w.put(b", permessage-deflate; client_no_context_takeover")?;
        if config.accept_max_window_bits {
            w.put(b"; client_max_window_bits")?;
        }
    }
    Ok(w.finish())
}

/// Client side: checks the server's answer (the items of its `Sec-WebSocket-Extensions`)
/// against our offer. `None` when the server declined compression.
pub fn negotiate_client<'a>(
    response: impl IntoIterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Result<Option<Negotiated>, Error> {
    let bad = Error::Handshake(HandshakeError::InvalidExtension);
    let mut found = None;
    for item in response {
        let Extension { name, params } = Extension::parse(item);
        if !name.eq_ignore_ascii_case(EXTENSION) {
            return Err(Error::Handshake(HandshakeError::UnofferedExtension));
        }
        if found.is_some() {
            return Err(bad);
        }
        let p = parse_params(params).map_err(|_| bad)?;
        let server_bits = match p.server_max_window_bits {
            Some(Some(b)) => b,
            Some(None) => return Err(bad),
            None => 15,
        };
        if config.max_window_bits < 15 && server_bits > config.max_window_bits {
            return Err(bad);
        }
        if config.no_context_takeover && !p.server_no_context_takeover {
            return Err(bad);
        }
        let client_bits = match p.client_max_window_bits {
            Some(Some(b)) if config.accept_max_window_bits => b,
            Some(_) => return Err(bad),
            None => config.max_window_bits.clamp(8, 15),
        };
        if p.client_no_context_takeover && !config.accept_no_context_takeover {
            return Err(bad);
        }
        found = Some(Negotiated {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover || config.no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            min_size: config.min_size,
            level: config.level,
            shared_compressor: config.shared_compressor,
        });
    }
    Ok(found)
}

#[cfg(feature = "deflate")]
pub use codec::{Compressor, InflatePool, InflateState};
#[cfg(feature = "deflate")]
pub(crate) use codec::{Deflater, Inflater};

#[cfg(feature = "deflate")]
mod codec;

#[cfg(test)]
mod tests;
