//! `expected-results.json`: the accepted result of every case for each role, and the comparison
//! of a run against it.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::report::{CaseId, Outcome, Report};

/// Number of cases in the Autobahn TestSuite (and in kosoku 0.1.0).
pub const TOTAL_CASES: usize = 517;

/// Prefix of the placeholder reason written by [`update`]; [`Expected::warnings`] flags it.
pub const TODO_REASON: &str = "TODO:";

const ABOUT: &str = "Accepted kosoku (Autobahn TestSuite) result per case and role. OK and \
                     INFORMATIONAL pass; any other result needs a one-line reason. Rewrite with \
                     `cargo run --release -p conformance -- --update-expected`.";

/// Which side of the connection the testee plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The testee is the server; kosoku runs in `fuzzingclient` mode.
    Server,
    /// The testee is the client; kosoku runs in `fuzzingserver` mode.
    Client,
}

impl Role {
    /// Both roles, server first.
    pub const BOTH: [Role; 2] = [Role::Server, Role::Client];

    /// `server` or `client`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The accepted result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Accepted result with the testee as server.
    pub server: Outcome,
    /// Accepted result with the testee as client.
    pub client: Outcome,
    /// Why a result other than OK/INFORMATIONAL is accepted.
    pub reason: Option<String>,
}

impl Expectation {
    /// Both roles pass, no reason needed.
    pub const PASS: Expectation = Expectation {
        server: Outcome::Ok,
        client: Outcome::Ok,
        reason: None,
    };

    /// The accepted result for `role`.
    pub fn get(&self, role: Role) -> Outcome {
        match role {
            Role::Server => self.server,
            Role::Client => self.client,
        }
    }

    fn set(&mut self, role: Role, outcome: Outcome) {
        match role {
            Role::Server => self.server = outcome,
            Role::Client => self.client = outcome,
        }
    }

    /// Whether a role is expected not to pass.
    pub fn is_exception(&self) -> bool {
        !(self.server.passes() && self.client.passes())
    }
}

/// The whole expectations file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Every case id with its accepted results.
    pub cases: BTreeMap<CaseId, Expectation>,
}

/// The suite's case ids, in order: those of the committed `expected-results.json`, which lists
/// every case of kosoku 0.1.0 (a test checks that it holds [`TOTAL_CASES`] of them).
pub fn suite_cases() -> Vec<CaseId> {
    parse_expected(include_str!("../expected-results.json"))
        .map(|e| e.cases.into_keys().collect())
        .unwrap_or_default()
}

impl Expected {
    /// Expectations for a new implementation: every case of the suite OK in both roles.
    pub fn all_pass() -> Expected {
        Expected {
            cases: suite_cases()
                .into_iter()
                .map(|id| (id, Expectation::PASS))
                .collect(),
        }
    }
}

/// Parses and validates the expectations file: every result a known label, every exception
/// with a non-empty one-line reason.
pub fn parse_expected(text: &str) -> Result<Expected, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let cases = root
        .get("cases")
        .and_then(Value::as_object)
        .ok_or("no \"cases\" object")?;
    let mut out = BTreeMap::new();
    for (id, entry) in cases {
        let case_id: CaseId = id.parse()?;
        let outcome = |role: Role| -> Result<Outcome, String> {
            let label = entry
                .get(role.name())
                .and_then(Value::as_str)
                .ok_or_else(|| format!("case {id}: no {role} result"))?;
            Outcome::from_label(label)
                .ok_or_else(|| format!("case {id}: unknown {role} result {label:?}"))
        };
        let reason = match entry.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(format!("case {id}: reason is not a string")),
        };
        let e = Expectation {
            server: outcome(Role::Server)?,
            client: outcome(Role::Client)?,
            reason,
        };
        if e.is_exception() {
            match e.reason.as_deref() {
                Some(r) if !r.trim().is_empty() && !r.contains('\n') => {}
                _ => return Err(format!("case {id}: an exception needs a one-line reason")),
            }
        }
        out.insert(case_id, e);
    }
    Ok(Expected { cases: out })
}

