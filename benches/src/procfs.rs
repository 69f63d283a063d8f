//! What `/proc` tells about a process and the machine: CPU time, RSS, CPU model. The
//! readings a load run takes (a process's CPU time and RSS, the machine's CPU time) are
//! `ws_tokio::load::sys`'s, re-exported here.

pub use ws_tokio::load::sys::{cpu_time_ns, rss_bytes, system_cpu_ns};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), for the times in `/proc/<pid>/stat`.
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads its argument.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// The CPU model name and the number of online CPUs.
pub fn machine() -> (String, usize) {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (model, cores)
}

/// Kernel release (`/proc/sys/kernel/osrelease`).
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Raises the soft `RLIMIT_NOFILE` to `want` (or as far as allowed: the hard limit, which a
/// privileged process may raise too). Returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 0;
    }
    if r.rlim_cur >= want {
        return r.rlim_cur;
    }
    // Try raising the hard limit as well (works when privileged).
    if r.rlim_max < want {
        let up = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // SAFETY: `up` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &up) } == 0 {
            return want;
        }
    }
    let new = libc::rlimit {
        rlim_cur: want.min(r.rlim_max),
        rlim_max: r.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit no higher than the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
        new.rlim_cur
    } else {
        r.rlim_cur
    }
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        let _ = cpu_time_ns(pid).unwrap();
        assert!(machine().1 >= 1);
    }
}
