//! Runs the Autobahn TestSuite (kosoku) against the `ws-tokio` testees, both roles, and checks
//! the results against `conformance/expected-results.json`.
//!
//! `cargo run --release -p conformance -- [--cases GLOB]... [--role server|client|both]
//! [--update-expected] [--no-deflate] [--timeout SECS] [--axum]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conformance::expected::{self, Comparison, Expected, Role, TOTAL_CASES};
use conformance::report::{self, CaseId, Outcome, Report};
use conformance::testee::{self, ClientOptions, ClientSummary};
use conformance::{glob, kosoku, timefmt};

/// Agent name the client testee reports under.
const AGENT: &str = "ws-tokio";
/// Cases kosoku runs at once against the server testee.
const PARALLELISM: usize = 2;
/// Regressions shown with their report details; the rest get one line each.
const DETAILED: usize = 25;

const USAGE: &str = "\
usage: cargo run --release -p conformance -- [OPTIONS]

  --cases GLOB        run only matching case ids (`*` wildcard, repeatable, comma-separated)
  --role ROLE         server, client or both (default both)
  --expected FILE     expectations file (default conformance/expected-results.json)
  --update-expected   rewrite the expectations file from this run's results
  --no-deflate        testees without permessage-deflate: a quick run of 1.x-10.x only
  --split             the server testee echoes through split read and write halves
                      (by default they negotiate it with ws-tokio's settings and all 517
                      cases run, 12.x/13.x included)
  --timeout SECS      time limit for each role's kosoku run (default 1800, 100 with --no-deflate)
  --axum              the server testee behind axum (ws_tokio::axum); needs `--features axum`
  -h, --help          this text";

struct Args {
    patterns: Vec<String>,
    roles: Vec<Role>,
    expected: Option<PathBuf>,
    update_expected: bool,
    deflate: bool,
    split: bool,
    axum: bool,
    timeout: Duration,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut cases = Vec::new();
    let mut roles = Role::BOTH.to_vec();
    let mut expected = None;
    let mut update_expected = false;
    let mut deflate = true;
    let mut split = false;
    let mut axum = false;
    let mut timeout = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--cases" => cases.push(value()?),
            "--role" => {
                roles = match value()?.as_str() {
                    "server" => vec![Role::Server],
                    "client" => vec![Role::Client],
                    "both" => Role::BOTH.to_vec(),
                    other => return Err(format!("--role {other:?}: use server, client or both")),
                }
            }
            "--expected" => expected = Some(PathBuf::from(value()?)),
            "--update-expected" => update_expected = true,
            "--deflate" => deflate = true,
            "--no-deflate" => deflate = false,
            "--split" => split = true,
            "--axum" if cfg!(feature = "axum") => axum = true,
            "--axum" => return Err("--axum needs the axum feature (`--features axum`)".into()),
            "--timeout" => {
                let v = value()?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("--timeout {v:?}: not a positive number"))?;
                timeout = Some(Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !deflate && cases.is_empty() {
        // Without compression 12.x/13.x cannot pass: leave them out (there is no 8.x).
        cases = [1, 2, 3, 4, 5, 6, 7, 9, 10]
            .iter()
            .map(|g| format!("{g}.*"))
            .collect();
    }
    Ok(Some(Args {
        patterns: glob::split_patterns(&cases),
        roles,
        expected,
        update_expected,
        deflate,
        split,
        axum,
        timeout: timeout.unwrap_or(Duration::from_secs(if deflate { 1800 } else { 100 })),
    }))
}

/// What one role's run produced.
struct RoleRun {
    role: Role,
    dir: PathBuf,
    log: PathBuf,
    report: Option<Report>,
    error: Option<String>,
    wall: Duration,
    client: Option<ClientSummary>,
}

impl RoleRun {
    fn new(role: Role, root: &Path) -> RoleRun {
        RoleRun {
            role,
            dir: root.join(role.name()),
            log: root.join(format!("{}-kosoku.log", role.name())),
            report: None,
            error: None,
            wall: Duration::ZERO,
            client: None,
        }
    }

    fn note(&mut self, e: String) {
        self.error = Some(match self.error.take() {
            Some(prev) => format!("{prev}; {e}"),
            None => e,
        });
    }