impl Expected {
    /// Problems that do not invalidate the file: a case count other than [`TOTAL_CASES`],
    /// placeholder reasons.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.cases.len() != TOTAL_CASES {
            w.push(format!(
                "expected-results.json lists {} cases, the suite has {TOTAL_CASES}",
                self.cases.len()
            ));
        }
        let todo: Vec<String> = self
            .cases
            .iter()
            .filter(|(_, e)| {
                e.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with(TODO_REASON))
            })
            .map(|(id, _)| id.to_string())
            .collect();
        if !todo.is_empty() {
            w.push(format!(
                "{} case(s) still have a placeholder reason: {}",
                todo.len(),
                todo.join(" ")
            ));
        }
        w
    }

    /// The file's text: one line per case, in case order.
    pub fn render(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let mut out = format!("{{\n  \"about\": {},\n  \"cases\": {{\n", q(ABOUT));
        let n = self.cases.len();
        for (i, (id, e)) in self.cases.iter().enumerate() {
            out.push_str(&format!(
                "    {}: {{\"server\": {}, \"client\": {}",
                q(&id.to_string()),
                q(e.server.label()),
                q(e.client.label())
            ));
            if let Some(r) = &e.reason {
                out.push_str(&format!(", \"reason\": {}", q(r)));
            }
            out.push('}');
            if i + 1 < n {
                out.push(',');
            }
            out.push('\n');
        }
        out.push_str("  }\n}\n");
        out
    }
}

/// A case whose result differs in rank from the accepted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The case.
    pub id: CaseId,
    /// The accepted result.
    pub expected: Outcome,
    /// The result of this run.
    pub actual: Outcome,
}

/// A run of one role compared with the expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The role compared.
    pub role: Role,
    /// Number of cases selected for the run.
    pub expected_count: usize,
    /// Number of cases in the report.
    pub actual_count: usize,
    /// Cases worse than accepted (a missing case is one).
    pub regressions: Vec<Change>,
    /// Cases better than accepted.
    pub improvements: Vec<Change>,
    /// Reported cases that were not selected.
    pub unexpected: Vec<CaseId>,
}

impl Comparison {
    /// Whether the report holds exactly the selected cases.
    pub fn count_ok(&self) -> bool {
        self.actual_count == self.expected_count && self.unexpected.is_empty()
    }

    /// No regression and the right case count.
    pub fn passed(&self) -> bool {
        self.count_ok() && self.regressions.is_empty()
    }
}

