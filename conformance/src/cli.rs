//! The runner's command line ([`clap`] derive) and the plan it stands for.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser, ValueEnum};

use crate::expected::Role;
use crate::external::{self, ClientCommand, ServerUrl};
use crate::select;

/// Agent name our client testee reports under.
pub const OUR_AGENT: &str = "ws-tokio";
/// Agent name of an external implementation when `--agent` is not given.
pub const EXTERNAL_AGENT: &str = "external";

/// Case groups of the quick run: all but 12.x/13.x (permessage-deflate; there is no 8.x).
pub const QUICK_GROUPS: [u32; 9] = [1, 2, 3, 4, 5, 6, 7, 9, 10];

/// Which of our testees to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum RoleChoice {
    /// Our echo server only.
    Server,
    /// Our echo client only.
    Client,
    /// Both, side by side.
    Both,
}

/// The command line, as parsed.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "conformance",
    about = "Runs the Autobahn TestSuite (kosoku) against ws-tokio's testees, or against any \
             WebSocket server or client, and checks the results against an expectations file.",
    after_help = "\
Without --server/--client-cmd, both of our testees run and are compared with \
conformance/expected-results.json. With --server, kosoku's fuzzing client runs against that \
already-running server; with --client-cmd, the command is run once against kosoku's fuzzing \
server (contract: conformance/README.md). Either one or both pick the roles; no expectations \
file is read for them unless --expect FILE is given.

Examples:
  cargo run --release -p conformance
  cargo run --release -p conformance -- --no-deflate --role server
  cargo run --release -p conformance -- --server ws://127.0.0.1:9001 --agent my-server --no-deflate
  cargo run --release -p conformance -- --client-cmd 'my-client {url} {agent}' --agent my-client",
    group(ArgGroup::new("external").args(["server", "client_cmd"]).multiple(true))
)]
#[non_exhaustive]
pub struct Cli {
    /// Run only matching case ids (`*` wildcard; repeatable, comma-separated).
    #[arg(long = "cases", value_name = "GLOB")]
    pub cases: Vec<String>,

    /// Which of our testees to run [default: both].
    #[arg(long, value_enum, value_name = "ROLE", conflicts_with = "external")]
    pub role: Option<RoleChoice>,

    /// Expectations file [default: conformance/expected-results.json for our testees, none
    /// for an external implementation].
    #[arg(long, visible_alias = "expect", value_name = "FILE")]
    pub expected: Option<PathBuf>,

    /// Rewrite the expectations file from this run's results (for an external implementation
    /// --expect FILE is needed; a FILE that does not exist yet is created).
    #[arg(long)]
    pub update_expected: bool,

    /// Testees with permessage-deflate (the default).
    #[arg(long, overrides_with = "no_deflate", hide = true)]
    pub deflate: bool,

    /// A quick run of 1.x-10.x only (12.x/13.x are permessage-deflate); our testees then
    /// run without permessage-deflate. By default all 517 cases run and our testees
    /// negotiate it with ws-tokio's settings.
    #[arg(long, overrides_with = "deflate")]
    pub no_deflate: bool,

    /// Our server testee echoes through the halves of `WebSocket::split` (its read half and
    /// a write half in another task).
    #[arg(long, conflicts_with = "external")]
    pub split: bool,

    /// Our server testee behind axum (`ws_tokio::axum`); needs `--features axum`.
    #[arg(long, conflicts_with_all = ["external", "split"])]
    pub axum: bool,

    /// Time limit for each role's kosoku run [default: 1800, 100 with --no-deflate].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,

    /// Test this already-running external server (kosoku's fuzzing client connects to it)
    /// instead of ours.
    #[arg(long, value_name = "ws://HOST:PORT")]
    pub server: Option<ServerUrl>,

    /// Test this external client program instead of ours: a `sh -c` command line, run once,
    /// `{url}` and `{agent}` replaced by the fuzzing server's URL and the agent name.
    #[arg(long, value_name = "CMD")]
    pub client_cmd: Option<ClientCommand>,

