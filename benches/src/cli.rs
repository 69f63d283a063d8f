//! A tiny command-line parser shared by the binaries: `--name value`, `--name=value`, flags.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// The process arguments.
#[derive(Debug, Clone)]
pub struct Args {
    args: Vec<String>,
}

/// Prints `msg` and exits with status 2.
pub fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

impl Args {
    /// The arguments after the program name.
    pub fn from_env() -> Args {
        Args {
            args: std::env::args().skip(1).collect(),
        }
    }

    /// Arguments from a list (for tests).
    pub fn from_vec(args: Vec<String>) -> Args {
        Args { args }
    }

    /// Whether `--name` is present.
    pub fn flag(&self, name: &str) -> bool {
        let long = format!("--{name}");
        self.args.contains(&long)
    }

    /// The value of `--name value` or `--name=value`.
    pub fn value(&self, name: &str) -> Option<&str> {
        let long = format!("--{name}");
        let eq = format!("--{name}=");
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if *a == long {
                return it.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(&eq) {
                return Some(v);
            }
        }
        None
    }

    /// Parses `--name`, or returns `default`; exits with a message on a bad value.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.value(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(&format!("bad value for --{name}: {v:?}"))),
        }
    }

    /// A duration in (fractional) seconds.
    pub fn secs(&self, name: &str, default: f64) -> Duration {
        let s: f64 = self.get(name, default);
        if !(0.0..=86_400.0).contains(&s) {
            die(&format!("--{name} out of range: {s}"));
        }
        Duration::from_secs_f64(s)
    }

    /// A size such as `16`, `1k`, `1KiB`, `64k`, `1m`.
    pub fn size(&self, name: &str, default: usize) -> usize {
        self.value(name).map_or(default, |v| {
            parse_size(v).unwrap_or_else(|| die(&format!("bad size for --{name}: {v:?}")))
        })
    }

    /// A socket address that must be on loopback.
    pub fn loopback_addr(&self, name: &str, default: &str) -> SocketAddr {
        let v = self.value(name).unwrap_or(default);
        let addr: SocketAddr = v
            .parse()
            .unwrap_or_else(|_| die(&format!("bad address for --{name}: {v:?}")));
        if !addr.ip().is_loopback() {
            die("only loopback addresses (127.0.0.0/8, ::1) are allowed");
        }
        addr
    }
}

/// Parses `16`, `1k`, `1KiB`, `64K`, `1m`, `1MiB` (binary multiples).
pub fn parse_size(v: &str) -> Option<usize> {
    let v = v.trim();
    let lower = v.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower
        .strip_suffix("kib")
        .or_else(|| lower.strip_suffix('k'))
    {
        (n.to_string(), 1024)
    } else if let Some(n) = lower
        .strip_suffix("mib")
        .or_else(|| lower.strip_suffix('m'))
    {
        (n.to_string(), 1 << 20)
    } else {
        (lower.trim_end_matches('b').to_string(), 1)
    };
    num.trim().parse::<usize>().ok().map(|n| n * mult)
}

/// A size for people: `16 B`, `1 KiB`, `64 KiB`.
pub fn fmt_size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16"), Some(16));
        assert_eq!(parse_size("16B"), Some(16));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(fmt_size(65536), "64 KiB");
        assert_eq!(fmt_size(16), "16 B");
    }

    #[test]
    fn args() {
        let a = Args::from_vec(
            ["--conns", "100", "--size=1k", "--text"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        assert_eq!(a.get("conns", 1usize), 100);
        assert_eq!(a.size("size", 16), 1024);
        assert!(a.flag("text"));
        assert!(!a.flag("quick"));
    }
}
