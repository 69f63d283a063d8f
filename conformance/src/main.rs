//! Runs the Autobahn TestSuite (kosoku) against the `ws-tokio` testees, both roles, and checks
//! the results against `conformance/expected-results.json`; or against an external server
//! (`--server ws://HOST:PORT`) or client program (`--client-cmd 'CMD {url} {agent}'`).
//!
//! `cargo run --release -p conformance -- --help` lists the options; the client program's
//! contract is in [`conformance::external`] and `conformance/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use conformance::cli::{Cli, Plan, Subject};
use conformance::expected::{self, Comparison, Expected, Role, TOTAL_CASES};
use conformance::external::{self, ClientCommand, ServerUrl};
use conformance::report::{self, CaseId, Outcome, Report};
use conformance::testee::{self, ClientOptions, ClientSummary};
use conformance::{kosoku, select};
use time::OffsetDateTime;
use tokio::process::Child;

/// Cases kosoku runs at once against the server under test.
const PARALLELISM: usize = 2;
/// Regressions shown with their report details; the rest get one line each.
const DETAILED: usize = 25;
/// How long an external server may take to accept a TCP connection before the run gives up.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long kosoku's fuzzing server may take to answer `/getCaseCount` after its start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long kosoku may take to write its reports and exit after `/updateReports`.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// What one role's run produced.
struct RoleRun {
    role: Role,
    subject: Subject,
    dir: PathBuf,
    log: PathBuf,
    report: Option<Report>,
    error: Option<String>,
    notes: Vec<String>,
    wall: Duration,
    client: Option<ClientSummary>,
}

