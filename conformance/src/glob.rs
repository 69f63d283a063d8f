//! Case selection with kosoku's `-i` syntax: a case id, or a pattern where `*` matches any run
//! of characters (dots included). No other character is special.

use crate::report::CaseId;

/// Whether `text` matches `pattern`, where `*` matches any (possibly empty) substring.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Splits `--cases` values on commas, dropping empty pieces.
pub fn split_patterns<S: AsRef<str>>(values: &[S]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.as_ref().split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The ids among `ids` selected by `patterns` (all of them when `patterns` is empty). Fails on a
/// pattern that selects nothing, as kosoku would.
pub fn select<'a, I>(patterns: &[String], ids: I) -> Result<Vec<CaseId>, String>
where
    I: IntoIterator<Item = &'a CaseId>,
{
    let ids: Vec<&CaseId> = ids.into_iter().collect();
    if patterns.is_empty() {
        return Ok(ids.into_iter().cloned().collect());
    }
    for p in patterns {
        if !ids.iter().any(|id| matches(p, &id.to_string())) {
            return Err(format!("--cases {p:?} selects no known case"));
        }
    }
    Ok(ids
        .into_iter()
        .filter(|id| {
            let s = id.to_string();
            patterns.iter().any(|p| matches(p, &s))
        })
        .cloned()
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
        assert!(!matches("1.1.?", "1.1.1"));
        assert!(matches("a**b", "ab"));
        assert!(!matches("ab*ba", "aba"));
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
        assert!(select(&["3.*".to_owned()], &ids).is_err());
    }
}
