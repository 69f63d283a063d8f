//! Reading kosoku's (Autobahn-format) reports: `index.json` and the per-case JSON files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An Autobahn case id such as `6.4.1`, ordered numerically component by component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseId(Vec<u32>);

impl CaseId {
    /// The case group: the first component (`6` for `6.4.1`).
    pub fn group(&self) -> u32 {
        self.0[0]
    }
}

impl FromStr for CaseId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = s
            .split('.')
            .map(|p| p.parse::<u32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("invalid case id {s:?}"))?;
        if parts.is_empty() {
            return Err(format!("invalid case id {s:?}"));
        }
        Ok(CaseId(parts))
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The result of one case for one role, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// `behavior` OK and a clean close.
    Ok,
    /// `behavior` INFORMATIONAL (the case has no pass/fail verdict) and a clean close.
    Informational,
    /// `behavior` NON-STRICT: accepted, but not as the RFC would have it.
    NonStrict,
    /// `behavior` UNIMPLEMENTED: the feature under test is not supported.
    Unimplemented,
    /// `behavior` FAILED, or `behaviorClose` other than OK/INFORMATIONAL, or unknown values.
    Failed,
    /// The case was expected but is absent from the report.
    Missing,
}

impl Outcome {
    /// Every outcome that can appear in a report or in the expectations file.
    pub const RECORDED: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Informational,
        Outcome::NonStrict,
        Outcome::Unimplemented,
        Outcome::Failed,
    ];

    /// The label used by Autobahn reports and by `expected-results.json`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "OK",
            Outcome::Informational => "INFORMATIONAL",
            Outcome::NonStrict => "NON-STRICT",
            Outcome::Unimplemented => "UNIMPLEMENTED",
            Outcome::Failed => "FAILED",
            Outcome::Missing => "MISSING",
        }
    }

    /// Parses a label written by [`Outcome::label`] (`MISSING` excluded).
    pub fn from_label(s: &str) -> Option<Outcome> {
        Outcome::RECORDED.into_iter().find(|o| o.label() == s)
    }

    /// How bad the outcome is: OK and INFORMATIONAL are equally good (0), MISSING is worst.
    pub fn rank(self) -> u8 {
        match self {
            Outcome::Ok | Outcome::Informational => 0,
            Outcome::NonStrict => 1,
            Outcome::Unimplemented => 2,
            Outcome::Failed => 3,
            Outcome::Missing => 4,
        }
    }

    /// Whether the case passes: OK or INFORMATIONAL.
    pub fn passes(self) -> bool {
        self.rank() == 0
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Combines a case's `behavior` and `behaviorClose`: a close that is not OK or INFORMATIONAL
/// (e.g. UNCLEAN, WRONG CODE) fails the case whatever `behavior` says.
pub fn classify(behavior: &str, behavior_close: &str) -> Outcome {
    if !matches!(behavior_close, "OK" | "INFORMATIONAL") {
        return Outcome::Failed;
    }
    match behavior {
        "OK" => Outcome::Ok,
        "INFORMATIONAL" => Outcome::Informational,
        "NON-STRICT" => Outcome::NonStrict,
        "UNIMPLEMENTED" => Outcome::Unimplemented,
        _ => Outcome::Failed,
    }
}

/// One case's entry in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The raw `behavior` value.
    pub behavior: String,
    /// The raw `behaviorClose` value.
    pub behavior_close: String,
    /// The combined verdict, see [`classify`].
    pub outcome: Outcome,
    /// `duration` in milliseconds.
    pub duration_ms: u64,
    /// `remoteCloseCode`, when present.
    pub remote_close_code: Option<u64>,
    /// `reportfile`: the per-case JSON file name, relative to the report folder.
    pub report_file: Option<String>,
}

/// A parsed `index.json`, reduced to one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The top-level key: the agent name (client role) or the server's `Server` header or
    /// `host:port` (server role).
    pub agent: String,
    /// The cases reported for that agent.
    pub cases: BTreeMap<CaseId, CaseResult>,
}

