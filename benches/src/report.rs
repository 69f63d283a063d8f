//! Rendering helpers shared by the driver binaries: number formats, markdown rows with the
//! ratio of ours to the best peer, versions from `Cargo.lock`, today's date.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::server::Impl;

/// A rate for people: `812`, `45.3k`, `1.52M`.
pub fn fmt_rate(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// A byte count for people: `812 B`, `7.3 KiB`, `1.25 MiB`.
pub fn fmt_bytes(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", x / 1048576.0)
    } else if x >= 1024.0 {
        format!("{:.1} KiB", x / 1024.0)
    } else {
        format!("{x:.0} B")
    }
}

/// Bytes per connection: exact below 16 KiB (where the 2 KB goal lies), else as [`fmt_bytes`].
pub fn fmt_conn_bytes(x: f64) -> String {
    if x < 16384.0 {
        format!("{x:.0} B")
    } else {
        fmt_bytes(x)
    }
}

/// A row of values (one per implementation) plus ours divided by the best peer.
/// `higher_better` picks the best; the best value is bold.
pub fn row(
    label: &str,
    impls: &[Impl],
    vals: &[f64],
    fmt: &dyn Fn(f64) -> String,
    higher_better: bool,
) -> String {
    let better = |a: f64, b: f64| if higher_better { a > b } else { a < b };
    let best_all = vals
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f64::NAN, |acc, v| {
            if acc.is_nan() || better(v, acc) {
                v
            } else {
                acc
            }
        });
    let mut out = format!("| {label} |");
    for &v in vals {
        if !v.is_nan() && v == best_all {
            let _ = write!(out, " **{}** |", fmt(v));
        } else {
            let _ = write!(out, " {} |", fmt(v));
        }
    }
    match ours_vs_best_peer(impls, vals, higher_better) {
        Some((r, imp)) => {
            let _ = write!(out, " {r:.2}× ({}) |", imp.name());
        }
        None => out.push_str(" - |"),
    }
    out
}

/// Ours (the first "ours" configuration) divided by the best peer's value, and that peer.
/// `None` when either is missing (`NaN`) or the peer's value is not positive.
pub fn ours_vs_best_peer(impls: &[Impl], vals: &[f64], higher_better: bool) -> Option<(f64, Impl)> {
    let better = |a: f64, b: f64| if higher_better { a > b } else { a < b };
    let ours = impls.iter().position(|i| i.is_ours()).map(|i| vals[i])?;
    let mut best_peer: Option<(f64, Impl)> = None;
    for (i, &imp) in impls.iter().enumerate() {
        if imp.is_ours() || vals[i].is_nan() {
            continue;
        }
        if best_peer.is_none_or(|(b, _)| better(vals[i], b)) {
            best_peer = Some((vals[i], imp));
        }
    }
    match best_peer {
        Some((b, imp)) if !ours.is_nan() && b > 0.0 => Some((ours / b, imp)),
        _ => None,
    }
}

/// A markdown table head: `first`, one column per implementation, then `last`.
pub fn header(first: &str, impls: &[Impl], last: &str) -> String {
    let mut h = format!("| {first} |");
    let mut sep = String::from("|---|");
    for i in impls {
        let _ = write!(h, " {} |", i.name());
        sep.push_str("---:|");
    }
    let _ = write!(h, " {last} |");
    sep.push_str("---|");
    format!("{h}\n{sep}\n")
}

/// The version of package `name` in the workspace `Cargo.lock` (`?` when not found).
pub fn lock_version(name: &str) -> String {
    let lock = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let Ok(text) = std::fs::read_to_string(lock) else {
        return "?".into();
    };
    let pat = format!("name = \"{name}\"\nversion = \"");
    text.find(&pat)
        .and_then(|i| text[i + pat.len()..].split('"').next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}")
}
