//! What a typed line (or a `-x` message) means: a message, a slash command, or a mistake.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use ws_tokio::{CloseCode, CloseFrame, Message};

use crate::args::Encoding;

/// The largest control frame payload (RFC 6455 section 5.5).
const MAX_CONTROL: usize = 125;
/// The longest close reason: 125 bytes less the code's 2.
const MAX_REASON: usize = 123;

pub(crate) const HELP: &str = "\
commands:
  /ping [data]            send a ping (shown with its pong when -P is on)
  /pong [data]            send an unsolicited pong
  /close [code [reason]]  close (1000 without a code) and exit
  /help                   this list
  //text                  send \"/text\"
anything else is sent as a message; Ctrl-D closes with 1000";

/// What to do with a line.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Send this message.
    Send(Message),
    /// Close with this frame.
    Close(CloseFrame),
    /// Print the commands.
    Help,
    /// An empty line: nothing.
    Nothing,
}

/// Parses a line: `binary` set, messages are bytes in that encoding.
pub(crate) fn parse_line(line: &str, binary: Option<Encoding>) -> Result<Action, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix("//") {
        return data_message(&format!("/{rest}"), binary);
    }
    let Some(cmd) = line.strip_prefix('/') else {
        if line.is_empty() {
            return Ok(Action::Nothing);
        }
        return data_message(line, binary);
    };
    let (name, arg) = match cmd.split_once(' ') {
        Some((n, a)) => (n, a.trim()),
        None => (cmd, ""),
    };
    match name {
        "ping" => Ok(Action::Send(Message::ping(control(arg)?))),
        "pong" => Ok(Action::Send(Message::pong(control(arg)?))),
        "close" => close(arg).map(Action::Close),
        "help" | "?" => Ok(Action::Help),
        _ => Err(format!(
            "unknown command /{name} (/help lists them; //{name} sends \"/{name}\")"
        )),
    }
}

fn data_message(s: &str, binary: Option<Encoding>) -> Result<Action, String> {
    match binary {
        None => Ok(Action::Send(Message::text(s.to_string()))),
        Some(e) => decode(s, e).map(|b| Action::Send(Message::binary(b))),
    }
}

/// Bytes from hex (spaces and colons between bytes allowed) or base64 (padding optional).
pub(crate) fn decode(s: &str, encoding: Encoding) -> Result<Vec<u8>, String> {
    match encoding {
        Encoding::Hex => {
            let digits: String = s.chars().filter(|c| !matches!(c, ' ' | ':')).collect();
            hex::decode(digits).map_err(|e| format!("not hex: {e}"))
        }
        Encoding::Base64 => {
            const ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent),
            );
            ANY_PADDING
                .decode(s.trim())
                .map_err(|e| format!("not base64: {e}"))
        }
    }
}

fn control(arg: &str) -> Result<Vec<u8>, String> {
    if arg.len() > MAX_CONTROL {
        return Err(format!(
            "a ping or pong carries at most {MAX_CONTROL} bytes ({} given)",
            arg.len()
        ));
    }
    Ok(arg.as_bytes().to_vec())
}

/// `[code [reason]]`: 1000 without a code; the code must be one a close frame may carry.
fn close(arg: &str) -> Result<CloseFrame, String> {
    if arg.is_empty() {
        return Ok(CloseFrame::new(CloseCode::NORMAL, ""));
    }
    let (code, reason) = match arg.split_once(' ') {
        Some((c, r)) => (c, r.trim()),
        None => (arg, ""),
    };
    let code: u16 = code
        .parse()
        .map_err(|_| format!("{code:?} is not a close code (1000-4999)"))?;
    let code = CloseCode(code);
    if !code.is_allowed_on_wire() {
        return Err(format!(
            "{} cannot be sent in a close frame (1000-1003, 1007-1014, 3000-4999)",
            code.0
        ));
    }
    if reason.len() > MAX_REASON {
        return Err(format!(
            "a close reason is at most {MAX_REASON} bytes ({} given)",
            reason.len()
        ));
    }
    Ok(CloseFrame::new(code, reason.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(a: Result<Action, String>) -> Message {
        match a {
            Ok(Action::Send(m)) => m,
            other => panic!("not a send: {other:?}"),
        }
    }

    #[test]
    fn text_and_slash_commands() {
        assert_eq!(send(parse_line("hello", None)), Message::text("hello"));
        assert_eq!(send(parse_line("//ping", None)), Message::text("/ping"));
        assert_eq!(send(parse_line("/ping", None)), Message::ping(Vec::new()));
        assert_eq!(
            send(parse_line("/ping abc", None)),
            Message::ping(&b"abc"[..])
        );
        assert_eq!(
            send(parse_line("/pong x y", None)),
            Message::pong(&b"x y"[..])
        );
        assert_eq!(parse_line("", None), Ok(Action::Nothing));
        assert_eq!(parse_line("/help", None), Ok(Action::Help));
        assert!(parse_line("/nope", None).unwrap_err().contains("/nope"));
    }

    #[test]
    fn control_payloads_at_the_limit_and_past_it() {
        let at = format!("/ping {}", "a".repeat(125));
        assert_eq!(send(parse_line(&at, None)).len(), 125);
        let past = format!("/ping {}", "a".repeat(126));
        assert!(parse_line(&past, None).is_err());
    }

    #[test]
    fn close_commands() {
        assert_eq!(
            parse_line("/close", None),
            Ok(Action::Close(CloseFrame::new(CloseCode::NORMAL, "")))
        );
        assert_eq!(
            parse_line("/close 4000 bye now", None),
            Ok(Action::Close(CloseFrame::new(CloseCode(4000), "bye now")))
        );
        assert_eq!(
            parse_line("/close 1001", None),
            Ok(Action::Close(CloseFrame::new(CloseCode::GOING_AWAY, "")))
        );
        for bad in [
            "/close 1005",
            "/close 1006",
            "/close 999",
            "/close 5000",
            "/close x",
        ] {
            assert!(parse_line(bad, None).is_err(), "{bad}");
        }
        let at = format!("/close 4000 {}", "r".repeat(123));
        assert!(parse_line(&at, None).is_ok());
        let past = format!("/close 4000 {}", "r".repeat(124));
        assert!(parse_line(&past, None).is_err());
    }

    #[test]
    fn binary_input() {
        assert_eq!(
            send(parse_line("de ad:be ef", Some(Encoding::Hex))),
            Message::binary(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert_eq!(
            send(parse_line("aGk=", Some(Encoding::Base64))),
            Message::binary(&b"hi"[..])
        );
        assert_eq!(
            send(parse_line("aGk", Some(Encoding::Base64))),
            Message::binary(&b"hi"[..])
        );
        assert!(parse_line("abc", Some(Encoding::Hex)).is_err());
        assert!(parse_line("zz", Some(Encoding::Hex)).is_err());
        assert!(parse_line("@@@", Some(Encoding::Base64)).is_err());
        // Commands still work in binary mode.
        assert_eq!(
            send(parse_line("/ping", Some(Encoding::Hex))),
            Message::ping(Vec::new())
        );
    }
}
