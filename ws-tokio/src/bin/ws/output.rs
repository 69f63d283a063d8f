//! Printing: messages and status lines from any task, through one printer thread (into the
//! line editor's writer while a line is being edited, so that output appears above the
//! prompt), with colours only where the stream is a terminal that wants them.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anstream::ColorChoice;
use anstyle::{AnsiColor, Style};
use ws_tokio::Message;

use crate::args::Encoding;

/// Whether to colour what goes to `stream`: it is a terminal, `NO_COLOR` is not set (and
/// `CLICOLOR_FORCE` can force colours on), and the user did not say `--no-color`.
pub(crate) fn wants_color<S: anstream::stream::RawStream>(stream: &S, no_color: bool) -> bool {
    !no_color && anstream::AutoStream::choice(stream) != ColorChoice::Never
}

/// The styles of the different kinds of lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Palette {
    color: bool,
}

impl Palette {
    pub(crate) fn new(color: bool) -> Palette {
        Palette { color }
    }

    fn paint(&self, style: Style, s: &str) -> String {
        if self.color {
            format!("{style}{s}{style:#}")
        } else {
            s.to_string()
        }
    }

    /// Received messages' `<` marker.
    pub(crate) fn received(&self, s: &str) -> String {
        self.paint(Style::new().fg_color(Some(AnsiColor::Green.into())), s)
    }

    /// Pings, pongs, connection events.
    pub(crate) fn control(&self, s: &str) -> String {
        self.paint(Style::new().fg_color(Some(AnsiColor::Cyan.into())), s)
    }

    /// Errors.
    pub(crate) fn error(&self, s: &str) -> String {
        self.paint(Style::new().fg_color(Some(AnsiColor::Red.into())).bold(), s)
    }

    /// Warnings that must not be missed.
    pub(crate) fn warning(&self, s: &str) -> String {
        self.paint(
            Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold(),
            s,
        )
    }
}

/// How received messages are shown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    /// Pings and pongs shown.
    pub(crate) control: bool,
    /// The encoding of binary messages (hex without one).
    pub(crate) binary: Option<Encoding>,
    /// JSON pretty-printed.
    pub(crate) json: bool,
    /// `< ` before each message (interactive), or the payload alone (`-x`, for scripts).
    pub(crate) marker: bool,
    pub(crate) palette: Palette,
}

/// Bytes in `encoding` (hex by default).
pub(crate) fn encode(bytes: &[u8], encoding: Option<Encoding>) -> String {
    use base64::Engine;
    match encoding {
        Some(Encoding::Base64) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Some(Encoding::Hex) | None => hex::encode(bytes),
    }
}

/// A ping or pong: its payload quoted if it is UTF-8, otherwise in hex; nothing if empty.
fn control(kind: &str, p: &[u8]) -> String {
    match std::str::from_utf8(p) {
        _ if p.is_empty() => kind.to_string(),
        Ok(s) => format!("{kind} {s:?}"),
        Err(_) => format!("{kind} 0x{}", hex::encode(p)),
    }
}

impl Format {
    /// The text of a received message, or `None` for one not shown (pings and pongs without
    /// `-P`; the close frame, reported when the connection ends).
    pub(crate) fn message(&self, msg: &Message) -> Option<String> {
        let p = &self.palette;
        let body = match msg {
            Message::Text(t) => {
                let s = t.as_str();
                match self
                    .json
                    .then(|| serde_json::from_str::<serde_json::Value>(s))
                {
                    Some(Ok(v)) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| s.into()),
                    _ => s.to_string(),
                }
            }
            Message::Binary(b) => {
                let json = self
                    .json
                    .then(|| serde_json::from_slice::<serde_json::Value>(b).ok())
                    .flatten();
                match json {
                    Some(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
                    None if self.marker => {
                        format!("[binary, {} bytes] {}", b.len(), encode(b, self.binary))
                    }
                    None => encode(b, self.binary),
                }
            }
            Message::Ping(d) if self.control => p.control(&control("ping", d)),
            Message::Pong(d) if self.control => p.control(&control("pong", d)),
            _ => return None,
        };
        Some(if self.marker {
            format!("{} {body}", p.received("<"))
        } else {
            body
        })
    }
}

