//! Case selection with kosoku's `-i` syntax: a case id, or a glob where `*` matches any run of
//! characters, dots included. Matching is [`globset`]'s; patterns are limited to digits, dots
//! and `*`, the only characters kosoku gives a meaning to (it takes `?` or `[` literally, so a
//! pattern holding one selects nothing there).

use globset::{GlobBuilder, GlobMatcher};

use crate::report::CaseId;

/// Splits `--cases` values on commas, dropping blanks around and between pieces.
pub fn split_patterns<S: AsRef<str>>(values: &[S]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.as_ref().split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Compiles one pattern; `*` crosses dots (there is no separator in a case id).
pub fn matcher(pattern: &str) -> Result<GlobMatcher, String> {
    if pattern.is_empty()
        || !pattern
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*.".contains(&b))
    {
        return Err(format!(
            "--cases {pattern:?}: use case ids and `*` (digits, dots and `*` only)"
        ));
    }
    // A run of stars means what one star means; globset would read `**` as a path wildcard.
    let mut glob = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if !(c == '*' && glob.ends_with('*')) {
            glob.push(c);
        }
    }
    GlobBuilder::new(&glob)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("--cases {pattern:?}: {e}"))
}

/// Whether `id` matches `pattern` (false for a pattern [`matcher`] refuses).
pub fn matches(pattern: &str, id: &str) -> bool {
    matcher(pattern).is_ok_and(|m| m.is_match(id))
}

/// The ids among `ids` selected by `patterns` (all of them when `patterns` is empty), in the
/// order given. Fails on a pattern that selects nothing, as kosoku would.
pub fn select<'a, I>(patterns: &[String], ids: I) -> Result<Vec<CaseId>, String>
where
    I: IntoIterator<Item = &'a CaseId>,
{
    let ids: Vec<(&CaseId, String)> = ids.into_iter().map(|id| (id, id.to_string())).collect();
    if patterns.is_empty() {
        return Ok(ids.into_iter().map(|(id, _)| id.clone()).collect());
    }
    let matchers = patterns
        .iter()
        .map(|p| matcher(p))
        .collect::<Result<Vec<_>, _>>()?;
    for (p, m) in patterns.iter().zip(&matchers) {
        if !ids.iter().any(|(_, s)| m.is_match(s)) {
            return Err(format!("--cases {p:?} selects no known case"));
        }
    }
    Ok(ids
        .into_iter()
        .filter(|(_, s)| matchers.iter().any(|m| m.is_match(s)))
        .map(|(id, _)| id.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_globs() {
        assert!(matches("1.1.1", "1.1.1"));
        assert!(!matches("1.1", "1.1.1"));
        assert!(matches("9.*", "9.1.1"));
        assert!(!matches("9.*", "19.1.1"));
        assert!(matches("12*", "12.1.1"));
        assert!(matches("1.*.1", "1.2.1"));
        assert!(matches("1.*.1", "1.1.1"));
        assert!(!matches("1.*.1", "1.1.2"));
        assert!(matches("*", "13.7.18"));
        assert!(matches("*.18", "13.7.18"));
        assert!(!matches("*.18", "13.7.8"));
        assert!(matches("1*1*1", "1.1.1"));
        assert!(!matches("1*1*1", "1.1"));
        assert!(matches("1**1", "11"));
        assert!(matches("1.**", "1.2.3"));
        assert!(!matches("1*1.1", "1.1"));
    }

    #[test]
    fn only_kosoku_syntax() {
        // kosoku answers `no such case` for these; globset would give them a meaning.
        for p in [
            "1.1.?",
            "1.1.[12]",
            "1.1.{1,2}",
            "1.1.\\1",
            "a",
            " 1.1.1",
            "",
        ] {
            assert!(matcher(p).is_err(), "{p:?}");
            assert!(!matches(p, "1.1.1"), "{p:?}");
        }
    }

    #[test]
    fn selects_subsets() {
        let ids: Vec<CaseId> = ["1.1.1", "1.2.1", "2.1", "12.1.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let pats = split_patterns(&["1.*, 12.*", ""]);
        assert_eq!(pats, ["1.*", "12.*"]);
        let got = select(&pats, &ids).unwrap();
        let shown: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["1.1.1", "1.2.1", "12.1.1"]);
        assert_eq!(select(&[], &ids).unwrap().len(), 4);
        assert!(
            select(&["3.*".to_owned()], &ids)
                .unwrap_err()
                .contains("selects no known case")
        );
        assert!(select(&["1.?.1".to_owned()], &ids).is_err());
    }
}
