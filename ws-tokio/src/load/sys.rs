//! What a load run reads about processes and the machine: CPU time and RSS from Linux's
//! `/proc` (an `Unsupported` error elsewhere), and the descriptor limit.

use std::io;

/// The unit of the times in `/proc/<pid>/stat` and `/proc/stat`: the kernel's `USER_HZ`, 100
/// ticks per second on every architecture Linux supports but Alpha (whose `/proc` this does
/// not read right).
pub const USER_HZ: u64 = 100;

fn bad(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn read(path: &str) -> io::Result<String> {
    if cfg!(target_os = "linux") {
        std::fs::read_to_string(path)
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "process figures are read from Linux's /proc",
        ))
    }
}

/// `utime + stime` of process `pid` (all its threads, those that ended included), in
/// nanoseconds, with the 10 ms resolution of the kernel's ticks.
pub fn cpu_time_ns(pid: u32) -> io::Result<u64> {
    parse_stat_cpu(&read(&format!("/proc/{pid}/stat"))?)
}

/// `utime + stime` from the text of a `/proc/<pid>/stat`, in nanoseconds.
fn parse_stat_cpu(s: &str) -> io::Result<u64> {
    // The command name (field 2) is in parentheses and may itself hold spaces and
    // parentheses: split after the last `)`.
    let (_, rest) = s.rsplit_once(')').ok_or(bad("bad /proc stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, stime field 15.
    let field = |i: usize| -> io::Result<u64> {
        f.get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or(bad("bad /proc stat field"))
    };
    Ok((field(14)? + field(15)?) * (1_000_000_000 / USER_HZ))
}

/// Resident set size of process `pid`, in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    parse_rss(&read(&format!("/proc/{pid}/status"))?)
}

fn parse_rss(s: &str) -> io::Result<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or(bad("no VmRSS"))
}

/// Machine-wide CPU time from the first line of `/proc/stat`: `(busy, total)` in nanoseconds,
/// where busy counts user, nice, system, irq, softirq and steal (time the hypervisor gave to
/// someone else), and total adds idle and iowait.
pub fn system_cpu_ns() -> io::Result<(u64, u64)> {
    parse_system_cpu(&read("/proc/stat")?)
}

fn parse_system_cpu(s: &str) -> io::Result<(u64, u64)> {
    let line = s.lines().next().ok_or(bad("empty /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if v.len() < 8 {
        return Err(bad("short /proc/stat"));
    }
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    let total = busy + v[3] + v[4];
    let ns = 1_000_000_000 / USER_HZ;
    Ok((busy * ns, total * ns))
}

/// The descriptor limit (`RLIMIT_NOFILE`) as `(soft, hard)`; `None` where there is none to
/// read.
pub fn nofile_limit() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft descriptor limit to `want`, or as far as the hard limit allows (an
/// unprivileged process cannot go past it). Returns the soft limit now in force (`u64::MAX`
/// where there is no such limit).
pub fn raise_nofile(want: u64) -> u64 {
    #[cfg(unix)]
    {
        let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
            return 0;
        };
        if soft >= want {
            return soft;
        }
        let new = want.min(hard);
        match rlimit::setrlimit(rlimit::Resource::NOFILE, new, hard) {
            Ok(()) => new,
            Err(_) => soft,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = want;
        u64::MAX
    }
}

/// What to tell a user whose descriptor limit is too low for `need` sockets.
pub fn nofile_advice(need: u64) -> String {
    match nofile_limit() {
        Some((soft, hard)) if hard < need => format!(
            "the descriptor limit is {soft} (hard limit {hard}), below the {need} this run \
             needs: raise the hard limit first (as root: `ulimit -Hn {need}` in the shell that \
             starts it, `LimitNOFILE=` for a systemd service, or `nofile` in \
             /etc/security/limits.conf)"
        ),
        Some((soft, _)) if soft < need => format!(
            "the soft descriptor limit is {soft}, below the {need} this run needs: \
             `ulimit -n {need}` before starting it"
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_spaced_command_name() {
        // Fields 14 and 15 are 250 and 50 ticks: 3 s.
        let s = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_stat_cpu(s).unwrap(), 3_000_000_000);
        assert!(parse_stat_cpu("1234 (x) S 1").is_err());
        assert!(parse_stat_cpu("no parenthesis").is_err());
    }

    #[test]
    fn status_rss() {
        let s = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1536 kB\nThreads:\t3\n";
        assert_eq!(parse_rss(s).unwrap(), 1536 * 1024);
        assert!(parse_rss("Name:\tx\n").is_err());
    }

    #[test]
    fn machine_cpu() {
        let s = "cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        let (busy, total) = parse_system_cpu(s).unwrap();
        assert_eq!(busy, 170 * 10_000_000);
        assert_eq!(total, 1190 * 10_000_000);
        assert!(parse_system_cpu("cpu 1 2 3\n").is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        cpu_time_ns(pid).unwrap();
        let (busy, total) = system_cpu_ns().unwrap();
        assert!(busy <= total);
    }

    #[cfg(unix)]
    #[test]
    fn raising_to_what_is_in_force_changes_nothing() {
        let (soft, hard) = nofile_limit().unwrap();
        assert_eq!(raise_nofile(soft), soft);
        assert!(soft <= hard);
        assert!(nofile_advice(soft).is_empty());
        assert!(!nofile_advice(hard.saturating_add(1)).is_empty() || hard == u64::MAX);
    }
}
