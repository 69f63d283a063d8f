//! Origin checks for the opening handshake: refuse cross-site WebSocket hijacking.
//!
//! Browsers send an `Origin` header with every WebSocket request, and cookies with it; a page
//! on another site can open a socket to your server with the user's cookies unless the server
//! checks the Origin. An [`OriginPolicy`] decides from the request's `Origin` and `Host`
//! values, without allocating:
//!
//! 1. no `Origin` (a non-browser client): allowed;
//! 2. `Origin: null` (sandboxed frames, `file:` pages, some redirects): refused unless the
//!    pattern `null` is listed;
//! 3. an Origin that is not `scheme://host[:port]` (a path, userinfo, spaces, an empty port,
//!    a bad IPv6 literal...): refused as malformed;
//! 4. with [`OriginPolicy::any`] (the opt-out): allowed;
//! 5. matching a listed pattern: allowed;
//! 6. same origin as the `Host` header (on by default): allowed;
//! 7. anything else: refused.
//!
//! A refusal maps to HTTP 403 ([`Refused::STATUS`]).
//!
//! # Patterns
//!
//! - `https://app.example.com`, `http://localhost:8080`: an exact origin. The port defaults
//!   to the scheme's (`http`/`ws` 80, `https`/`wss` 443), so `https://x` is `https://x:443`.
//! - `https://*.example.com`: any subdomain at any depth (`a.example.com`, `a.b.example.com`)
//!   on that scheme and port, but neither `example.com` itself nor `evilexample.com`.
//! - `app.example.com`, `*.example.com`, `example.com:8080`: a host (pattern) alone matches
//!   every scheme, and every port unless one is given. Prefer naming the scheme: an `http`
//!   page can be rewritten by anyone on the network path.
//! - `null`: allows `Origin: null`.
//! - IPv6 literals in brackets, compared as addresses: `http://[::1]:8080`.
//!
//! Hosts compare ASCII case-insensitively. A trailing dot is part of the host (`example.com.`
//! is not `example.com`: browsers treat them as different origins). Internationalized names
//! must be written as browsers send them, in punycode (`xn--...`). A pattern that does not
//! parse never matches; [`OriginPolicy::validate`] finds such typos.
//!
//! The policy borrows its patterns (`&'a [S]`, with `S` any `AsRef<str>`): a `static` list of
//! `&str` on a microcontroller, or a `Vec<String>` loaded from a config file, without
//! building a second list.
//!
//! ```
//! use ws_proto::origin::{Allowed, OriginPolicy, Refused};
//!
//! static POLICY: OriginPolicy<'static> =
//!     OriginPolicy::new().with_allowed(&["https://app.example.com", "https://*.example.org"]);
//!
//! let host = "api.example.com";
//! assert_eq!(POLICY.check(Some("https://app.example.com"), host), Ok(Allowed::Listed));
//! assert_eq!(POLICY.check(Some("https://a.b.example.org"), host), Ok(Allowed::Listed));
//! assert_eq!(POLICY.check(Some("https://api.example.com"), host), Ok(Allowed::SameOrigin));
//! assert_eq!(POLICY.check(None, host), Ok(Allowed::NoOrigin));
//! assert_eq!(POLICY.check(Some("https://evil.com"), host), Err(Refused::CrossOrigin));
//! assert_eq!(POLICY.check(Some("null"), host), Err(Refused::Null));
//! assert_eq!(POLICY.check(Some("https://u@app.example.com"), host), Err(Refused::Malformed));
//! ```

use core::net::Ipv6Addr;

use crate::error::{Error, Usage};
use crate::handshake::Request;

/// Which origins a server accepts WebSocket requests from. See the
/// [module documentation](self) for the rules and patterns.
///
/// The default ([`OriginPolicy::new`]) allows same-origin requests and requests without an
/// `Origin` only.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginPolicy<'a, S = &'a str> {
    allowed: &'a [S],
    any: bool,
    same_origin: bool,
}

impl<'a> OriginPolicy<'a> {
    /// Same origin only: no patterns listed, same-origin on (the default).
    pub const fn new() -> Self {
        OriginPolicy {
            allowed: &[],
            any: false,
            same_origin: true,
        }
    }

    /// The opt-out: every well-formed origin is allowed (`null` only when listed). For servers
    /// that authenticate every request with a credential a cross-site page cannot know
    /// (a bearer token, not a cookie).
    pub const fn any() -> Self {
        OriginPolicy {
            allowed: &[],
            any: true,
            same_origin: true,
        }
    }
}

