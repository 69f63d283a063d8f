//! What `/proc` tells about a process and the machine: CPU time, RSS, CPU model. The
//! readings a load run takes (a process's CPU time and RSS, the machine's CPU time) are
//! `ws_tokio::load::sys`'s, re-exported here.

use std::io;

pub use ws_tokio::load::sys::{cpu_time_ns, rss_bytes, system_cpu_ns};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), for the times in `/proc/<pid>/stat`.
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads its argument.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// CPU time of process `pid` in nanoseconds, to the nanosecond: the sum over its threads of
/// the time on a CPU from `/proc/<pid>/task/<tid>/schedstat` (the `utime + stime` of
/// [`cpu_time_ns`] without its clock-tick granularity; threads that have exited are not
/// counted). Falls back to [`cpu_time_ns`] where schedstat is missing.
pub fn cpu_time_fine_ns(pid: u32) -> io::Result<u64> {
    let fine = || -> io::Result<u64> {
        let mut total = 0u64;
        for e in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let path = e?.path().join("schedstat");
            // A thread may end between the listing and the read.
            let Ok(s) = std::fs::read_to_string(path) else {
                continue;
            };
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad schedstat"))?;
        }
        Ok(total)
    };
    fine().or_else(|_| cpu_time_ns(pid))
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
        // Burn some CPU: the fine reading grows by about as much as the coarse one.
        let (c0, f0) = (cpu_time_ns(pid).unwrap(), cpu_time_fine_ns(pid).unwrap());
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let (c1, f1) = (cpu_time_ns(pid).unwrap(), cpu_time_fine_ns(pid).unwrap());
        let (dc, df) = ((c1 - c0) as f64, (f1 - f0) as f64);
        assert!(df > 50e6, "fine CPU time grew by {df} ns");
        assert!((df - dc).abs() < 60e6, "coarse {dc} vs fine {df}");
    }
}
