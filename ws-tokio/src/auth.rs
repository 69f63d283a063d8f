//! Bearer-token authentication and Origin checks for [`accept_with`](crate::accept_with).
//!
//! A [`BearerAuth`] finds the client's token in the places a WebSocket client can put one,
//! each turned on separately:
//!
//! - the `Authorization: Bearer <token>` header (RFC 6750 section 2.1; on by default; the
//!   scheme is case-insensitive). Non-browser clients send this.
//! - a query parameter of the request path, `/ws?access_token=<token>` (RFC 6750 section 2.3;
//!   off by default: URLs end up in logs). Percent-decoded as `application/x-www-form-urlencoded`,
//!   so a `+` in the token must be sent as `%2B`.
//! - the `Sec-WebSocket-Protocol` header (off by default): the browser `WebSocket` API cannot
//!   set headers, but it can offer subprotocols. Two conventions ([`SubprotocolToken`]):
//!   - [`SubprotocolToken::pair`]: `new WebSocket(url, ["bearer", token])`; the server echoes
//!     `bearer`;
//!   - [`SubprotocolToken::prefixed`]: `new WebSocket(url, ["chat.v1", "access_token." + token])`;
//!     the server echoes the named protocol (`chat.v1`), which the client must also offer.
//!
//!   The accepted response always echoes a protocol the client offered (browsers fail the
//!   connection otherwise) and never the token itself. Subprotocols must be RFC 7230 tokens,
//!   so such tokens must be too: base64url without padding, as in a JWT, is.
//!
//! A client must use one method per request (RFC 6750 section 2): a token in two places is
//! refused. The answers, following RFC 6750 section 3:
//!
//! | request | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no token | 401 | `Bearer` (with `realm` when set) |
//! | token in two places, empty, or badly formed | 400 | `Bearer error="invalid_request"` |
//! | token not valid ([`TokenError::Invalid`]) | 401 | `Bearer error="invalid_token"` |
//! | valid, not allowed ([`TokenError::InsufficientScope`]) | 403 | `Bearer error="insufficient_scope"` |
//!
//! A wrong token gets 401, not 403: RFC 6750 section 3.1 says `invalid_token` (expired,
//! revoked, malformed or otherwise invalid) SHOULD be 401, so that a client knows to get a new
//! token; 403 means the token is good but does not grant this resource.
//!
//! [`check_origin`] maps an [`OriginPolicy`] refusal to 403.
//!
//! ```no_run
//! use ws_tokio::auth::{BearerAuth, check_origin};
//! use ws_tokio::origin::OriginPolicy;
//!
//! # async fn run(tcp: tokio::net::TcpStream) -> Result<(), ws_tokio::Error> {
//! let auth = BearerAuth::default().with_query("access_token");
//! let origins = OriginPolicy::new().with_allowed(&["https://app.example.com"]);
//! let ws = ws_tokio::accept_with(tcp, ws_tokio::Config::default(), |req| {
//!     check_origin(&origins, req)?;
//!     auth.authorize_token(req, b"s3cret-token")
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::borrow::Cow;

use subtle::ConstantTimeEq;
use ws_proto::origin::{Allowed, OriginPolicy};

use crate::handshake::{AcceptResponse, Reject, Request};

/// Where a client may put its token in the `Sec-WebSocket-Protocol` header.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubprotocolToken {
    /// The client offers the marker and then the token as two protocols,
    /// `["bearer", "<token>"]`; the server echoes the marker.
    Pair {
        /// The protocol that announces the token (case-sensitive), e.g. `bearer`.
        marker: String,
    },
    /// The client offers one protocol `<prefix><token>`, e.g. `access_token.<token>`, and also
    /// `echo`, a real protocol name that the server echoes.
    Prefixed {
        /// What the token protocol starts with (case-sensitive), e.g. `access_token.`.
        prefix: String,
        /// The protocol to echo; the client must offer it.
        echo: String,
    },
}

impl SubprotocolToken {
    /// `["<marker>", "<token>"]`, echoing `marker`.
    pub fn pair(marker: impl Into<String>) -> Self {
        SubprotocolToken::Pair {
            marker: marker.into(),
        }
    }

    /// `["<echo>", "<prefix><token>"]` (in any order), echoing `echo`.
    pub fn prefixed(prefix: impl Into<String>, echo: impl Into<String>) -> Self {
        SubprotocolToken::Prefixed {
            prefix: prefix.into(),
            echo: echo.into(),
        }
    }
}

/// Where a token was found.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Authorization: Bearer <token>`.
    Header,
    /// A query parameter.
    Query,
    /// The `Sec-WebSocket-Protocol` header.
    Subprotocol,
}

/// Why a token was not accepted, as a verifier reports it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Expired, revoked, malformed or unknown: 401 with `error="invalid_token"`.
    Invalid,
    /// Valid, but it does not grant this resource: 403 with `error="insufficient_scope"`.
    InsufficientScope,
}