impl Default for OriginPolicy<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, S> OriginPolicy<'a, S> {
    /// Allows the origins matching `patterns` (replacing any list set before).
    pub const fn with_allowed<T>(self, patterns: &'a [T]) -> OriginPolicy<'a, T> {
        OriginPolicy {
            allowed: patterns,
            any: self.any,
            same_origin: self.same_origin,
        }
    }

    /// Turns the same-origin rule on (the default) or off: when off, only listed origins (and
    /// requests without an `Origin`) pass.
    pub const fn with_same_origin(mut self, on: bool) -> Self {
        self.same_origin = on;
        self
    }

    /// Allows every well-formed origin (`true`), as [`OriginPolicy::any`] does, or only those
    /// the other rules allow (`false`, the default).
    pub const fn with_any(mut self, on: bool) -> Self {
        self.any = on;
        self
    }

    /// The listed patterns.
    pub const fn allowed(&self) -> &'a [S] {
        self.allowed
    }
}

impl<S: AsRef<str>> OriginPolicy<'_, S> {
    /// Decides on a request with this `Origin` value (`None` when the header is absent) and
    /// this `Host` header value.
    pub fn check(&self, origin: Option<&str>, host: &str) -> Result<Allowed, Refused> {
        let Some(origin) = origin else {
            return Ok(Allowed::NoOrigin);
        };
        if origin == "null" {
            return if self.listed(|p| matches!(p, Pattern::Null)) {
                Ok(Allowed::Listed)
            } else {
                Err(Refused::Null)
            };
        }
        let origin = Origin::parse(origin).ok_or(Refused::Malformed)?;
        if self.any {
            Ok(Allowed::Any)
        } else if self.listed(|p| p.matches(&origin)) {
            Ok(Allowed::Listed)
        } else if self.same_origin && origin.same_as_host(host) {
            Ok(Allowed::SameOrigin)
        } else {
            Err(Refused::CrossOrigin)
        }
    }

    /// [`check`](Self::check) on a parsed request's `Origin` and `Host`.
    pub fn check_request(&self, request: &Request<'_, '_>) -> Result<Allowed, Refused> {
        self.check(request.origin(), request.host())
    }

    /// Checks that every listed pattern parses (see [`is_valid_pattern`]); errors with
    /// `Error::InvalidUsage(Usage::InvalidConfig)` otherwise.
    pub fn validate(&self) -> Result<(), Error> {
        if self.allowed.iter().all(|p| is_valid_pattern(p.as_ref())) {
            Ok(())
        } else {
            Err(Error::InvalidUsage(Usage::InvalidConfig))
        }
    }

    fn listed(&self, f: impl Fn(&Pattern<'_>) -> bool) -> bool {
        self.allowed
            .iter()
            .filter_map(|p| Pattern::parse(p.as_ref()))
            .any(|p| f(&p))
    }
}

/// True when `pattern` is one [`OriginPolicy`] understands (see the
/// [module documentation](self)).
pub fn is_valid_pattern(pattern: &str) -> bool {
    Pattern::parse(pattern).is_some()
}

/// Why a request was allowed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// No `Origin` header: not a browser.
    NoOrigin,
    /// The policy allows any origin.
    Any,
    /// The Origin matches a listed pattern.
    Listed,
    /// The Origin's host and port are the `Host` header's.
    SameOrigin,
}

/// Why a request was refused; answer with HTTP 403 ([`Refused::STATUS`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `Origin: null`, not listed.
    Null,
    /// The Origin is not a serialized origin (`scheme://host[:port]`).
    Malformed,
    /// Another site's origin, not listed.
    CrossOrigin,
}

impl Refused {
    /// The HTTP status for a refusal: 403 Forbidden.
    pub const STATUS: u16 = 403;

    /// The HTTP status for this refusal (403).
    pub const fn status(&self) -> u16 {
        Self::STATUS
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A host: a name (or IPv4 literal), compared ASCII case-insensitively, or an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host<'s> {
    Name(&'s str),
    V6(Ipv6Addr),
}

impl Host<'_> {
    fn same(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (Host::V6(a), Host::V6(b)) => a == b,
            _ => false,
        }
    }
}

/// A parsed `Origin`: `scheme://host[:port]`.
#[derive(Debug, Clone, Copy)]
struct Origin<'s> {
    scheme: &'s str,
    host: Host<'s>,
    port: Option<u16>,
}

