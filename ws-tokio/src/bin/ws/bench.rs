//! `ws bench`: the load generator of `ws_tokio::load` on the command line.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use ws_tokio::load::{self, K6Scenario, LoadOpts, Progress, Report, sys};

use crate::args::{BenchArgs, Mode};
use crate::connect::{INSECURE_WARNING, chain, target};
use crate::exit;
use crate::output::{Palette, wants_color};

/// Descriptors kept for everything that is not a connection.
const HEADROOM: u64 = 64;

pub(crate) fn run(a: BenchArgs) -> i32 {
    let palette = Palette::new(wants_color(&std::io::stderr(), false));
    let t = match target(&a.url, &a.client) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    if a.client.insecure {
        eprintln!("{}", palette.warning(INSECURE_WARNING));
    }
    let mode = a.mode.unwrap_or(if a.vus.is_some() {
        Mode::K6
    } else {
        Mode::Echo
    });
    let sockets = match mode {
        Mode::Echo => a.connections as u64,
        Mode::K6 => a.vus.unwrap_or(100) as u64,
    };
    // One descriptor per connection: raise the soft limit as far as the hard one allows.
    let need = sockets + HEADROOM;
    if sys::raise_nofile(need) < need {
        eprintln!("error: {}", sys::nofile_advice(need));
        return exit::CONNECT;
    }
    let progress = Arc::new(Progress::new());
    let show = !a.no_progress && std::io::stderr().is_terminal();
    let done = Arc::new(AtomicBool::new(false));
    let ticker = show.then(|| spawn_progress(progress.clone(), done.clone(), mode, sockets));

    let (result, report) = match mode {
        Mode::Echo => {
            let o = LoadOpts::new(t)
                .with_conns(a.connections)
                .with_size(a.size.unwrap_or(16))
                .with_text(a.text)
                .with_warmup(a.warmup)
                .with_duration(a.duration.unwrap_or(Duration::from_secs(5)))
                .with_server_pid(a.server_pid)
                .with_client_threads(a.threads)
                .with_inflight(a.pipeline);
            let (r, name) = if a.pipeline > 1 {
                (load::run_pipeline_with(&o, &progress), "pipeline")
            } else {
                (load::run_echo_with(&o, &progress), "echo")
            };
            let report = r.as_ref().ok().map(|r| Report::echo(&o, name, r));
            (r, report)
        }
        Mode::K6 => {
            let s = K6Scenario::new(t)
                .with_vus(a.vus.unwrap_or(100))
                .with_ramp(a.ramp)
                .with_duration(a.duration.unwrap_or(Duration::from_secs(30)))
                .with_session(a.session)
                .with_interval(a.interval.0, a.interval.1)
                .with_size(a.size.unwrap_or(64))
                .with_server_pid(a.server_pid)
                .with_client_threads(a.threads);
            let r = load::run_k6_with(&s, &progress);
            let report = r.as_ref().ok().map(|r| Report::k6(&s, r));
            (r, report)
        }
    };
    done.store(true, Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    let (r, report) = match (result, report) {
        (Ok(r), Some(report)) => (r, report),
        (Err(e), _) => {
            eprintln!("{}", palette.error(&format!("error: {}", chain(&e))));
            return if e.kind() == std::io::ErrorKind::InvalidInput {
                exit::USAGE
            } else {
                exit::CONNECT
            };
        }
        (Ok(_), None) => return exit::CONNECT,
    };
    let text = if a.json {
        serde_json::to_string_pretty(&report.json()).unwrap_or_default()
    } else if a.markdown {
        report.markdown()
    } else {
        report.text()
    };
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", text.trim_end());
    let _ = o.flush();
    if r.errors > 0 {
        exit::CLOSE_CODE
    } else {
        exit::OK
    }
}

/// The live progress line on stderr, redrawn every second.
fn spawn_progress(
    p: Arc<Progress>,
    done: Arc<AtomicBool>,
    mode: Mode,
    target: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut last = (Instant::now(), 0u64);
        while !done.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            if last.0.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let [vus, open, _, sessions, sent, received, errors] = p.snapshot();
            let rate = (received - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), received);
            let who = match mode {
                Mode::K6 => format!("vus {vus}/{target}"),
                Mode::Echo => format!("conns {vus}/{target}"),
            };
            eprint!(
                "\r\x1b[2K{:>6.1}s  {who}  open {open}  sessions {sessions}  sent {sent}  \
                 received {received} ({rate:.0}/s)  errors {errors}",
                start.elapsed().as_secs_f64()
            );
        }
        eprint!("\r\x1b[2K");
    })
}