    /// kosoku exits with 0 when every case passed and 1 when some did not; anything else is
    /// a crash or a usage error.
    fn check_status(&mut self, status: std::process::ExitStatus) {
        if !matches!(status.code(), Some(0 | 1)) {
            self.note(format!("kosoku exited with {status}"));
        }
    }

    fn load(&mut self, agent: Option<&str>) {
        if let Err(e) = report::load_index(&self.dir, agent).map(|r| self.report = Some(r)) {
            self.note(format!("no usable report: {e}"));
        }
    }
}

/// Runs one role, if there is one, and says when it is done.
async fn run_role(run: Option<&mut RoleRun>, exe: &Path, args: &Args) {
    let Some(run) = run else { return };
    match run.role {
        Role::Server => run_server_role(run, exe, args).await,
        Role::Client => run_client_role(run, exe, args).await,
    }
    println!("{} role done in {}", run.role, secs(run.wall));
}

/// Server role: the echo server in this process, kosoku `fuzzingclient` against it.
async fn run_server_role(run: &mut RoleRun, exe: &Path, args: &Args) {
    let (patterns, limit) = (&args.patterns, args.timeout);
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            run.error = Some(format!("cannot listen on loopback: {e}"));
            return;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            run.error = Some(format!("no local address: {e}"));
            return;
        }
    };
    let config = testee::testee_config(args.deflate);
    #[cfg(feature = "axum")]
    let server = if args.axum {
        tokio::spawn(conformance::axum_testee::serve(listener, config))
    } else {
        tokio::spawn(testee::serve(listener, config, args.split))
    };
    #[cfg(not(feature = "axum"))]
    let server = tokio::spawn(testee::serve(listener, config, args.split));
    let kosoku_args =
        kosoku::fuzzingclient_args(&addr.to_string(), patterns, PARALLELISM, &run.dir);
    let host = if args.axum { " (behind axum)" } else { "" };
    println!(
        "server role: echo server{host} on ws://{addr}, kosoku fuzzingclient -p {PARALLELISM}"
    );
    let start = Instant::now();
    match kosoku::spawn(exe, &kosoku_args, &run.log) {
        Ok(mut child) => match kosoku::wait_or_kill(&mut child, limit).await {
            Some(status) => run.check_status(status),
            None => run.note(format!(
                "kosoku killed after {} s (it writes its report only at the end)",
                limit.as_secs()
            )),
        },
        Err(e) => run.note(e),
    }
    run.wall = start.elapsed();
    server.abort();
    run.load(None);
}

/// Client role: kosoku `fuzzingserver` on a free port, the echo client in this process. The
/// client stops starting cases shortly before the time limit so that kosoku still writes a
/// (partial) report.
async fn run_client_role(run: &mut RoleRun, exe: &Path, args: &Args) {
    let (patterns, limit) = (&args.patterns, args.timeout);
    let port = match kosoku::free_port() {
        Ok(p) => p,
        Err(e) => {
            run.error = Some(format!("no free loopback port: {e}"));
            return;
        }
    };
    let bind = format!("127.0.0.1:{port}");
    let kosoku_args = kosoku::fuzzingserver_args(&bind, patterns, &run.dir);
    println!("client role: kosoku fuzzingserver on ws://{bind}, echo client agent {AGENT:?}");
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let mut child = match kosoku::spawn(exe, &kosoku_args, &run.log) {
        Ok(c) => c,
        Err(e) => {
            run.error = Some(e);
            return;
        }
    };
    let base = format!("ws://{bind}");
    let margin = (limit / 10).min(Duration::from_secs(10));
    let options = ClientOptions {
        config: testee::testee_config(args.deflate),
        deadline: Some(deadline - margin),
        ..ClientOptions::default()
    };
    let client = testee::run_client(&base, AGENT, options);
    tokio::pin!(client);
    let outcome = tokio::select! {
        r = &mut client => r,
        status = child.wait() => Err(format!("kosoku exited before the client finished ({status:?})")),
        _ = tokio::time::sleep_until(deadline) => Err(format!("client not done after {} s", limit.as_secs())),
    };
    let left = match outcome {
        Ok(summary) => {
            run.client = Some(summary);
            deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_secs(5))
        }
        Err(e) => {
            run.note(e);
            Duration::from_secs(2)
        }
    };
    match kosoku::wait_or_kill(&mut child, left).await {
        Some(status) => run.check_status(status),
        None => run.note("kosoku killed: it had not written its report".to_owned()),
    }
    run.wall = start.elapsed();
    run.load(Some(AGENT));
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Counts per group and outcome, with missing cases counted as FAILED.
fn tally(report: Option<&Report>, selected: &[CaseId]) -> BTreeMap<u32, [usize; 5]> {
    let mut t: BTreeMap<u32, [usize; 5]> = BTreeMap::new();
    for id in selected {
        let outcome = report
            .and_then(|r| r.cases.get(id))
            .map_or(Outcome::Failed, |c| c.outcome);
        let col = match outcome {
            Outcome::Ok => 0,
            Outcome::NonStrict => 1,
            Outcome::Informational => 2,
            Outcome::Unimplemented => 3,
            Outcome::Failed | Outcome::Missing => 4,
        };
        t.entry(id.group()).or_default()[col] += 1;
    }
    t
}