impl<'s> Origin<'s> {
    fn parse(s: &'s str) -> Option<Origin<'s>> {
        let (scheme, authority) = s.split_once("://")?;
        if !is_scheme(scheme) {
            return None;
        }
        let (host, port) = parse_authority(authority)?;
        Some(Origin { scheme, host, port })
    }

    /// The port, or the scheme's default port.
    fn effective_port(&self) -> Option<u16> {
        self.port.or(default_port(self.scheme))
    }

    /// True when this web (`http`/`https`) origin names the host and port of the `Host`
    /// header. A `Host` without a port matches the Origin scheme's default port: behind a
    /// TLS-terminating proxy the server cannot know which one the client used.
    fn same_as_host(&self, host: &str) -> bool {
        let web =
            self.scheme.eq_ignore_ascii_case("http") || self.scheme.eq_ignore_ascii_case("https");
        let Some((h, port)) = parse_authority(host) else {
            return false;
        };
        web && self.host.same(&h) && port.or(default_port(self.scheme)) == self.effective_port()
    }
}

/// A listed pattern.
#[derive(Debug, Clone, Copy)]
enum Pattern<'s> {
    Null,
    Origin {
        /// `None`: any scheme (a host pattern alone).
        scheme: Option<&'s str>,
        host: HostPattern<'s>,
        /// `None` with no scheme: any port; with a scheme, the scheme's default port.
        port: Option<u16>,
    },
}

#[derive(Debug, Clone, Copy)]
enum HostPattern<'s> {
    Exact(Host<'s>),
    /// `*.suffix`: names ending in `.suffix`, with at least one label before it.
    Subdomains(&'s str),
}

impl<'s> Pattern<'s> {
    fn parse(s: &'s str) -> Option<Pattern<'s>> {
        if s == "null" {
            return Some(Pattern::Null);
        }
        if s.eq_ignore_ascii_case("null") {
            // Not a host called `NULL`: a misspelt `null`.
            return None;
        }
        let (scheme, authority) = match s.split_once("://") {
            Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
            Some(_) => return None,
            None => (None, s),
        };
        let (host, port) = match authority.strip_prefix("*.") {
            Some(rest) => {
                let (suffix, port) = split_port(rest)?;
                if !is_name(suffix) {
                    return None;
                }
                (HostPattern::Subdomains(suffix), port)
            }
            None => {
                let (host, port) = parse_authority(authority)?;
                (HostPattern::Exact(host), port)
            }
        };
        Some(Pattern::Origin { scheme, host, port })
    }

    fn matches(&self, origin: &Origin<'_>) -> bool {
        let Pattern::Origin { scheme, host, port } = self else {
            return false;
        };
        let port_ok = match scheme {
            Some(s) => {
                s.eq_ignore_ascii_case(origin.scheme)
                    && port.or(default_port(s)) == origin.effective_port()
            }
            None => port.is_none_or(|p| Some(p) == origin.effective_port()),
        };
        let host_ok = match host {
            HostPattern::Exact(h) => h.same(&origin.host),
            HostPattern::Subdomains(suffix) => match origin.host {
                Host::Name(name) => is_subdomain(name, suffix),
                Host::V6(_) => false,
            },
        };
        port_ok && host_ok
    }
}

/// `name` ends in `.suffix` with at least one label before it (names are ASCII and have no
/// empty labels, so the part before the dot is a label).
fn is_subdomain(name: &str, suffix: &str) -> bool {
    let (n, s) = (name.as_bytes(), suffix.as_bytes());
    n.len() > s.len() + 1
        && n[n.len() - s.len() - 1] == b'.'
        && n[n.len() - s.len()..].eq_ignore_ascii_case(s)
}

/// The default port of `scheme`, if it has one.
fn default_port(scheme: &str) -> Option<u16> {
    let is = |s: &str| scheme.eq_ignore_ascii_case(s);
    if is("http") || is("ws") {
        Some(80)
    } else if is("https") || is("wss") {
        Some(443)
    } else {
        None
    }
}

/// RFC 3986 `scheme`: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// A host name or IPv4 literal: non-empty labels of letters, digits, `-` and `_`, separated by
/// dots, with at most one trailing dot.
fn is_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
        })
}

/// Splits `rest` into the part before an optional `:port` and the port (1 to 5 digits, at
/// most 65535; an empty port is malformed).
fn split_port(s: &str) -> Option<(&str, Option<u16>)> {
    match s.rsplit_once(':') {
        None => Some((s, None)),
        Some((before, port)) => {
            let ok = (1..=5).contains(&port.len()) && port.bytes().all(|c| c.is_ascii_digit());
            Some((before, Some(port.parse().ok().filter(|_| ok)?)))
        }
    }
}