impl RoleRun {
    fn new(role: Role, subject: Subject, root: &Path) -> RoleRun {
        RoleRun {
            role,
            subject,
            dir: root.join(role.name()),
            log: root.join(format!("{}-kosoku.log", role.name())),
            report: None,
            error: None,
            notes: Vec::new(),
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
    fn check_status(&mut self, status: ExitStatus) {
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
async fn run_role(run: Option<&mut RoleRun>, exe: &Path, plan: &Plan) {
    let Some(run) = run else { return };
    match run.subject.clone() {
        Subject::Server(url) => run_external_server(run, exe, plan, &url).await,
        Subject::Client(cmd) => run_external_client(run, exe, plan, &cmd).await,
        _ => match run.role {
            Role::Server => run_server_role(run, exe, plan).await,
            Role::Client => run_client_role(run, exe, plan).await,
        },
    }
    println!("{} role done in {}", run.role, secs(run.wall));
}

/// kosoku `fuzzingclient` against the server at `target` (`host:port` or a `ws://` URL).
async fn fuzz_server(run: &mut RoleRun, exe: &Path, plan: &Plan, target: &str) {
    let limit = plan.timeout;
    let kosoku_args = kosoku::fuzzingclient_args(target, &plan.patterns, PARALLELISM, &run.dir);
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
    run.load(None);
}

/// Server role: the echo server in this process, kosoku `fuzzingclient` against it.
async fn run_server_role(run: &mut RoleRun, exe: &Path, plan: &Plan) {
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
    let config = testee::testee_config(plan.deflate);
    #[cfg(feature = "axum")]
    let server = if plan.axum {
        tokio::spawn(conformance::axum_testee::serve(listener, config))
    } else {
        tokio::spawn(testee::serve(listener, config, plan.split))
    };
    #[cfg(not(feature = "axum"))]
    let server = tokio::spawn(testee::serve(listener, config, plan.split));
    let host = if plan.axum { " (behind axum)" } else { "" };
    println!(
        "server role: echo server{host} on ws://{addr}, kosoku fuzzingclient -p {PARALLELISM}"
    );
    fuzz_server(run, exe, plan, &addr.to_string()).await;
    server.abort();
}

/// Server role of an external implementation: kosoku `fuzzingclient` against `url`, which
/// must already accept connections.
async fn run_external_server(run: &mut RoleRun, exe: &Path, plan: &Plan, url: &ServerUrl) {
    if let Err(e) = external::wait_reachable(url, REACH_TIMEOUT).await {
        run.error = Some(e);
        return;
    }
    println!(
        "server role: external server {url} (agent {:?}), kosoku fuzzingclient -p {PARALLELISM}",
        plan.agent
    );
    fuzz_server(run, exe, plan, url.as_str()).await;
}

/// kosoku `fuzzingserver` on a free loopback port: the process and its base URL.
fn start_fuzzing_server(run: &mut RoleRun, exe: &Path, plan: &Plan) -> Option<(Child, String)> {
    let port = match kosoku::free_port() {
        Ok(p) => p,
        Err(e) => {
            run.error = Some(format!("no free loopback port: {e}"));
            return None;
        }
    };
    let bind = format!("127.0.0.1:{port}");
    let kosoku_args = kosoku::fuzzingserver_args(&bind, &plan.patterns, &run.dir);
    match kosoku::spawn(exe, &kosoku_args, &run.log) {
        Ok(child) => Some((child, format!("ws://{bind}"))),
        Err(e) => {
            run.error = Some(e);
            None
        }
    }
}

/// Client role: kosoku `fuzzingserver` on a free port, the echo client in this process. The
/// client stops starting cases shortly before the time limit so that kosoku still writes a
/// (partial) report.
async fn run_client_role(run: &mut RoleRun, exe: &Path, plan: &Plan) {
    let limit = plan.timeout;
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let Some((mut child, base)) = start_fuzzing_server(run, exe, plan) else {
        return;
    };
    println!(
        "client role: kosoku fuzzingserver on {base}, echo client agent {:?}",
        plan.agent
    );
    let margin = (limit / 10).min(Duration::from_secs(10));
    let options = ClientOptions {
        config: testee::testee_config(plan.deflate),
        deadline: Some(deadline - margin),
        ..ClientOptions::default()
    };
    let client = testee::run_client(&base, &plan.agent, options);
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
    run.load(Some(&plan.agent));
}

/// Client role of an external implementation: kosoku `fuzzingserver` on a free port and, once
/// it answers, the client command, run once (contract: [`conformance::external`]). The command
/// is killed shortly before the time limit; when it is gone and kosoku still serves, the
/// runner asks for the reports itself.
async fn run_external_client(run: &mut RoleRun, exe: &Path, plan: &Plan, cmd: &ClientCommand) {
    let limit = plan.timeout;
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let margin = (limit / 10).min(Duration::from_secs(10));
    let Some((mut kosoku, base)) = start_fuzzing_server(run, exe, plan) else {
        return;
    };
    let agent = plan.agent.as_str();
    let count = tokio::select! {
        c = testee::case_count(&base, STARTUP_TIMEOUT) => c,
        status = kosoku.wait() => Err(format!("kosoku exited at its start ({status:?})")),
        _ = tokio::time::sleep(2 * STARTUP_TIMEOUT) => Err(format!("no case count from {base}")),
    };
    let count = match count {
        Ok(c) => c,
        Err(e) => {
            run.note(e);
            run.wall = start.elapsed();
            return;
        }
    };
    let cmd_log = run
        .dir
        .with_file_name(format!("{}-command.log", run.role.name()));
    println!(
        "client role: kosoku fuzzingserver on {base} ({count} cases), client command {:?}, \
         output in {}",
        cmd.render(&base, agent),
        cmd_log.display()
    );
    let mut client = match cmd.spawn(&base, agent, &cmd_log) {
        Ok(c) => c,
        Err(e) => {
            run.note(e);
            run.wall = start.elapsed();
            return;
        }
    };
    let mut kosoku_status = None;
    let command_status = tokio::select! {
        s = client.child.wait() => Some(s),
        s = kosoku.wait() => {
            // kosoku is done (the reports are asked for): the command should end right away.
            kosoku_status = Some(s);
            tokio::time::timeout(REPORT_GRACE, client.child.wait()).await.ok()
        }
        _ = tokio::time::sleep_until(deadline - margin) => None,
    };
    let killed = command_status.is_none();
    match command_status {
        Some(Ok(status)) if status.success() => {}
        Some(Ok(status)) => run.note(format!(
            "the client command exited with {status} (output: {})",
            cmd_log.display()
        )),
        Some(Err(e)) => run.note(format!("waiting for the client command: {e}")),
        None => run.note(format!(
            "the client command was still running {}: killed (output: {})",
            if kosoku_status.is_some() {
                "after kosoku had written its reports"
            } else {
                "at the time limit"
            },
            cmd_log.display()
        )),
    }
    client.kill_group();
    let _ = client.child.wait().await;
    // A command that ended by itself may have asked for the reports: give kosoku time to
    // write them. One that was killed did not.
    let grace = if !killed {
        REPORT_GRACE
    } else {
        Duration::ZERO
    };
    let kosoku_status = match kosoku_status {
        Some(s) => s.ok(),
        None => match tokio::time::timeout(grace, kosoku.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => {
                // Still serving: the command did not ask for the reports (or was killed).
                let ask = testee::update_reports(&base, agent);
                if let Ok(Ok(())) = tokio::time::timeout(REPORT_GRACE, ask).await {
                    run.notes.push(
                        "the client command did not call /updateReports: the runner did".to_owned(),
                    );
                }
                let left = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(REPORT_GRACE);
                kosoku::wait_or_kill(&mut kosoku, left).await
            }
        },
    };
    match kosoku_status {
        Some(status) => run.check_status(status),
        None => run.note("kosoku killed: it had not written its report".to_owned()),
    }
    run.wall = start.elapsed();
    run.load(Some(agent));
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

fn print_table(run: &RoleRun, plan: &Plan, selected: &[CaseId], walls: &BTreeMap<u32, Duration>) {
    let report = run.report.as_ref();
    let reported = report.map_or("-", |r| r.agent.as_str());
    let agent = match run.subject {
        Subject::Ours => format!("agent {reported:?}"),
        _ if report.is_none() || reported == plan.agent => format!("agent {:?}", plan.agent),
        _ => format!("agent {:?}, reported by kosoku as {reported:?}", plan.agent),
    };
    println!();
    println!(
        "== {} role ({agent}): {} of {} cases reported, wall {}",
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

/// What a run says about one role: errors, count, missing cases and, when the results are
/// `judged` against expectations, regressions and improvements.
fn print_comparison(run: &RoleRun, cmp: &Comparison, judged: bool) {
    let role = run.role;
    if let Some(e) = &run.error {
        println!("{role} role error: {e} (log: {})", run.log.display());
    }
    for n in &run.notes {
        println!("{role} role: {n}");
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
    let word = if judged { "REGRESSION" } else { "INCOMPLETE" };
    if run.report.is_none() {
        println!(
            "{role} {word}: no report, all {} selected case(s) missing",
            missing.len()
        );
    } else if !missing.is_empty() {
        println!(
            "{role} {word}: {} selected case(s) missing from the report: {}",
            missing.len(),
            missing.join(" ")
        );
    }
    if !judged {
        if run.report.is_some() {
            println!(
                "{role} HTML report: {}",
                run.dir.join("index.html").display()
            );
        }
        return;
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

/// A folder-name-safe UTC timestamp, `YYYYMMDDTHHMMSSZ`.
fn folder_stamp(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A new folder under `parent` named after the current UTC time.
fn fresh_dir(parent: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let stamp = folder_stamp(OffsetDateTime::now_utc());
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

/// Expectations read from a file (or to be written to it).
type ExpectationsFile = (Expected, PathBuf);

/// The expectations to compare with, their file, and the cases selected. Our testees always
/// have expectations (the committed file unless another is given); an external implementation
/// only with `--expect FILE`, which `--update-expected` may create.
fn expectations(
    plan: &Plan,
    crate_dir: &Path,
) -> Result<(Option<ExpectationsFile>, Vec<CaseId>), String> {
    let path = match (&plan.expected, plan.external) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(crate_dir.join("expected-results.json")),
        (None, true) => None,
    };
    let Some(path) = path else {
        return Ok((
            None,
            select::select(&plan.patterns, &expected::suite_cases())?,
        ));
    };
    let expected = match std::fs::read_to_string(&path) {
        Ok(text) => {
            expected::parse_expected(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && plan.external
                && plan.update_expected =>
        {
            println!(
                "{} does not exist yet: starting from all cases OK",
                path.display()
            );
            Expected::all_pass()
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    for w in expected.warnings() {
        println!("warning: {w}");
    }
    let selected = if plan.external {
        select::select(&plan.patterns, &expected::suite_cases())?
    } else {
        let selected = select::select(&plan.patterns, expected.cases.keys())?;
        if plan.patterns.is_empty() && selected.len() != TOTAL_CASES {
            return Err(format!(
                "expected-results.json must list all {TOTAL_CASES} cases, it lists {}",
                selected.len()
            ));
        }
        selected
    };
    Ok((Some((expected, path)), selected))
}

fn run(plan: Plan) -> Result<bool, String> {
    let started = Instant::now();
    let (crate_dir, target) = workspace_dirs();
    let (mut expected, selected) = expectations(&plan, &crate_dir)?;

    let exe = kosoku::ensure_venv(&target.join("conformance-venv"))?;
    let root = fresh_dir(&target.join("conformance-reports"))?;
    let subject = if plan.external {
        format!("external implementation {:?}", plan.agent)
    } else {
        format!(
            "testees {} permessage-deflate",
            if plan.deflate { "with" } else { "without" }
        )
    };
    println!(
        "kosoku {} from {}; {} case(s) selected; {subject}; {}; reports in {}",
        kosoku::KOSOKU_VERSION,
        exe.display(),
        selected.len(),
        match &expected {
            Some((_, p)) => format!("expectations {}", p.display()),
            None => "no expectations file".to_owned(),
        },
        root.display()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // Both roles run at once: the client role runs its cases one after another, so it leaves
    // room beside the server role's parallel cases.
    let mut runs: Vec<RoleRun> = plan
        .roles
        .iter()
        .map(|(role, subject)| RoleRun::new(*role, subject.clone(), &root))
        .collect();
    runtime.block_on(async {
        let mut it = runs.iter_mut();
        let (first, second) = (it.next(), it.next());
        tokio::join!(run_role(first, &exe, &plan), run_role(second, &exe, &plan));
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
        print_table(r, &plan, &selected, &walls);
        let deflate: Vec<String> = [12, 13]
            .iter()
            .filter_map(|g| walls.get(g).map(|d| format!("{g}.x {}", secs(*d))))
            .collect();
        if !deflate.is_empty() {
            println!("{} role wall time: {}", r.role, deflate.join(", "));
        }
        let judged = expected.as_ref().map(|(e, _)| e);
        let none = Expected::default();
        let cmp = expected::compare(
            judged.unwrap_or(&none),
            r.role,
            &selected,
            r.report.as_ref(),
        );
        print_comparison(r, &cmp, judged.is_some());
        ok &= if judged.is_some() {
            cmp.passed()
        } else {
            cmp.count_ok()
        };
        comparisons.push(cmp);
    }

    println!();
    for r in &runs {
        println!("timing: {} role {}", r.role, secs(r.wall));
    }
    println!("timing: total {}", secs(started.elapsed()));

    if plan.update_expected {
        let Some((expected, path)) = expected.as_mut() else {
            return Err("--update-expected needs an expectations file".to_owned());
        };
        let mut updatable = true;
        for (r, cmp) in runs.iter().zip(&comparisons) {
            match &r.report {
                Some(rep) if cmp.count_ok() => {
                    expected::update(expected, r.role, &selected, rep);
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
        std::fs::write(&*path, expected.render())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!("rewrote {}", path.display());
        for w in expected.warnings() {
            println!("warning: {w}");
        }
        return Ok(true);
    }

    if expected.is_none() {
        let summary: Vec<String> = comparisons
            .iter()
            .map(|c| {
                format!(
                    "{} {}/{} cases reported",
                    c.role, c.actual_count, c.expected_count
                )
            })
            .collect();
        println!(
            "conformance: {} ({}; no expectations file, results not judged)",
            if ok { "COMPLETE" } else { "INCOMPLETE" },
            summary.join("; ")
        );
        return Ok(ok);
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
    let plan = match Cli::parse().plan() {
        Ok(p) => p,
        Err(e) => Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, e)
            .exit(),
    };
    match run(plan) {
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

    #[test]
    fn folder_stamps() {
        use time::macros::datetime;
        assert_eq!(folder_stamp(OffsetDateTime::UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            folder_stamp(datetime!(2023-11-14 22:13:20 UTC)),
            "20231114T221320Z"
        );
        assert_eq!(
            folder_stamp(datetime!(2024-03-01 05:29:59 +05:30)),
            "20240229T235959Z"
        );
    }

    #[test]
    fn expectations_by_kind_of_run() {
        let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let plan = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("conformance").chain(args.iter().copied()))
                .unwrap()
                .plan()
                .unwrap()
        };
        // Ours: the committed file, every case.
        let (e, selected) = expectations(&plan(&[]), &crate_dir).unwrap();
        let (e, path) = e.unwrap();
        assert_eq!(path, crate_dir.join("expected-results.json"));
        assert_eq!((e.cases.len(), selected.len()), (TOTAL_CASES, TOTAL_CASES));
        // External: no file, the suite's cases.
        let ext = plan(&["--server", "ws://127.0.0.1:9", "--no-deflate"]);
        let (e, selected) = expectations(&ext, &crate_dir).unwrap();
        assert!(e.is_none());
        assert_eq!(selected.len(), 301);
        // External with a file that does not exist: an error, unless it is to be written.
        let missing =
            std::env::temp_dir().join(format!("conformance-none-{}.json", std::process::id()));
        let m = missing.to_str().unwrap();
        assert!(
            expectations(
                &plan(&["--server", "ws://127.0.0.1:9", "--expect", m]),
                &crate_dir
            )
            .is_err()
        );
        let upd = plan(&[
            "--client-cmd",
            "c",
            "--expect",
            m,
            "--update-expected",
            "--cases",
            "2.*",
        ]);
        let (e, selected) = expectations(&upd, &crate_dir).unwrap();
        assert_eq!(e.unwrap().0, Expected::all_pass());
        assert_eq!(selected.len(), 11);
        assert!(!missing.exists(), "nothing written before the run");
    }
}
