//! Versions: `semver_match` and [`constraint_matches`], which module
//! sources (`plinth-project`'s `sources`) also use to pick git tags, so that
//! a constraint means the same in both places.
//!
//! Invariants: pure, no host access. Constraints take Terraform's operators
//! (`=`, `!=`, `>`, `>=`, `<`, `<=`, `~>`; a bare version means exactly that
//! version) and the semver crate's (`^`, `~`, wildcards). `semver_match` is
//! Plinth's own; Terraform has no such function.

use super::args::{quote, Args};
use super::FnError;
use crate::value::Value;

fn strip_v(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix(['v', 'V']).unwrap_or(s)
}

/// Splits "1.2.3-pre+build" into ("1.2.3", "-pre+build").
fn split_core(s: &str) -> (&str, &str) {
    let at = s.find(['-', '+']).unwrap_or(s.len());
    s.split_at_checked(at).unwrap_or((s, ""))
}

/// Numeric components of a version core such as "1.4"; None if malformed.
fn core_numbers(core: &str) -> Option<Vec<u64>> {
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    parts.iter().map(|p| if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) { p.parse::<u64>().ok() } else { None }).collect()
}

/// Parses a version, accepting a leading "v" and a missing minor or patch.
fn parse_version(text: &str) -> Result<semver::Version, String> {
    let t = strip_v(text);
    if let Ok(v) = semver::Version::parse(t) {
        return Ok(v);
    }
    let (core, rest) = split_core(t);
    if let Some(nums) = core_numbers(core) {
        let mut padded = core.to_string();
        for _ in nums.len()..3 {
            padded.push_str(".0");
        }
        padded.push_str(rest);
        if let Ok(v) = semver::Version::parse(&padded) {
            return Ok(v);
        }
    }
    match semver::Version::parse(t) {
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{} is not a valid semantic version: {e}", quote(text))),
    }
}

/// Translates a Terraform pessimistic constraint ("~> 1.4") into semver
/// comparators. Like Terraform, only the last given component may grow:
/// "~> 1.4" is ">=1.4.0, <2.0.0", "~> 1.4.2" is ">=1.4.2, <1.5.0" and "~> 1"
/// is ">=1.0.0".
fn pessimistic(text: &str) -> Result<Vec<String>, String> {
    let t = strip_v(text);
    let (core, rest) = split_core(t);
    let pre = rest.split('+').next().unwrap_or("");
    let invalid = || format!("{} is not a valid version for the \"~>\" operator", quote(text.trim()));
    let nums = core_numbers(core).ok_or_else(invalid)?;
    let major = nums.first().copied().ok_or_else(invalid)?;
    let minor = nums.get(1).copied().unwrap_or(0);
    let patch = nums.get(2).copied().unwrap_or(0);
    let mut out = vec![format!(">={major}.{minor}.{patch}{pre}")];
    match nums.len() {
        2 => out.push(format!("<{}.0.0", major.checked_add(1).ok_or_else(invalid)?)),
        3 => out.push(format!("<{major}.{}.0", minor.checked_add(1).ok_or_else(invalid)?)),
        _ => {}
    }
    Ok(out)
}

/// Evaluates a comma-separated constraint. Parts may use Terraform's
/// operators (`=`, `!=`, `>`, `>=`, `<`, `<=`, `~>`; a bare version means
/// exactly that version) or the semver crate's (`^`, `~`, wildcards).
/// Pre-releases match only a constraint that names a pre-release of the same
/// `major.minor.patch` (the semver crate's rule). Shared with `sources`,
/// which picks git tags with it, so that `semver_match` and module versions
/// agree on what a constraint means.
pub fn constraint_matches(version: &semver::Version, constraint: &str) -> Result<bool, String> {
    let mut comparators = Vec::new();
    let mut excluded = Vec::new();
    if constraint.trim().is_empty() {
        return Err("the version constraint is empty; expected something like \">= 1.2, < 2\" or \"~> 1.4\"".to_string());
    }
    for raw in constraint.split(',') {
        let part = raw.trim();
        if part.is_empty() {
            return Err(format!("{} has an empty part; separate constraints with single commas", quote(constraint)));
        }
        if let Some(rest) = part.strip_prefix("~>") {
            comparators.extend(pessimistic(rest)?);
        } else if let Some(rest) = part.strip_prefix("!=") {
            excluded.push(parse_version(rest)?);
        } else {
            let op_len = part.find(|c: char| !matches!(c, '=' | '<' | '>' | '^' | '~')).unwrap_or(part.len());
            let (op, rest) = part.split_at_checked(op_len).unwrap_or(("", part));
            let rest = strip_v(rest);
            let wildcard = rest.split('.').any(|c| matches!(c, "*" | "x" | "X"));
            if (op.is_empty() || op == "=") && !wildcard {
                // Terraform: a bare or "=" version means exactly that
                // version ("1.2" is 1.2.0).
                comparators.push(format!("={}", parse_version(rest)?));
            } else {
                comparators.push(format!("{op}{rest}"));
            }
        }
    }
    let req_text = if comparators.is_empty() { "*".to_string() } else { comparators.join(", ") };
    let req = semver::VersionReq::parse(&req_text).map_err(|e| format!("{} is not a valid version constraint: {e}", quote(constraint)))?;
    Ok(req.matches(version) && excluded.iter().all(|x| x != version))
}