/// Parses `index.json`. The agent is `agent` when given and present; otherwise the file must
/// hold exactly one agent.
pub fn parse_index(text: &str, agent: Option<&str>) -> Result<Report, String> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| format!("index.json is not JSON: {e}"))?;
    let agents = root
        .as_object()
        .ok_or("index.json: top level is not an object")?;
    let (name, cases) = match agent.and_then(|a| agents.get_key_value(a)) {
        Some(kv) => kv,
        None => {
            let mut it = agents.iter();
            match (it.next(), it.next()) {
                (Some(kv), None) => kv,
                (None, _) => return Err("index.json: no agent".into()),
                (Some(_), Some(_)) => {
                    let names: Vec<&String> = agents.keys().collect();
                    return Err(format!("index.json: several agents {names:?}"));
                }
            }
        }
    };
    let cases = cases
        .as_object()
        .ok_or_else(|| format!("index.json: agent {name:?} is not an object"))?;
    let mut out = BTreeMap::new();
    for (id, entry) in cases {
        let case_id: CaseId = id.parse()?;
        let field = |k: &str| entry.get(k).and_then(Value::as_str);
        let behavior = field("behavior").ok_or_else(|| format!("case {id}: no behavior"))?;
        let behavior_close =
            field("behaviorClose").ok_or_else(|| format!("case {id}: no behaviorClose"))?;
        out.insert(
            case_id,
            CaseResult {
                behavior: behavior.to_owned(),
                behavior_close: behavior_close.to_owned(),
                outcome: classify(behavior, behavior_close),
                duration_ms: entry.get("duration").and_then(Value::as_u64).unwrap_or(0),
                remote_close_code: entry.get("remoteCloseCode").and_then(Value::as_u64),
                report_file: field("reportfile").map(str::to_owned),
            },
        );
    }
    Ok(Report {
        agent: name.clone(),
        cases: out,
    })
}

/// Reads and parses `dir/index.json`.
pub fn load_index(dir: &Path, agent: Option<&str>) -> Result<Report, String> {
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_index(&text, agent)
}

/// The fields of a per-case report that explain a verdict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseDetail {
    /// `started`, an RFC 3339 timestamp.
    pub started: Option<OffsetDateTime>,
    /// `result`: why `behavior` is what it is.
    pub result: Option<String>,
    /// `resultClose`: why `behaviorClose` is what it is.
    pub result_close: Option<String>,
    /// `expected`, `received`, `expectedClose` and the close codes, as compact JSON.
    pub summary: String,
}

/// Parses a per-case report file's text.
pub fn parse_case(text: &str) -> Result<CaseDetail, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("case report: {e}"))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut summary = String::new();
    for k in [
        "expected",
        "received",
        "expectedClose",
        "localCloseCode",
        "remoteCloseCode",
        "remoteCloseReason",
        "wasClean",
        "wasNotCleanReason",
    ] {
        if let Some(x) = v.get(k) {
            let mut j = x.to_string();
            if j.len() > 400 {
                let mut cut = 400;
                while !j.is_char_boundary(cut) {
                    cut -= 1;
                }
                j.truncate(cut);
                j.push_str(" ...");
            }
            summary.push_str(&format!("      {k}: {j}\n"));
        }
    }
    Ok(CaseDetail {
        started: s("started").and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()),
        result: s("result"),
        result_close: s("resultClose"),
        summary,
    })
}

/// Reads the per-case report of `case` in `dir`, when the index names one.
pub fn load_case(dir: &Path, case: &CaseResult) -> Option<CaseDetail> {
    let file = case.report_file.as_ref()?;
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    parse_case(&text).ok()
}

