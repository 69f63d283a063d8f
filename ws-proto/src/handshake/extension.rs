//! The `Sec-WebSocket-Extensions` grammar (RFC 6455 section 9.1), shared by the handshake's
//! checks and by permessage-deflate negotiation ([`crate::deflate`]):
//!
//! ```text
//! extension-list = 1#extension                  ; commas outside quoted strings
//! extension      = name *( ";" param )          ; name: a token
//! param          = token [ "=" ( token / quoted-string ) ]
//! ```
//!
//! with spaces and tabs allowed around the separators. Nothing here allocates: names and values
//! are slices of the input.
//!
//! The handshake checks only what every extension shares (closed quoted strings, token names:
//! [`valid_list`]). Parameters are checked against the grammar, and given their meaning, by the
//! extension that negotiates them, through [`Extension::params`].

use httparse::Header;

use super::fields::{List, is_token, quotes_closed, split_unquoted, trim_ows_str, values};

/// The items of one `Sec-WebSocket-Extensions` value, in order: one per extension, with its
/// parameters; split on commas outside quoted strings, trimmed, empty items skipped.
pub(super) const fn items(value: &str) -> List<'_> {
    List::new(value, true)
}

/// The items of every `Sec-WebSocket-Extensions` header in `headers`, in order.
pub(super) fn header_items<'h, 'b>(
    headers: &'h [Header<'b>],
) -> impl Iterator<Item = &'b str> + use<'h, 'b> {
    values(headers, "Sec-WebSocket-Extensions").flat_map(items)
}

/// True when `value` is UTF-8, every quoted string in it is closed, and every item is named by
/// a token. Parameters are not checked.
pub(super) fn valid_list(value: &[u8]) -> bool {
    core::str::from_utf8(value).is_ok_and(|value| {
        items(value)
            .all(|item| is_token(Extension::parse(item).name.as_bytes()) && quotes_closed(item))
    })
}

/// One item of an extension list: `name; p1; p2=value`.
#[derive(Debug, Clone)]
pub(crate) struct Extension<'a> {
    /// The text before the first `;` outside quoted strings, trimmed: the extension name (a
    /// token, in a valid item).
    pub(crate) name: &'a str,
    /// The parameters, in order.
    pub(crate) params: Params<'a>,
}

impl<'a> Extension<'a> {
    /// Splits `item` (one item of [`items`]) into its name and parameters.
    pub(crate) fn parse(item: &'a str) -> Self {
        let (name, rest) = split_unquoted(item, b';');
        Self {
            name: trim_ows_str(name),
            params: Params { rest },
        }
    }
}

/// The parameters of an [`Extension`]: split on `;` outside quoted strings, each checked
/// against `token [ "=" ( token / quoted-string ) ]`. A `;` with nothing after it gives a
/// malformed (empty) parameter.
#[derive(Debug, Clone)]
pub(crate) struct Params<'a> {
    /// The text after the previous `;`, `None` after the last parameter.
    rest: Option<&'a str>,
}

/// One extension parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Param<'a> {
    /// The parameter name (a token).
    pub(crate) name: &'a str,
    /// The value: a token, or the text between the quotes of a quoted string (escapes left in
    /// place); `None` without `=`.
    pub(crate) value: Option<&'a str>,
}

/// A parameter that is not `token [ "=" ( token / quoted-string ) ]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let (param, rest) = split_unquoted(self.rest?, b';');
        self.rest = rest;
        Some(Param::parse(param))
    }
}

impl<'a> Param<'a> {
    fn parse(param: &'a str) -> Result<Self, Malformed> {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name, Some(param_value(trim_ows_str(value))?)),
            None => (param, None),
        };
        let name = trim_ows_str(name);
        if is_token(name.as_bytes()) {
            Ok(Self { name, value })
        } else {
            Err(Malformed)
        }
    }
}

/// A parameter value: a token as it is, or a quoted string's content.
fn param_value(value: &str) -> Result<&str, Malformed> {
    if is_token(value.as_bytes()) {
        return Ok(value);
    }
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or(Malformed)?;
    // `qdtext` and `quoted-pair`: no unescaped quote before the closing one, no escape of the
    // closing quote, no control characters but tab.
    let mut escaped = false;
    for b in inner.bytes() {
        if b != b'\t' && (b < 0x20 || b == 0x7f) || (!escaped && b == b'"') {
            return Err(Malformed);
        }
        escaped = !escaped && b == b'\\';
    }
    if escaped { Err(Malformed) } else { Ok(inner) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn params(item: &str) -> Result<Vec<(&str, Option<&str>)>, Malformed> {
        Extension::parse(item)
            .params
            .map(|p| p.map(|p| (p.name, p.value)))
            .collect()
    }

    #[test]
    fn items_split_outside_quotes() {
        assert_eq!(
            items(r#" a; x="1,2" ,, b;y="\",", c "#).collect::<Vec<_>>(),
            [r#"a; x="1,2""#, r#"b;y="\",""#, "c"]
        );
        assert_eq!(items(" , ,").count(), 0);
        // An unclosed quoted string runs to the end of the value.
        assert_eq!(items(r#"a; x=", b"#).collect::<Vec<_>>(), [r#"a; x=", b"#]);
    }

    #[test]
    fn names_and_parameters() {
        let e = Extension::parse(" permessage-deflate ; a ;b= 9; c = \"x;y\" ");
        assert_eq!(e.name, "permessage-deflate");
        assert_eq!(
            params(" permessage-deflate ; a ;b= 9; c = \"x;y\" "),
            Ok(std::vec![("a", None), ("b", Some("9")), ("c", Some("x;y"))])
        );
        assert_eq!(Extension::parse("x-foo").name, "x-foo");
        assert_eq!(params("x-foo"), Ok(std::vec![]));
        assert_eq!(
            params(r#"x; q="a\"b""#),
            Ok(std::vec![("q", Some(r#"a\"b"#))])
        );
        assert_eq!(params(r#"x; q="""#), Ok(std::vec![("q", Some(""))]));
    }

    #[test]
    fn malformed_parameters() {
        for item in [
            "x;",
            "x; ",
            "x; a;",
            "x;; a",
            "x; =1",
            "x; a b",
            "x; a=",
            "x; a=1 2",
            "x; a=\"1",
            "x; a=1\"",
            r#"x; a="1"2"#,
            r#"x; a="1"2""#,
            r#"x; a="1\""#,
            "x; a=\"\x01\"",
            "x; a=\u{a0}9",
        ] {
            assert_eq!(params(item), Err(Malformed), "{item:?}");
        }
    }

    #[test]
    fn list_validity() {
        for ok in [
            "",
            " , ",
            "permessage-deflate; client_max_window_bits",
            r#"a; x="1,2", b; y="\"""#,
            "a; anything = goes here",
        ] {
            assert!(valid_list(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            &b"a; x=\"1"[..],
            b"a; x=\"1\\\"",
            b"a, \"b\"",
            b"a b",
            b"; x",
            b"a, b c; d",
            b"\xff",
        ] {
            assert!(!valid_list(bad), "{:?}", bad.escape_ascii());
        }
    }
}