/// A token found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential<'r> {
    token: Cow<'r, str>,
    source: Source,
    echo: Option<&'r str>,
    carrier: Option<&'r str>,
}

impl<'r> Credential<'r> {
    /// The token, percent-decoded when it came from the query.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Where it was found.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The subprotocol the response must echo (for [`Source::Subprotocol`]): an offered
    /// protocol that is not the token.
    pub fn protocol(&self) -> Option<&'r str> {
        self.echo
    }

    /// The offered subprotocol that carries the token; a server choosing its own subprotocol
    /// must never choose this one.
    pub fn token_protocol(&self) -> Option<&'r str> {
        self.carrier
    }

    /// The accept answer: echoes [`protocol`](Self::protocol) when there is one.
    pub fn accept(&self) -> AcceptResponse {
        let mut a = AcceptResponse::new();
        a.protocol = self.echo.map(String::from);
        a
    }
}

/// Bearer-token authentication for the opening handshake: where to look for the token and how
/// to answer when it is missing or wrong. See the [module documentation](self).
///
/// The default looks in the `Authorization` header only, with no realm.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerAuth {
    /// Look in `Authorization: Bearer <token>`. Default on.
    pub header: bool,
    /// Look in this query parameter. Default none (`access_token` is RFC 6750's name).
    pub query: Option<String>,
    /// Look in `Sec-WebSocket-Protocol` with this convention. Default none.
    pub subprotocol: Option<SubprotocolToken>,
    /// The `realm` of the `WWW-Authenticate` challenge. Default none.
    pub realm: Option<String>,
}

impl Default for BearerAuth {
    fn default() -> Self {
        BearerAuth {
            header: true,
            query: None,
            subprotocol: None,
            realm: None,
        }
    }
}

impl BearerAuth {
    /// Looks in the `Authorization` header (`true`, the default) or not.
    pub fn with_header(mut self, on: bool) -> Self {
        self.header = on;
        self
    }

    /// Looks in the query parameter `name` too.
    pub fn with_query(mut self, name: impl Into<String>) -> Self {
        self.query = Some(name.into());
        self
    }

    /// Looks in `Sec-WebSocket-Protocol` too, with this convention.
    pub fn with_subprotocol(mut self, convention: SubprotocolToken) -> Self {
        self.subprotocol = Some(convention);
        self
    }