/// `host[:port]` where host is a name, an IPv4 literal or a bracketed IPv6 literal (no zone).
fn parse_authority(s: &str) -> Option<(Host<'_>, Option<u16>)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (addr, rest) = v6.split_once(']')?;
        let port = match rest {
            "" => None,
            p => split_port(p).filter(|(before, _)| before.is_empty())?.1,
        };
        // `Ipv6Addr` parsing takes hex digits, colons and an embedded IPv4 only (no zones).
        Some((Host::V6(addr.parse().ok()?), port))
    } else {
        let (host, port) = split_port(s)?;
        is_name(host).then_some((Host::Name(host), port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: OriginPolicy<'static> = OriginPolicy::new().with_same_origin(false);

    fn listed(patterns: &'static [&'static str]) -> OriginPolicy<'static> {
        NONE.with_allowed(patterns)
    }

    fn allows(p: &OriginPolicy<'_>, origin: &str, host: &str) -> bool {
        p.check(Some(origin), host).is_ok()
    }

    #[test]
    fn no_origin_passes_whatever_the_policy() {
        for p in [OriginPolicy::new(), NONE, OriginPolicy::any()] {
            assert_eq!(p.check(None, "example.com"), Ok(Allowed::NoOrigin));
            assert_eq!(p.check(None, "not a host"), Ok(Allowed::NoOrigin));
        }
    }

    #[test]
    fn same_origin_is_the_default() {
        let p = OriginPolicy::default();
        assert_eq!(p, OriginPolicy::new());
        let ok = Ok(Allowed::SameOrigin);
        assert_eq!(p.check(Some("https://example.com"), "example.com"), ok);
        assert_eq!(p.check(Some("http://example.com"), "example.com"), ok);
        assert_eq!(p.check(Some("https://example.com"), "example.com:443"), ok);
        assert_eq!(p.check(Some("https://example.com:443"), "example.com"), ok);
        assert_eq!(p.check(Some("http://example.com:80"), "example.com:80"), ok);
        assert_eq!(p.check(Some("http://localhost:9001"), "localhost:9001"), ok);
        assert_eq!(p.check(Some("HTTPS://EXAMPLE.com"), "Example.COM"), ok);
        assert_eq!(p.check(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"), ok);
        assert_eq!(p.check(Some("http://[::1]:8080"), "[::1]:8080"), ok);
        assert_eq!(p.check(Some("http://[0:0::1]"), "[::1]"), ok);
        assert_eq!(p.check(Some("http://[::ABCD]"), "[::abcd]"), ok);
    }

    #[test]
    fn a_different_host_or_port_is_cross_origin() {
        let p = OriginPolicy::new();
        let no = Err(Refused::CrossOrigin);
        assert_eq!(p.check(Some("https://evil.com"), "example.com"), no);
        assert_eq!(
            p.check(Some("https://example.com.evil.com"), "example.com"),
            no
        );
        assert_eq!(p.check(Some("https://evilexample.com"), "example.com"), no);
        assert_eq!(p.check(Some("https://a.example.com"), "example.com"), no);
        assert_eq!(p.check(Some("https://example.com:8443"), "example.com"), no);
        assert_eq!(p.check(Some("https://example.com"), "example.com:8443"), no);
        assert_eq!(p.check(Some("http://example.com"), "example.com:443"), no);
        assert_eq!(p.check(Some("https://example.com"), "example.com:80"), no);
        assert_eq!(p.check(Some("http://localhost:9001"), "localhost:9002"), no);
        assert_eq!(p.check(Some("http://[::1]:8080"), "[::2]:8080"), no);
        assert_eq!(p.check(Some("http://[::1]"), "::1"), no);
        // A trailing dot is part of the host.
        assert_eq!(p.check(Some("https://example.com."), "example.com"), no);
        assert_eq!(p.check(Some("https://example.com"), "example.com."), no);
        assert_eq!(
            p.check(Some("https://example.com."), "example.com."),
            Ok(Allowed::SameOrigin)
        );
        // A malformed Host matches nothing.
        assert_eq!(p.check(Some("https://example.com"), "example.com:"), no);
        assert_eq!(p.check(Some("https://example.com"), ""), no);
        assert_eq!(p.check(Some("https://example.com"), "u@example.com"), no);
        // Only web origins are compared with the Host header.
        assert_eq!(
            p.check(Some("chrome-extension://example.com"), "example.com"),
            no
        );
        assert_eq!(p.check(Some("ws://example.com"), "example.com"), no);
    }

    #[test]
    fn same_origin_can_be_turned_off() {
        assert_eq!(
            NONE.check(Some("https://example.com"), "example.com"),
            Err(Refused::CrossOrigin)
        );
        assert_eq!(
            NONE.with_same_origin(true)
                .check(Some("https://example.com"), "example.com"),
            Ok(Allowed::SameOrigin)
        );
    }

    #[test]
    fn exact_origins_normalize_default_ports() {
        let p = listed(&[
            "https://app.example.com",
            "http://localhost:8080",
            "https://x:443",
        ]);
        let ok = Ok(Allowed::Listed);
        assert_eq!(p.check(Some("https://app.example.com"), "api"), ok);
        assert_eq!(p.check(Some("https://app.example.com:443"), "api"), ok);
        assert_eq!(p.check(Some("https://APP.Example.COM"), "api"), ok);
        assert_eq!(p.check(Some("HTTPS://app.example.com"), "api"), ok);
        assert_eq!(p.check(Some("http://localhost:8080"), "api"), ok);
        assert_eq!(p.check(Some("https://x"), "api"), ok);
        let no = Err(Refused::CrossOrigin);
        assert_eq!(p.check(Some("http://app.example.com"), "api"), no);
        assert_eq!(p.check(Some("https://app.example.com:8443"), "api"), no);
        assert_eq!(p.check(Some("https://app.example.com."), "api"), no);
        assert_eq!(p.check(Some("https://a.app.example.com"), "api"), no);
        assert_eq!(p.check(Some("https://app.example.com.evil.com"), "api"), no);
        assert_eq!(p.check(Some("http://localhost"), "api"), no);
        assert_eq!(p.check(Some("http://localhost:8081"), "api"), no);
        assert_eq!(p.check(Some("https://x:444"), "api"), no);
    }

    #[test]
    fn wildcards_match_subdomains_at_any_depth_only() {
        let p = listed(&["https://*.example.com"]);
        for o in [
            "https://a.example.com",
            "https://a.b.c.example.com",
            "https://A.EXAMPLE.COM",
            "https://a.example.com:443",
        ] {
            assert_eq!(p.check(Some(o), "api"), Ok(Allowed::Listed), "{o}");
        }
        for o in [
            "https://example.com",
            "https://evilexample.com",
            "https://a.evilexample.com",
            "https://example.com.evil.com",
            "https://a.example.com.evil.com",
            "https://a.example.com.",
            "https://a.example.co",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://.example.com",
            "https://a..example.com",
        ] {
            assert!(!allows(&p, o, "api"), "{o}");
        }
    }

    #[test]
    fn host_patterns_match_every_scheme_and_port_unless_given() {
        let p = listed(&["*.example.com", "app.example.org", "example.net:8080"]);
        for o in [
            "https://a.example.com",
            "http://a.b.example.com:1234",
            "wss://a.example.com",
            "https://app.example.org",
            "http://app.example.org:81",
            "http://example.net:8080",
            "https://example.net:8080",
        ] {
            assert_eq!(p.check(Some(o), "api"), Ok(Allowed::Listed), "{o}");
        }
        for o in [
            "https://example.com",
            "https://evilexample.com",
            "https://a.app.example.org",
            "http://example.net",
            "http://example.net:8081",
        ] {
            assert!(!allows(&p, o, "api"), "{o}");
        }
    }

    #[test]
    fn ipv6_literals_compare_as_addresses() {
        let p = listed(&["http://[::1]:8080", "https://[2001:db8::1]"]);
        assert!(allows(&p, "http://[::1]:8080", "api"));
        assert!(allows(&p, "http://[0000::0001]:8080", "api"));
        assert!(allows(&p, "https://[2001:DB8:0:0::1]:443", "api"));
        assert!(!allows(&p, "http://[::1]", "api"));
        assert!(!allows(&p, "http://[::2]:8080", "api"));
        for bad in [
            "http://[::1",
            "http://[::1]x",
            "http://[::1]:",
            "http://[fe80::1%25eth0]",
            "http://[g::1]",
        ] {
            assert_eq!(p.check(Some(bad), "api"), Err(Refused::Malformed), "{bad}");
        }
    }

    #[test]
    fn null_is_refused_unless_listed() {
        assert_eq!(
            OriginPolicy::new().check(Some("null"), "null"),
            Err(Refused::Null)
        );
        assert_eq!(
            OriginPolicy::any().check(Some("null"), "x"),
            Err(Refused::Null)
        );
        assert_eq!(
            listed(&["null"]).check(Some("null"), "x"),
            Ok(Allowed::Listed)
        );
        assert_eq!(
            OriginPolicy::any()
                .with_allowed(&["null"])
                .check(Some("null"), "x"),
            Ok(Allowed::Listed)
        );
        // Only the exact serialization is the null origin.
        assert_eq!(
            listed(&["null"]).check(Some("NULL"), "x"),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn malformed_origins_are_refused_by_every_policy() {
        let policies = [
            OriginPolicy::new(),
            OriginPolicy::any(),
            listed(&["https://example.com", "*.example.com"]),
        ];
        for bad in [
            "",
            "example.com",
            "https://",
            "https://u@example.com",
            "https://user:pass@example.com",
            "https://example.com@evil.com",
            "https://example.com/",
            "https://example.com/path",
            "https://example.com?x",
            "https://example.com#x",
            "https://example.com:",
            "https://example.com:99999",
            "https://example.com:65536",
            "https://example.com:+443",
            "https://example.com:-1",
            "https://example.com:4 43",
            "https://exa mple.com",
            "https://example.com https://evil.com",
            "https://ex%61mple.com",
            "https://exämple.com",
            "https://example..com",
            "https://.example.com",
            "https://example.com..",
            "https://*.example.com",
            "1https://example.com",
            "ht_tp://example.com",
            "://example.com",
            "https:///example.com",
            "https:example.com",
        ] {
            for p in &policies {
                assert_eq!(
                    p.check(Some(bad), "example.com"),
                    Err(Refused::Malformed),
                    "{bad}"
                );
            }
        }
    }

    #[test]
    fn any_allows_every_well_formed_origin() {
        let p = OriginPolicy::any();
        assert_eq!(
            p.check(Some("https://evil.com"), "example.com"),
            Ok(Allowed::Any)
        );
        assert_eq!(
            p.check(Some("chrome-extension://abc"), "x"),
            Ok(Allowed::Any)
        );
        assert_eq!(
            NONE.with_any(true).check(Some("http://a:1"), "x"),
            Ok(Allowed::Any)
        );
        assert_eq!(
            p.with_any(false).check(Some("https://evil.com"), "x"),
            Err(Refused::CrossOrigin)
        );
    }

    #[test]
    fn patterns_validate() {
        for good in [
            "https://app.example.com",
            "https://app.example.com:8443",
            "https://*.example.com",
            "*.example.com",
            "example.com",
            "example.com:80",
            "null",
            "http://[::1]:8080",
            "chrome-extension://abcdef",
            "http://127.0.0.1",
        ] {
            assert!(is_valid_pattern(good), "{good}");
        }
        for bad in [
            "",
            "*",
            "*.",
            "*.*.example.com",
            "https://*",
            "https://a.*.example.com",
            "https://*example.com",
            "https://example.com/",
            "https://u@example.com",
            "https://example.com:",
            "https://[::1",
            "*.[::1]",
            "NULL",
        ] {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
        assert_eq!(listed(&["https://a", "*.b"]).validate(), Ok(()));
        assert_eq!(
            listed(&["https://a", "https://a/"]).validate(),
            Err(Error::InvalidUsage(Usage::InvalidConfig))
        );
        // An invalid pattern never matches.
        assert!(!allows(&listed(&["https://a/"]), "https://a", "x"));
    }

    #[test]
    fn patterns_can_be_owned_strings() {
        let owned = [std::string::String::from("https://a.example.com")];
        let p = OriginPolicy::new().with_allowed(&owned);
        assert_eq!(
            p.check(Some("https://a.example.com"), "x"),
            Ok(Allowed::Listed)
        );
        assert_eq!(p.allowed().len(), 1);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn checks_a_parsed_request() {
        let head = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\nOrigin: https://evil.com\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let req = crate::handshake::parse_request(head, &mut headers).unwrap();
        assert_eq!(
            OriginPolicy::new().check_request(&req),
            Err(Refused::CrossOrigin)
        );
        assert_eq!(
            listed(&["https://evil.com"]).check_request(&req),
            Ok(Allowed::Listed)
        );
        assert_eq!(Refused::CrossOrigin.status(), 403);
    }
}