fn print_table(run: &RoleRun, selected: &[CaseId], walls: &BTreeMap<u32, Duration>) {
    let report = run.report.as_ref();
    let agent = report.map_or("-", |r| r.agent.as_str());
    println!();
    println!(
        "== {} role (agent {agent:?}): {} of {} cases reported, wall {}",
        run.role,
        report.map_or(0, |r| r.cases.len()),
        selected.len(),
        secs(run.wall)
    );
    println!(
        "{:<6} {:>5} {:>5} {:>10} {:>13} {:>13} {:>6} {:>8}",
        "group", "cases", "OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "wall"
    );
    let mut total = [0usize; 5];
    for (group, counts) in tally(report, selected) {
        for (t, c) in total.iter_mut().zip(counts) {
            *t += c;
        }
        let wall = walls.get(&group).map_or("-".to_owned(), |d| secs(*d));
        println!(
            "{:<6} {:>5} {:>5} {:>10} {:>13} {:>13} {:>6} {:>8}",
            format!("{group}.x"),
            counts.iter().sum::<usize>(),
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4],
            wall
        );
    }
    println!(
        "{:<6} {:>5} {:>5} {:>10} {:>13} {:>13} {:>6} {:>8}",
        "all",
        total.iter().sum::<usize>(),
        total[0],
        total[1],
        total[2],
        total[3],
        total[4],
        secs(run.wall)
    );
}

fn print_comparison(run: &RoleRun, cmp: &Comparison) {
    let role = run.role;
    if let Some(e) = &run.error {
        println!("{role} role error: {e} (log: {})", run.log.display());
    }
    if let Some(s) = &run.client {
        println!(
            "{role} testee: {} cases announced, {} ended in an error, {} failed to connect, \
             {} timed out, {} skipped at the deadline",
            s.case_count, s.case_errors, s.connect_errors, s.timeouts, s.skipped
        );
    }
    if cmp.count_ok() {
        println!(
            "{role} count: {} cases reported, as selected",
            cmp.actual_count
        );
    } else {
        println!(
            "{role} COUNT MISMATCH: {} cases reported, {} selected{}",
            cmp.actual_count,
            cmp.expected_count,
            if cmp.unexpected.is_empty() {
                String::new()
            } else {
                let ids: Vec<String> = cmp.unexpected.iter().map(ToString::to_string).collect();
                format!(" (not selected: {})", ids.join(" "))
            }
        );
    }
    let missing: Vec<String> = cmp
        .regressions
        .iter()
        .filter(|ch| ch.actual == Outcome::Missing)
        .map(|ch| ch.id.to_string())
        .collect();
    if !missing.is_empty() {
        println!(
            "{role} REGRESSION: {} selected case(s) missing from the report: {}",
            missing.len(),
            missing.join(" ")
        );
    }
    let worse = cmp
        .regressions
        .iter()
        .filter(|ch| ch.actual != Outcome::Missing);
    for (i, ch) in worse.enumerate() {
        let case = run.report.as_ref().and_then(|r| r.cases.get(&ch.id));
        let raw = case.map_or(String::new(), |c| {
            format!(
                " (behavior {}, behaviorClose {})",
                c.behavior, c.behavior_close
            )
        });
        println!(
            "{role} REGRESSION {}: expected {}, got {}{raw}",
            ch.id, ch.expected, ch.actual
        );
        if i >= DETAILED {
            continue;
        }
        if let Some(d) = case.and_then(|c| report::load_case(&run.dir, c)) {
            if let Some(r) = &d.result {
                println!("      result: {r}");
            }
            if let Some(r) = &d.result_close {
                println!("      resultClose: {r}");
            }
            print!("{}", d.summary);
        }
    }
    let mut improved: BTreeMap<(Outcome, Outcome), Vec<String>> = BTreeMap::new();
    for ch in &cmp.improvements {
        improved
            .entry((ch.expected, ch.actual))
            .or_default()
            .push(ch.id.to_string());
    }
    for ((was, now), ids) in &improved {
        println!(
            "{role} improvement: {} case(s) expected {was}, now {now}: {}",
            ids.len(),
            ids.join(" ")
        );
    }
    if !improved.is_empty() {
        println!(
            "{role} improvements are not failures: consider updating the expectations \
             (--update-expected, then give each remaining exception a reason)"
        );
    }
    if run.report.is_some() {
        println!(
            "{role} HTML report: {}",
            run.dir.join("index.html").display()
        );
    }
}