    /// Names the realm in the challenge (`"` and `\` are escaped, control characters dropped).
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Finds the request's token. Errors with the [`Reject`] to answer: 401 with a challenge
    /// when there is none, 400 `invalid_request` when it is in more than one place, empty or
    /// badly formed.
    pub fn credential<'r>(&self, request: &Request<'_, 'r>) -> Result<Credential<'r>, Reject> {
        let mut found: Option<Credential<'r>> = None;
        let mut put = |c: Credential<'r>| match found.replace(c) {
            None => Ok(()),
            Some(_) => Err(self.bad_request("token in more than one place")),
        };
        if self.header {
            if let Some(c) = self.in_header(request)? {
                put(c)?;
            }
        }
        if let Some(name) = &self.query {
            if let Some(c) = self.in_query(request, name)? {
                put(c)?;
            }
        }
        if let Some(conv) = &self.subprotocol {
            if let Some(c) = self.in_subprotocol(request, conv)? {
                put(c)?;
            }
        }
        found.ok_or_else(|| self.challenge())
    }

    /// Finds the token and asks `verify` about it: on success, the verifier's value and the
    /// accept answer (echoing the marker protocol when the token came in
    /// `Sec-WebSocket-Protocol`); otherwise the [`Reject`] to answer (see the
    /// [module documentation](self)).
    ///
    /// Compare secrets in `verify` in constant time ([`tokens_equal`], or an HMAC crate's
    /// `verify_slice`).
    pub fn authorize<T>(
        &self,
        request: &Request<'_, '_>,
        verify: impl FnOnce(&str) -> Result<T, TokenError>,
    ) -> Result<(T, AcceptResponse), Reject> {
        let c = self.credential(request)?;
        let value = verify(c.token()).map_err(|e| self.refuse(e))?;
        Ok((value, c.accept()))
    }

    /// Accepts only the token `expected`, compared in constant time.
    pub fn authorize_token(
        &self,
        request: &Request<'_, '_>,
        expected: &[u8],
    ) -> Result<AcceptResponse, Reject> {
        self.authorize(request, |t| {
            if tokens_equal(t.as_bytes(), expected) {
                Ok(())
            } else {
                Err(TokenError::Invalid)
            }
        })
        .map(|((), a)| a)
    }

    /// The answer to a request without a token: 401 with `WWW-Authenticate: Bearer`.
    pub fn challenge(&self) -> Reject {
        Reject::status(401)
            .header("WWW-Authenticate", self.www_authenticate(None))
            .body("bearer token required\n")
    }

    /// The answer to a token `verify` refused: 401 `invalid_token` or 403
    /// `insufficient_scope`.
    pub fn refuse(&self, error: TokenError) -> Reject {
        let (status, code, body) = match error {
            TokenError::Invalid => (401, "invalid_token", "invalid token\n"),
            TokenError::InsufficientScope => (403, "insufficient_scope", "insufficient scope\n"),
        };
        Reject::status(status)
            .header("WWW-Authenticate", self.www_authenticate(Some(code)))
            .body(body)
    }

    fn bad_request(&self, why: &str) -> Reject {
        Reject::status(400)
            .header(
                "WWW-Authenticate",
                self.www_authenticate(Some("invalid_request")),
            )
            .body(format!("{why}\n"))
    }

    fn www_authenticate(&self, error: Option<&str>) -> String {
        let mut v = String::from("Bearer");
        let mut sep = " ";
        if let Some(realm) = &self.realm {
            v.push_str(" realm=\"");
            for c in realm.chars().filter(|c| !c.is_control()) {
                if matches!(c, '"' | '\\') {
                    v.push('\\');
                }
                v.push(c);
            }
            v.push('"');
            sep = ", ";
        }
        if let Some(e) = error {
            v.push_str(sep);
            v.push_str("error=\"");
            v.push_str(e);
            v.push('"');
        }
        v
    }

    fn in_header<'r>(&self, request: &Request<'_, 'r>) -> Result<Option<Credential<'r>>, Reject> {
        let mut found = None;
        for h in request.headers() {
            if !h.name.eq_ignore_ascii_case("Authorization") {
                continue;
            }
            let value = std::str::from_utf8(h.value)
                .map_err(|_| self.bad_request("Authorization is not UTF-8"))?
                .trim_matches([' ', '\t']);
            let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("Bearer") {
                // Another scheme (Basic...): no bearer token here.
                continue;
            }
            let token = rest.trim_start_matches([' ', '\t']);
            if !is_b64token(token) {
                return Err(self.bad_request("malformed bearer token"));
            }
            if found.is_some() {
                return Err(self.bad_request("token in more than one place"));
            }
            found = Some(Credential {
                token: Cow::Borrowed(token),
                source: Source::Header,
                echo: None,
                carrier: None,
            });
        }
        Ok(found)
    }

    fn in_query<'r>(
        &self,
        request: &Request<'_, 'r>,
        name: &str,
    ) -> Result<Option<Credential<'r>>, Reject> {
        let path: &'r str = request.path();
        let Some((_, query)) = path.split_once('?') else {
            return Ok(None);
        };
        let mut found = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if key != name {
                continue;
            }
            if value.is_empty() {
                return Err(self.bad_request("empty token"));
            }
            if found.is_some() {
                return Err(self.bad_request("token in more than one place"));
            }
            found = Some(Credential {
                token: value,
                source: Source::Query,
                echo: None,
                carrier: None,
            });
        }
        Ok(found)
    }

    fn in_subprotocol<'r>(
        &self,
        request: &Request<'_, 'r>,
        convention: &SubprotocolToken,
    ) -> Result<Option<Credential<'r>>, Reject> {
        let offered: Vec<&'r str> = request.protocols().collect();
        let (token, echo, carrier) = match convention {
            SubprotocolToken::Pair { marker } => {
                let mut at = offered
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| **p == marker.as_str());
                let Some((i, &echo)) = at.next() else {
                    return Ok(None);
                };
                if at.next().is_some() {
                    return Err(self.bad_request("token in more than one place"));
                }
                match offered.get(i + 1) {
                    Some(&t) if t != marker => (t, echo, t),
                    _ => return Err(self.bad_request("no token after the marker protocol")),
                }
            }
            SubprotocolToken::Prefixed { prefix, echo } => {
                let mut with = offered.iter().filter(|p| p.starts_with(prefix.as_str()));
                let Some(&carrier) = with.next() else {
                    return Ok(None);
                };
                if with.next().is_some() {
                    return Err(self.bad_request("token in more than one place"));
                }
                let token = &carrier[prefix.len()..];
                if token.is_empty() {
                    return Err(self.bad_request("empty token"));
                }
                let Some(&echo) = offered.iter().find(|p| **p == echo.as_str()) else {
                    return Err(self.bad_request("the protocol to echo was not offered"));
                };
                (token, echo, carrier)
            }
        };
        Ok(Some(Credential {
            token: Cow::Borrowed(token),
            source: Source::Subprotocol,
            echo: Some(echo),
            carrier: Some(carrier),
        }))
    }
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Compares two secrets in time that depends only on their lengths (through `subtle`).
pub fn tokens_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Checks the request's `Origin` against `policy`; a refusal becomes a 403 [`Reject`].
pub fn check_origin<S: AsRef<str>>(
    policy: &OriginPolicy<'_, S>,
    request: &Request<'_, '_>,
) -> Result<Allowed, Reject> {
    policy.check_request(request).map_err(|r| {
        let why = match r {
            ws_proto::origin::Refused::Null => "null origin not allowed\n",
            ws_proto::origin::Refused::Malformed => "malformed origin\n",
            _ => "origin not allowed\n",
        };
        Reject::status(r.status()).body(why)
    })
}