/// Wall time of each case group: from the first case's start to the last case's end. Groups
/// whose per-case reports lack a start time are left out.
pub fn group_walls(dir: &Path, report: &Report) -> BTreeMap<u32, Duration> {
    let mut spans: BTreeMap<u32, (OffsetDateTime, OffsetDateTime)> = BTreeMap::new();
    let mut incomplete = std::collections::BTreeSet::new();
    for (id, case) in &report.cases {
        let Some(start) = load_case(dir, case).and_then(|d| d.started) else {
            incomplete.insert(id.group());
            continue;
        };
        let ms = i64::try_from(case.duration_ms).unwrap_or(i64::MAX);
        let end = start.saturating_add(time::Duration::milliseconds(ms));
        let span = spans.entry(id.group()).or_insert((start, end));
        span.0 = span.0.min(start);
        span.1 = span.1.max(end);
    }
    spans
        .into_iter()
        .filter(|(g, _)| !incomplete.contains(g))
        .map(|(g, (a, b))| (g, Duration::try_from(b - a).unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{
   "ws-tokio": {
      "1.1.1": {
         "behavior": "OK",
         "behaviorClose": "OK",
         "duration": 6,
         "remoteCloseCode": 1000,
         "reportfile": "ws_tokio_case_1_1_1.json"
      },
      "7.1.6": {
         "behavior": "INFORMATIONAL",
         "behaviorClose": "INFORMATIONAL",
         "duration": 2,
         "remoteCloseCode": 1000,
         "reportfile": "ws_tokio_case_7_1_6.json"
      },
      "9.3.1": {
         "behavior": "FAILED",
         "behaviorClose": "FAILED",
         "duration": 812,
         "remoteCloseCode": 1009,
         "reportfile": "ws_tokio_case_9_3_1.json"
      },
      "12.1.1": {
         "behavior": "UNIMPLEMENTED",
         "behaviorClose": "OK",
         "duration": 1,
         "remoteCloseCode": null,
         "reportfile": "ws_tokio_case_12_1_1.json"
      },
      "2.10": {
         "behavior": "OK",
         "behaviorClose": "UNCLEAN",
         "duration": 3,
         "remoteCloseCode": null,
         "reportfile": "ws_tokio_case_2_10.json"
      }
   }
}"#;

    #[test]
    fn case_ids_sort_numerically() {
        let mut ids: Vec<CaseId> = ["1.2.10", "1.2.9", "10.1.1", "2.1", "9.1.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        ids.sort();
        let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["1.2.9", "1.2.10", "2.1", "9.1.1", "10.1.1"]);
        assert_eq!(ids[4].group(), 10);
        assert!("1.x".parse::<CaseId>().is_err());
        assert!("".parse::<CaseId>().is_err());
    }

    #[test]
    fn classification_needs_both_fields() {
        assert_eq!(classify("OK", "OK"), Outcome::Ok);
        assert_eq!(classify("OK", "INFORMATIONAL"), Outcome::Ok);
        assert_eq!(
            classify("INFORMATIONAL", "INFORMATIONAL"),
            Outcome::Informational
        );
        assert_eq!(classify("NON-STRICT", "OK"), Outcome::NonStrict);
        assert_eq!(classify("UNIMPLEMENTED", "OK"), Outcome::Unimplemented);
        assert_eq!(classify("FAILED", "OK"), Outcome::Failed);
        // A dropped TCP connection: behavior OK, close UNCLEAN.
        assert_eq!(classify("OK", "UNCLEAN"), Outcome::Failed);
        assert_eq!(classify("OK", "WRONG CODE"), Outcome::Failed);
        assert_eq!(classify("OK", "FAILED BY CLIENT"), Outcome::Failed);
        assert_eq!(classify("NON-STRICT", "NO_CLOSE"), Outcome::Failed);
        assert_eq!(classify("UNIMPLEMENTED", "UNCLEAN"), Outcome::Failed);
        assert_eq!(classify("SOMETHING-NEW", "OK"), Outcome::Failed);
    }

    #[test]
    fn outcome_labels_round_trip() {
        for o in Outcome::RECORDED {
            assert_eq!(Outcome::from_label(o.label()), Some(o));
        }
        assert_eq!(Outcome::from_label("MISSING"), None);
        assert!(Outcome::Ok.passes() && Outcome::Informational.passes());
        assert!(!Outcome::NonStrict.passes());
        assert!(Outcome::NonStrict.rank() < Outcome::Unimplemented.rank());
        assert!(Outcome::Failed.rank() < Outcome::Missing.rank());
    }

    #[test]
    fn parses_index() {
        let r = parse_index(INDEX, None).unwrap();
        assert_eq!(r.agent, "ws-tokio");
        assert_eq!(r.cases.len(), 5);
        let ids: Vec<String> = r.cases.keys().map(ToString::to_string).collect();
        assert_eq!(ids, ["1.1.1", "2.10", "7.1.6", "9.3.1", "12.1.1"]);
        let c = &r.cases[&"9.3.1".parse().unwrap()];
        assert_eq!(c.outcome, Outcome::Failed);
        assert_eq!(c.duration_ms, 812);
        assert_eq!(c.remote_close_code, Some(1009));
        assert_eq!(c.report_file.as_deref(), Some("ws_tokio_case_9_3_1.json"));
        let c = &r.cases[&"12.1.1".parse().unwrap()];
        assert_eq!(c.outcome, Outcome::Unimplemented);
        assert_eq!(c.remote_close_code, None);
        assert_eq!(r.cases[&"2.10".parse().unwrap()].outcome, Outcome::Failed);
        assert_eq!(
            r.cases[&"7.1.6".parse().unwrap()].outcome,
            Outcome::Informational
        );
    }

    #[test]
    fn picks_the_agent() {
        let two = r#"{"a": {"1.1.1": {"behavior": "OK", "behaviorClose": "OK"}},
                      "b": {"1.1.1": {"behavior": "FAILED", "behaviorClose": "OK"},
                            "1.1.2": {"behavior": "OK", "behaviorClose": "OK"}}}"#;
        assert!(
            parse_index(two, None)
                .unwrap_err()
                .contains("several agents")
        );
        assert!(parse_index(two, Some("c")).is_err());
        let b = parse_index(two, Some("b")).unwrap();
        assert_eq!((b.agent.as_str(), b.cases.len()), ("b", 2));
        // A single agent is taken whatever its name (the server's `Server` header).
        let one = r#"{"127.0.0.1:9001": {"1.1.1": {"behavior": "OK", "behaviorClose": "OK"}}}"#;
        assert_eq!(parse_index(one, Some("x")).unwrap().agent, "127.0.0.1:9001");
    }

    #[test]
    fn rejects_malformed_index() {
        assert!(parse_index("", None).is_err());
        assert!(parse_index("[]", None).is_err());
        assert!(parse_index("{}", None).unwrap_err().contains("no agent"));
        assert!(parse_index(r#"{"a": {"x.1": {}}}"#, None).is_err());
        let no_close = r#"{"a": {"1.1.1": {"behavior": "OK"}}}"#;
        assert!(
            parse_index(no_close, None)
                .unwrap_err()
                .contains("behaviorClose")
        );
    }

    #[test]
    fn parses_case_report() {
        let text = r#"{
   "behavior": "FAILED",
   "behaviorClose": "FAILED",
   "expected": {},
   "expectedClose": {"closeCode": [1000], "closedByMe": true, "requireClean": true},
   "id": "9.3.1",
   "received": [],
   "remoteCloseCode": 1009,
   "result": "Did not receive message within 100 seconds.",
   "resultClose": "The connection was failed by the wrong endpoint",
   "started": "2026-11-22T02:17:57.251783+00:00",
   "wasClean": true
}"#;
        let d = parse_case(text).unwrap();
        assert_eq!(
            d.result.as_deref(),
            Some("Did not receive message within 100 seconds.")
        );
        assert_eq!(
            d.result_close.as_deref(),
            Some("The connection was failed by the wrong endpoint")
        );
        let t = d.started.unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_313_877);
        assert_eq!(t.microsecond(), 251_783);
        assert!(d.summary.contains("remoteCloseCode: 1009"));
        assert!(d.summary.contains("\"closeCode\":[1000]"));
    }

    #[test]
    fn case_start_times() {
        let started = |t: &str| {
            parse_case(&format!(r#"{{"started": "{t}"}}"#))
                .unwrap()
                .started
        };
        let utc = started("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(utc.unix_timestamp(), 1_709_251_199);
        let east = started("2024-03-01T05:29:59+05:30").unwrap();
        assert_eq!(east, utc, "same instant, other offset");
        for bad in [
            "2026-11-22T02:17:57",
            "2026-13-22T02:17:57Z",
            "2026-11-22",
            "x",
        ] {
            assert_eq!(started(bad), None, "{bad}");
        }
    }

    #[test]
    fn group_wall_times() {
        let dir = std::env::temp_dir().join(format!("conformance-walls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let case = |file: &str, started: &str| {
            std::fs::write(dir.join(file), format!(r#"{{"started": "{started}"}}"#)).unwrap();
        };
        case("a_1_1_1.json", "2026-11-22T02:17:57.250+00:00");
        case("a_1_1_2.json", "2026-11-22T02:17:58.000+00:00");
        case("a_2_1.json", "2026-11-22T02:18:00Z");
        let index = r#"{"a": {
            "1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 100, "reportfile": "a_1_1_1.json"},
            "1.1.2": {"behavior": "OK", "behaviorClose": "OK", "duration": 500, "reportfile": "a_1_1_2.json"},
            "2.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 7, "reportfile": "a_2_1.json"},
            "3.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 7, "reportfile": "missing.json"}}}"#;
        let walls = group_walls(&dir, &parse_index(index, None).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        // 1.x: from 57.250 to 58.000 + 0.5 s.
        assert_eq!(walls[&1], Duration::from_millis(1250));
        assert_eq!(walls[&2], Duration::from_millis(7));
        assert!(!walls.contains_key(&3), "no start time, no wall time");
    }
}