pub(super) fn f_semver_match(a: &Args) -> Result<Value, FnError> {
    let version_text = a.string(0)?;
    let constraint = a.string(1)?;
    let version = parse_version(&version_text).map_err(|m| FnError::at(0, m))?;
    constraint_matches(&version, &constraint).map(Value::Bool).map_err(|m| FnError::at(1, m))
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;
    use crate::value::Value;

    fn matches(version: &str, constraint: &str) -> bool {
        match ok("semver_match", vec![s(version), s(constraint)]) {
            Value::Bool(b) => b,
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn semver_pessimistic() {
        assert!(matches("1.4.0", "~> 1.4"));
        assert!(matches("1.9.3", "~> 1.4"));
        assert!(!matches("2.0.0", "~> 1.4"));
        assert!(!matches("1.3.9", "~> 1.4"));
        assert!(matches("1.4.2", "~> 1.4.2"));
        assert!(matches("1.4.9", "~> 1.4.2"));
        assert!(!matches("1.5.0", "~> 1.4.2"));
        assert!(!matches("1.4.1", "~> 1.4.2"));
        assert!(matches("7.0.0", "~> 1"));
        assert!(!matches("0.9.0", "~> 1"));
        assert!(matches("v1.4.5", "~>1.4"));
        assert!(matches("1.4.0-beta.2", "~> 1.4.0-beta.1"));
        assert!(!matches("1.5.0-beta", "~> 1.4"));
    }

    #[test]
    fn semver_other_operators() {
        assert!(matches("1.5.0", ">=1.2, <2"));
        assert!(!matches("2.0.0", ">=1.2, <2"));
        assert!(matches("1.9.0", "^1.4"));
        assert!(!matches("2.0.0", "^1.4"));
        assert!(matches("1.2.3", "1.2.3"));
        assert!(!matches("1.2.4", "1.2.3"));
        assert!(matches("1.2.3", "= 1.2.3"));
        assert!(matches("1.2.3", ">= 1.0.0, != 1.2.4"));
        assert!(!matches("1.2.4", ">= 1.0.0, != 1.2.4"));
        assert!(!matches("1.2.4", "!=1.2.4"));
        assert!(matches("1.2.9", "1.2.*"));
        assert!(matches("1.2.9", "~1.2"));
        assert!(matches("v1.2", ">= 1.2.0"));
        assert!(matches("1", "= 1.0.0"));
        assert!(matches("1.2.0", "1.2"));
        assert!(!matches("1.2.5", "1.2"));
        assert!(!matches("1.2.5", "=1.2"));
        assert!(matches("1.2.5", "=v1.2.5"));
        assert!(matches("1.2.5", "*"));
        assert!(matches("1.2.3+build.5", "1.2.3"));
        assert!(!matches("2.0.0-rc.1", ">= 1.0"));
    }

    #[test]
    fn semver_errors() {
        err_has("semver_match", vec![s("one.two"), s(">= 1")], Some(0), "is not a valid semantic version");
        err_has("semver_match", vec![s(""), s(">= 1")], Some(0), "is not a valid semantic version");
        err_has("semver_match", vec![s("1.0.0"), s(">= 1,")], Some(1), "empty part");
        err_has("semver_match", vec![s("1.0.0"), s("  ")], Some(1), "the version constraint is empty");
        err_has("semver_match", vec![s("1.0.0"), s("1.x.banana")], Some(1), "is not a valid version constraint");
        err_has("semver_match", vec![s("1.0.0"), s("banana")], Some(1), "\"banana\" is not a valid semantic version");
        err_has("semver_match", vec![s("1.0.0"), s("~> x")], Some(1), "not a valid version for the \"~>\" operator");
        err_has("semver_match", vec![s("1.0.0"), s("~> 1.2.3.4")], Some(1), "\"~>\" operator");
        err_has("semver_match", vec![s("1.0.0"), s("~> 18446744073709551615.1")], Some(1), "\"~>\" operator");
        err_has("semver_match", vec![s("1.0.0"), s(">>> 1")], Some(1), "is not a valid version constraint");
        err_has("semver_match", vec![s("1.0.0"), s("!= banana")], Some(1), "is not a valid semantic version");
        err_has("semver_match", vec![list(vec![]), s("1")], Some(0), "expected a string");
    }
}