enum Line {
    Out(String),
    Err(String),
}

/// The printer thread's end: clone it into every task that prints.
#[derive(Clone)]
pub(crate) struct Out {
    tx: mpsc::Sender<Line>,
}

impl Out {
    /// A line for stdout (messages).
    pub(crate) fn out(&self, s: impl Into<String>) {
        let _ = self.tx.send(Line::Out(s.into()));
    }

    /// A line for stderr (status, errors).
    pub(crate) fn err(&self, s: impl Into<String>) {
        let _ = self.tx.send(Line::Err(s.into()));
    }
}

/// Owns the printer thread; [`finish`](Self::finish) waits until everything is printed.
pub(crate) struct Printer {
    handle: JoinHandle<()>,
}

impl Printer {
    /// Lines go to stdout and stderr.
    pub(crate) fn plain() -> (Out, Printer) {
        Printer::spawn(|line| match line {
            Line::Out(s) => {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{s}");
                let _ = o.flush();
            }
            Line::Err(s) => eprintln!("{s}"),
        })
    }

    /// Every line goes to the line editor's writer (printed above the prompt). A full writer
    /// (the editor prints 500 lines behind) holds the printer back until it has room.
    pub(crate) fn through<W>(mut writer: W) -> (Out, Printer)
    where
        W: Write + Send + 'static,
    {
        Printer::spawn(move |line| {
            let s = match line {
                Line::Out(s) | Line::Err(s) => s,
            };
            let mut bytes = format!("{s}\n").into_bytes();
            loop {
                match writer.write(&bytes) {
                    Ok(n) if n == bytes.len() => break,
                    Ok(n) => {
                        bytes.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    Err(_) => {
                        eprint!("{}", String::from_utf8_lossy(&bytes));
                        break;
                    }
                }
            }
        })
    }

    fn spawn(mut f: impl FnMut(Line) + Send + 'static) -> (Out, Printer) {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            for line in rx {
                f(line);
            }
        });
        (Out { tx }, Printer { handle })
    }

    /// Waits for every line sent before `out` (the last handle) was dropped.
    pub(crate) fn finish(self, out: Out) {
        drop(out);
        let _ = self.handle.join();
    }
}

/// Whether stdin and stdout are both terminals (line editing then).
pub(crate) fn interactive_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(json: bool, marker: bool, binary: Option<Encoding>) -> Format {
        Format {
            control: true,
            binary,
            json,
            marker,
            palette: Palette::new(false),
        }
    }

    #[test]
    fn messages_as_shown() {
        let f = format(false, true, None);
        assert_eq!(f.message(&Message::text("hi")).unwrap(), "< hi");
        assert_eq!(
            f.message(&Message::binary(vec![0u8, 255])).unwrap(),
            "< [binary, 2 bytes] 00ff"
        );
        assert_eq!(
            f.message(&Message::ping(&b"x"[..])).unwrap(),
            "< ping \"x\""
        );
        assert_eq!(f.message(&Message::pong(Vec::new())).unwrap(), "< pong");
        assert_eq!(
            f.message(&Message::pong(vec![0xffu8])).unwrap(),
            "< pong 0xff"
        );
        let raw = format(false, false, Some(Encoding::Base64));
        assert_eq!(raw.message(&Message::text("hi")).unwrap(), "hi");
        assert_eq!(raw.message(&Message::binary(&b"hi"[..])).unwrap(), "aGk=");
        let quiet = Format {
            control: false,
            ..f
        };
        assert_eq!(quiet.message(&Message::ping(&b"x"[..])), None);
        assert_eq!(f.message(&Message::Close(None)), None);
    }

    #[test]
    fn json_is_pretty_printed_when_it_parses() {
        let f = format(true, false, None);
        assert_eq!(
            f.message(&Message::text(r#"{"a":[1,2]}"#)).unwrap(),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}"
        );
        assert_eq!(f.message(&Message::text("not json")).unwrap(), "not json");
    }

    #[test]
    fn colours_only_when_asked() {
        assert_eq!(Palette::new(false).error("x"), "x");
        let c = Palette::new(true).error("x");
        assert!(
            c.starts_with("\x1b[") && c.contains('x') && c.ends_with("\x1b[0m"),
            "{c:?}"
        );
    }
}