/// Compares `report` (or no report at all) for `role` with the accepted results of `selected`.
pub fn compare(
    expected: &Expected,
    role: Role,
    selected: &[CaseId],
    report: Option<&Report>,
) -> Comparison {
    let mut regressions = Vec::new();
    let mut improvements = Vec::new();
    for id in selected {
        let want = expected.cases.get(id).map_or(Outcome::Ok, |e| e.get(role));
        let got = report
            .and_then(|r| r.cases.get(id))
            .map_or(Outcome::Missing, |c| c.outcome);
        let change = Change {
            id: id.clone(),
            expected: want,
            actual: got,
        };
        if got.rank() > want.rank() {
            regressions.push(change);
        } else if got.rank() < want.rank() {
            improvements.push(change);
        }
    }
    let wanted: std::collections::BTreeSet<&CaseId> = selected.iter().collect();
    let unexpected = report
        .map(|r| {
            r.cases
                .keys()
                .filter(|id| !wanted.contains(id))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Comparison {
        role,
        expected_count: selected.len(),
        actual_count: report.map_or(0, |r| r.cases.len()),
        regressions,
        improvements,
        unexpected,
    }
}

/// Records the results of `report` for `role` and the `selected` cases. A case that now fails
/// differently, or is a new exception, gets a placeholder reason; a case that now passes in both
/// roles loses its reason.
pub fn update(expected: &mut Expected, role: Role, selected: &[CaseId], report: &Report) {
    for id in selected {
        let Some(case) = report.cases.get(id) else {
            continue;
        };
        let e = expected
            .cases
            .entry(id.clone())
            .or_insert(Expectation::PASS);
        let before = e.get(role);
        e.set(role, case.outcome);
        if !e.is_exception() {
            e.reason = None;
        } else if (before != case.outcome && !case.outcome.passes()) || e.reason.is_none() {
            e.reason = Some(format!(
                "{TODO_REASON} explain why the {role} role is {}",
                case.outcome
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::parse_index;

    fn id(s: &str) -> CaseId {
        s.parse().unwrap()
    }

    const EXPECTED: &str = r#"{
  "about": "test",
  "cases": {
    "1.1.1": {"server": "OK", "client": "OK"},
    "1.1.2": {"server": "OK", "client": "OK"},
    "6.4.1": {"server": "NON-STRICT", "client": "OK", "reason": "fails fast on invalid UTF-8 only at message end"},
    "7.1.6": {"server": "INFORMATIONAL", "client": "INFORMATIONAL"},
    "12.1.1": {"server": "UNIMPLEMENTED", "client": "UNIMPLEMENTED", "reason": "permessage-deflate not implemented yet"},
    "12.1.2": {"server": "UNIMPLEMENTED", "client": "UNIMPLEMENTED", "reason": "permessage-deflate not implemented yet"}
  }
}"#;

    fn index(entries: &[(&str, &str, &str)]) -> Report {
        let body: Vec<String> = entries
            .iter()
            .map(|(id, b, c)| {
                format!(r#""{id}": {{"behavior": "{b}", "behaviorClose": "{c}", "duration": 1}}"#)
            })
            .collect();
        parse_index(&format!(r#"{{"agent": {{{}}}}}"#, body.join(",")), None).unwrap()
    }

    #[test]
    fn committed_file_is_complete_and_canonical() {
        let text = include_str!("../expected-results.json");
        let e = parse_expected(text).unwrap();
        assert_eq!(e.cases.len(), TOTAL_CASES);
        assert!(e.warnings().is_empty(), "{:?}", e.warnings());
        assert_eq!(e.render(), text);
        assert_eq!(suite_cases(), e.cases.keys().cloned().collect::<Vec<_>>());
        let fresh = Expected::all_pass();
        assert_eq!(fresh.cases.len(), TOTAL_CASES);
        assert!(fresh.warnings().is_empty());
        // Every case, permessage-deflate (12.x/13.x) included, is expected to pass in both roles.
        for (id, x) in &e.cases {
            for o in [x.server, x.client] {
                assert!(
                    matches!(o, Outcome::Ok | Outcome::Informational),
                    "{id:?}: {o:?}"
                );
            }
        }
        assert_eq!(
            e.cases
                .keys()
                .filter(|id| matches!(id.group(), 12 | 13))
                .count(),
            216
        );
    }

    #[test]
    fn parses_and_renders() {
        let e = parse_expected(EXPECTED).unwrap();
        assert_eq!(e.cases.len(), 6);
        assert_eq!(e.cases[&id("6.4.1")].server, Outcome::NonStrict);
        assert_eq!(e.cases[&id("6.4.1")].client, Outcome::Ok);
        assert_eq!(e.cases[&id("7.1.6")].reason, None);
        let again = parse_expected(&e.render()).unwrap();
        assert_eq!(again, e);
        let text = e.render();
        assert!(text.contains(r#"    "1.1.1": {"server": "OK", "client": "OK"},"#));
        assert!(text.contains(
            r#"    "12.1.2": {"server": "UNIMPLEMENTED", "client": "UNIMPLEMENTED", "reason": "permessage-deflate not implemented yet"}
"#
        ));
        let order: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"'))
            .filter_map(|l| l.split('"').next())
            .filter(|k| k.starts_with(char::is_numeric))
            .collect();
        assert_eq!(
            order,
            ["1.1.1", "1.1.2", "6.4.1", "7.1.6", "12.1.1", "12.1.2"]
        );
    }

    #[test]
    fn exceptions_need_a_reason() {
        let no_reason = r#"{"cases": {"9.1.1": {"server": "FAILED", "client": "OK"}}}"#;
        assert!(parse_expected(no_reason).unwrap_err().contains("reason"));
        let blank = r#"{"cases": {"9.1.1": {"server": "OK", "client": "FAILED", "reason": " "}}}"#;
        assert!(parse_expected(blank).is_err());
        let two_lines =
            r#"{"cases": {"9.1.1": {"server": "OK", "client": "FAILED", "reason": "a\nb"}}}"#;
        assert!(parse_expected(two_lines).is_err());
        let bad_label = r#"{"cases": {"9.1.1": {"server": "PASS", "client": "OK"}}}"#;
        assert!(parse_expected(bad_label).unwrap_err().contains("PASS"));
        let missing_role = r#"{"cases": {"9.1.1": {"server": "OK"}}}"#;
        assert!(parse_expected(missing_role).unwrap_err().contains("client"));
        assert!(parse_expected(r#"{"about": "x"}"#).is_err());
    }

    #[test]
    fn warns_on_count_and_placeholders() {
        let mut e = parse_expected(EXPECTED).unwrap();
        let w = e.warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("lists 6 cases"));
        e.cases.get_mut(&id("6.4.1")).unwrap().reason = Some(format!("{TODO_REASON} later"));
        assert!(e.warnings()[1].contains("6.4.1"));
    }

    #[test]
    fn all_as_expected() {
        let e = parse_expected(EXPECTED).unwrap();
        let selected: Vec<CaseId> = e.cases.keys().cloned().collect();
        let r = index(&[
            ("1.1.1", "OK", "OK"),
            ("1.1.2", "OK", "OK"),
            ("6.4.1", "NON-STRICT", "OK"),
            ("7.1.6", "INFORMATIONAL", "INFORMATIONAL"),
            ("12.1.1", "UNIMPLEMENTED", "OK"),
            ("12.1.2", "UNIMPLEMENTED", "OK"),
        ]);
        let c = compare(&e, Role::Server, &selected, Some(&r));
        assert!(c.passed(), "{c:?}");
        assert_eq!((c.expected_count, c.actual_count), (6, 6));
        assert!(c.improvements.is_empty());
    }

    #[test]
    fn detects_regressions_and_improvements() {
        let e = parse_expected(EXPECTED).unwrap();
        let selected: Vec<CaseId> = e.cases.keys().cloned().collect();
        let r = index(&[
            ("1.1.1", "NON-STRICT", "OK"),
            ("1.1.2", "OK", "UNCLEAN"),
            ("6.4.1", "OK", "OK"),
            ("7.1.6", "OK", "OK"),
            ("12.1.1", "OK", "OK"),
            ("12.1.2", "FAILED", "OK"),
        ]);
        let c = compare(&e, Role::Server, &selected, Some(&r));
        assert!(!c.passed());
        assert!(c.count_ok());
        let regressed: Vec<(String, Outcome)> = c
            .regressions
            .iter()
            .map(|ch| (ch.id.to_string(), ch.actual))
            .collect();
        assert_eq!(
            regressed,
            [
                ("1.1.1".to_owned(), Outcome::NonStrict),
                ("1.1.2".to_owned(), Outcome::Failed),
                ("12.1.2".to_owned(), Outcome::Failed),
            ]
        );
        let improved: Vec<String> = c.improvements.iter().map(|ch| ch.id.to_string()).collect();
        assert_eq!(improved, ["6.4.1", "12.1.1"]);
    }

    #[test]
    fn unimplemented_where_ok_expected_is_a_regression() {
        let e = parse_expected(EXPECTED).unwrap();
        let selected = vec![id("1.1.1")];
        let r = index(&[("1.1.1", "UNIMPLEMENTED", "OK")]);
        let c = compare(&e, Role::Client, &selected, Some(&r));
        assert_eq!(c.regressions.len(), 1);
        assert_eq!(c.regressions[0].expected, Outcome::Ok);
        assert_eq!(c.regressions[0].actual, Outcome::Unimplemented);
    }

    #[test]
    fn count_check() {
        let e = parse_expected(EXPECTED).unwrap();
        let selected: Vec<CaseId> = e.cases.keys().cloned().collect();
        // A partial run: kosoku accepts it, the runner must not.
        let partial = index(&[("1.1.1", "OK", "OK"), ("1.1.2", "OK", "OK")]);
        let c = compare(&e, Role::Client, &selected, Some(&partial));
        assert!(!c.count_ok());
        assert_eq!((c.expected_count, c.actual_count), (6, 2));
        assert_eq!(c.regressions.len(), 4);
        assert!(c.regressions.iter().all(|ch| ch.actual == Outcome::Missing));
        // No report at all.
        let c = compare(&e, Role::Client, &selected, None);
        assert_eq!((c.actual_count, c.regressions.len()), (0, 6));
        // A subset run counts against the subset.
        let subset = vec![id("1.1.1"), id("1.1.2")];
        let c = compare(&e, Role::Client, &subset, Some(&partial));
        assert!(c.passed());
        // A case that was not selected makes the count wrong.
        let extra = index(&[("1.1.1", "OK", "OK"), ("1.1.3", "OK", "OK")]);
        let c = compare(&e, Role::Client, &subset, Some(&extra));
        assert_eq!(c.actual_count, c.expected_count);
        assert_eq!(c.unexpected, [id("1.1.3")]);
        assert!(!c.count_ok());
    }

    #[test]
    fn updates_from_a_run() {
        let mut e = parse_expected(EXPECTED).unwrap();
        let selected: Vec<CaseId> = e.cases.keys().cloned().collect();
        let r = index(&[
            ("1.1.1", "FAILED", "OK"),
            ("1.1.2", "OK", "OK"),
            ("6.4.1", "OK", "OK"),
            ("7.1.6", "INFORMATIONAL", "INFORMATIONAL"),
            ("12.1.1", "OK", "OK"),
            ("12.1.2", "UNIMPLEMENTED", "OK"),
        ]);
        update(&mut e, Role::Server, &selected, &r);
        let c = &e.cases[&id("1.1.1")];
        assert_eq!(c.server, Outcome::Failed);
        assert!(c.reason.as_deref().unwrap().starts_with(TODO_REASON));
        assert_eq!(e.cases[&id("6.4.1")], Expectation::PASS);
        let c = &e.cases[&id("12.1.1")];
        assert_eq!((c.server, c.client), (Outcome::Ok, Outcome::Unimplemented));
        assert_eq!(
            c.reason.as_deref(),
            Some("permessage-deflate not implemented yet")
        );
        let c = &e.cases[&id("12.1.2")];
        assert_eq!(
            c.reason.as_deref(),
            Some("permessage-deflate not implemented yet")
        );
        assert!(parse_expected(&e.render()).is_ok());
    }
}