fn workspace_dirs() -> (PathBuf, PathBuf) {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir
        .parent()
        .map_or_else(|| crate_dir.clone(), Path::to_path_buf);
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => workspace.join(t),
        None => workspace.join("target"),
    };
    (crate_dir, target)
}

/// A new folder under `parent` named after the current UTC time.
fn fresh_dir(parent: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = timefmt::folder_stamp(now);
    for n in 0..100 {
        let name = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let dir = parent.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
    }
    Err(format!("no fresh folder under {}", parent.display()))
}

fn run(args: Args) -> Result<bool, String> {
    let started = Instant::now();
    let (crate_dir, target) = workspace_dirs();
    let expected_path = args
        .expected
        .clone()
        .unwrap_or_else(|| crate_dir.join("expected-results.json"));
    let text = std::fs::read_to_string(&expected_path)
        .map_err(|e| format!("{}: {e}", expected_path.display()))?;
    let mut expected: Expected =
        expected::parse_expected(&text).map_err(|e| format!("{}: {e}", expected_path.display()))?;
    for w in expected.warnings() {
        println!("warning: {w}");
    }
    let selected = glob::select(&args.patterns, expected.cases.keys())?;
    if args.patterns.is_empty() && selected.len() != TOTAL_CASES {
        return Err(format!(
            "expected-results.json must list all {TOTAL_CASES} cases, it lists {}",
            selected.len()
        ));
    }

    let exe = kosoku::ensure_venv(&target.join("conformance-venv"))?;
    let root = fresh_dir(&target.join("conformance-reports"))?;
    println!(
        "kosoku {} from {}; {} case(s) selected; testees {} permessage-deflate; reports in {}",
        kosoku::KOSOKU_VERSION,
        exe.display(),
        selected.len(),
        if args.deflate { "with" } else { "without" },
        root.display()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // Both roles run at once: the client role runs its cases one after another, so it leaves
    // room beside the server role's parallel cases.
    let mut runs: Vec<RoleRun> = args
        .roles
        .iter()
        .map(|role| RoleRun::new(*role, &root))
        .collect();
    runtime.block_on(async {
        let mut it = runs.iter_mut();
        let (first, second) = (it.next(), it.next());
        tokio::join!(run_role(first, &exe, &args), run_role(second, &exe, &args));
    });
    drop(runtime);

    let mut ok = true;
    let mut comparisons = Vec::new();
    for r in &runs {
        let walls = r
            .report
            .as_ref()
            .map(|rep| report::group_walls(&r.dir, rep))
            .unwrap_or_default();
        print_table(r, &selected, &walls);
        let deflate: Vec<String> = [12, 13]
            .iter()
            .filter_map(|g| walls.get(g).map(|d| format!("{g}.x {}", secs(*d))))
            .collect();
        if !deflate.is_empty() {
            println!("{} role wall time: {}", r.role, deflate.join(", "));
        }
        let cmp = expected::compare(&expected, r.role, &selected, r.report.as_ref());
        print_comparison(r, &cmp);
        ok &= cmp.passed();
        comparisons.push(cmp);
    }

    println!();
    for r in &runs {
        println!("timing: {} role {}", r.role, secs(r.wall));
    }
    println!("timing: total {}", secs(started.elapsed()));

    if args.update_expected {
        let mut updatable = true;
        for (r, cmp) in runs.iter().zip(&comparisons) {
            match &r.report {
                Some(rep) if cmp.count_ok() => {
                    expected::update(&mut expected, r.role, &selected, rep);
                }
                _ => {
                    println!(
                        "not updating: the {} role's run is incomplete ({} of {} cases)",
                        r.role, cmp.actual_count, cmp.expected_count
                    );
                    updatable = false;
                }
            }
        }
        if !updatable {
            return Ok(false);
        }
        std::fs::write(&expected_path, expected.render())
            .map_err(|e| format!("{}: {e}", expected_path.display()))?;
        println!("rewrote {}", expected_path.display());
        for w in expected.warnings() {
            println!("warning: {w}");
        }
        return Ok(true);
    }

    let summary: Vec<String> = comparisons
        .iter()
        .map(|c| {
            format!(
                "{} {} regression(s), {} improvement(s), {}/{} cases",
                c.role,
                c.regressions.len(),
                c.improvements.len(),
                c.actual_count,
                c.expected_count
            )
        })
        .collect();
    println!(
        "conformance: {} ({})",
        if ok { "PASS" } else { "FAIL" },
        summary.join("; ")
    );
    Ok(ok)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_flags() {
        let a = parse(&[]).unwrap().unwrap();
        assert_eq!(a.roles, Role::BOTH);
        assert!(a.patterns.is_empty() && !a.update_expected && a.deflate);
        assert_eq!(a.timeout, Duration::from_secs(1800));
        assert!(a.expected.is_none());
        let a = parse(&["--no-deflate", "--expected", "/tmp/e.json"])
            .unwrap()
            .unwrap();
        assert!(!a.deflate);
        assert_eq!(a.patterns.len(), 9, "12.x/13.x left out");
        // Every pattern of the quick run selects cases of the suite (kosoku refuses one that
        // selects nothing).
        let suite = expected::parse_expected(include_str!("../expected-results.json")).unwrap();
        let selected = glob::select(&a.patterns, suite.cases.keys()).unwrap();
        assert!(
            selected
                .iter()
                .all(|id| !id.to_string().starts_with("12.") && !id.to_string().starts_with("13."))
        );
        assert!(selected.len() > 200, "{}", selected.len());
        assert_eq!(a.timeout, Duration::from_secs(100));
        assert_eq!(a.expected, Some(PathBuf::from("/tmp/e.json")));
        let a = parse(&[
            "--cases",
            "1.*,2.*",
            "--cases=9.1.1",
            "--role",
            "client",
            "--update-expected",
            "--timeout=30",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.patterns, ["1.*", "2.*", "9.1.1"]);
        assert_eq!(a.roles, [Role::Client]);
        assert!(a.update_expected);
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(!parse(&[]).unwrap().unwrap().axum);
        match parse(&["--axum"]) {
            Ok(a) => assert!(cfg!(feature = "axum") && a.unwrap().axum),
            Err(e) => assert!(
                !cfg!(feature = "axum") && e.contains("--features axum"),
                "{e}"
            ),
        }
        assert!(parse(&["--role", "proxy"]).is_err());
        assert!(parse(&["--timeout", "0"]).is_err());
        assert!(parse(&["--cases"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn tallies_groups() {
        let r = report::parse_index(
            r#"{"a": {"1.1.1": {"behavior": "OK", "behaviorClose": "OK"},
                      "1.1.2": {"behavior": "OK", "behaviorClose": "UNCLEAN"},
                      "12.1.1": {"behavior": "UNIMPLEMENTED", "behaviorClose": "OK"}}}"#,
            None,
        )
        .unwrap();
        let selected: Vec<CaseId> = ["1.1.1", "1.1.2", "1.1.3", "12.1.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let t = tally(Some(&r), &selected);
        assert_eq!(t[&1], [1, 0, 0, 0, 2]);
        assert_eq!(t[&12], [0, 0, 0, 1, 0]);
    }
}