    /// Name of the external implementation, in the table and the reports [default:
    /// external].
    #[arg(long, value_name = "NAME", value_parser = external::check_agent, requires = "external")]
    pub agent: Option<String>,
}

/// What runs in one role.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// Our testee for that role.
    Ours,
    /// An external server, already running.
    Server(ServerUrl),
    /// An external client program.
    Client(ClientCommand),
}

/// A run, resolved from the command line.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// Case patterns for kosoku's `-i` (none: the whole suite).
    pub patterns: Vec<String>,
    /// The roles to run, server first, and what is tested in each.
    pub roles: Vec<(Role, Subject)>,
    /// Agent name of the implementation under test.
    pub agent: String,
    /// Whether an external implementation is tested (then every role is external).
    pub external: bool,
    /// The expectations file given, if any.
    pub expected: Option<PathBuf>,
    /// Rewrite the expectations from this run.
    pub update_expected: bool,
    /// Our testees negotiate permessage-deflate.
    pub deflate: bool,
    /// Our server testee echoes through split halves.
    pub split: bool,
    /// Our server testee runs behind axum.
    pub axum: bool,
    /// Time limit per role.
    pub timeout: Duration,
}

impl Cli {
    /// Checks what clap cannot and resolves the defaults.
    pub fn plan(self) -> Result<Plan, String> {
        let external = self.server.is_some() || self.client_cmd.is_some();
        if external && self.update_expected && self.expected.is_none() {
            return Err("--update-expected with --server/--client-cmd needs --expect FILE".into());
        }
        let deflate = !self.no_deflate;
        let mut patterns = select::split_patterns(&self.cases);
        if !deflate && patterns.is_empty() {
            patterns = QUICK_GROUPS.iter().map(|g| format!("{g}.*")).collect();
        }
        for p in &patterns {
            select::matcher(p)?;
        }
        let roles = if external {
            let mut r = Vec::new();
            if let Some(url) = self.server {
                r.push((Role::Server, Subject::Server(url)));
            }
            if let Some(cmd) = self.client_cmd {
                r.push((Role::Client, Subject::Client(cmd)));
            }
            r
        } else {
            let roles = match self.role.unwrap_or(RoleChoice::Both) {
                RoleChoice::Server => vec![Role::Server],
                RoleChoice::Client => vec![Role::Client],
                RoleChoice::Both => Role::BOTH.to_vec(),
            };
            roles.into_iter().map(|r| (r, Subject::Ours)).collect()
        };
        let agent = match self.agent {
            Some(a) => a,
            None if external => EXTERNAL_AGENT.to_owned(),
            None => OUR_AGENT.to_owned(),
        };
        if self.axum && !cfg!(feature = "axum") {
            return Err("--axum needs the axum feature (`--features axum`)".into());
        }
        let default_timeout = if deflate { 1800 } else { 100 };
        Ok(Plan {
            patterns,
            roles,
            agent,
            external,
            expected: self.expected,
            update_expected: self.update_expected,
            deflate,
            split: self.split,
            axum: self.axum,
            timeout: Duration::from_secs(self.timeout.unwrap_or(default_timeout)),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;
    use crate::expected;

    fn parse(args: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(std::iter::once("conformance").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.plan()
    }

    fn roles(p: &Plan) -> Vec<Role> {
        p.roles.iter().map(|(r, _)| *r).collect()
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_full_run_of_ours() {
        let a = parse(&[]).unwrap();
        assert_eq!(roles(&a), Role::BOTH);
        assert!(a.roles.iter().all(|(_, s)| *s == Subject::Ours));
        assert!(a.patterns.is_empty() && !a.update_expected && a.deflate && !a.external);
        assert_eq!(a.timeout, Duration::from_secs(1800));
        assert!(a.expected.is_none());
        assert_eq!(a.agent, OUR_AGENT);
    }

    #[test]
    fn quick_run_leaves_out_deflate_cases() {
        let a = parse(&["--no-deflate", "--expected", "/tmp/e.json"]).unwrap();
        assert!(!a.deflate);
        assert_eq!(a.patterns.len(), 9, "12.x/13.x left out");
        // Every pattern of the quick run selects cases of the suite (kosoku refuses one that
        // selects nothing).
        let selected = select::select(&a.patterns, &expected::suite_cases()).unwrap();
        assert!(selected.iter().all(|id| !matches!(id.group(), 12 | 13)));
        assert_eq!(selected.len(), 301);
        assert_eq!(a.timeout, Duration::from_secs(100));
        assert_eq!(a.expected, Some(PathBuf::from("/tmp/e.json")));
        // The last of --deflate/--no-deflate wins.
        assert!(parse(&["--no-deflate", "--deflate"]).unwrap().deflate);
        assert!(!parse(&["--deflate", "--no-deflate"]).unwrap().deflate);
    }

    #[test]
    fn parses_our_flags() {
        let a = parse(&[
            "--cases",
            "1.*,2.*",
            "--cases=9.1.1",
            "--role",
            "client",
            "--update-expected",
            "--timeout=30",
        ])
        .unwrap();
        assert_eq!(a.patterns, ["1.*", "2.*", "9.1.1"]);
        assert_eq!(roles(&a), [Role::Client]);
        assert!(a.update_expected);
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert_eq!(roles(&parse(&["--role=server"]).unwrap()), [Role::Server]);
        assert_eq!(roles(&parse(&["--role", "both"]).unwrap()), Role::BOTH);
        assert_eq!(
            parse(&["--expect", "x.json"]).unwrap().expected,
            Some(PathBuf::from("x.json"))
        );
    }

    #[test]
    fn refuses_bad_flags() {
        for bad in [
            &["--role", "proxy"][..],
            &["--timeout", "0"],
            &["--timeout", "-1"],
            &["--timeout", "x"],
            &["--cases"],
            &["--cases", "1.?"],
            &["--bogus"],
            &["stray"],
            &["--agent", "x"],
            &["--server", "ws://127.0.0.1:9001", "--role", "client"],
            &["--server", "127.0.0.1:9001"],
            &["--server", "ws://127.0.0.1:9001", "--agent", "a b"],
            &["--client-cmd", ""],
            &["--server", "ws://127.0.0.1:9001", "--update-expected"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let help = Cli::try_parse_from(["conformance", "--help"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        let text = help.to_string();
        for flag in [
            "--server",
            "--client-cmd",
            "--agent",
            "--expect",
            "--no-deflate",
        ] {
            assert!(text.contains(flag), "{flag} missing from the help");
        }
    }

    #[test]
    fn external_implementations() {
        let a = parse(&[
            "--server",
            "ws://127.0.0.1:9001",
            "--agent",
            "tt",
            "--no-deflate",
        ])
        .unwrap();
        assert!(a.external);
        assert_eq!(
            a.roles,
            [(
                Role::Server,
                Subject::Server("ws://127.0.0.1:9001".parse().unwrap())
            )]
        );
        assert_eq!(a.agent, "tt");
        assert_eq!(a.patterns.len(), 9);
        assert!(a.expected.is_none());

        let a = parse(&["--client-cmd", "c {url} {agent}", "--cases", "1.*"]).unwrap();
        assert_eq!(
            a.roles,
            [(
                Role::Client,
                Subject::Client("c {url} {agent}".parse().unwrap())
            )]
        );
        assert_eq!(a.agent, EXTERNAL_AGENT);
        assert_eq!(a.patterns, ["1.*"]);
        assert!(a.deflate);

        let a = parse(&[
            "--client-cmd",
            "c {url}",
            "--server",
            "ws://[::1]:9",
            "--expect",
            "mine.json",
            "--update-expected",
        ])
        .unwrap();
        assert_eq!(roles(&a), Role::BOTH, "server first");
        assert!(a.update_expected);
        assert_eq!(a.expected, Some(PathBuf::from("mine.json")));
    }
}
