//! Provider versions (semantic versions) and Terraform's version
//! constraints: `~> 1.36`, `>= 1.0, < 2.0`, `= 1.2.3`, `!= 1.3.0`, `1.2.3`.
//!
//! Semantics are those of Terraform (its "Ruby-style" constraints):
//! comma-separated constraints must all hold; missing version parts are
//! zero (`>= 1.2` is `>= 1.2.0`); `~> 1.2` allows `>= 1.2.0, < 2.0.0` and
//! `~> 1.2.3` allows `>= 1.2.3, < 1.3.0`; a bare version is `=`. A
//! prerelease (`2.0.0-beta1`) is selected only by an exact `=` (or bare)
//! constraint naming it: ordering operators never match a prerelease.

use std::cmp::Ordering;
use std::fmt;

/// A provider version: a semantic version (`1.36.0`, `2.0.0-beta1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(pub semver::Version);

impl Version {
    pub fn parse(text: &str) -> Result<Version, String> {
        if text.starts_with('v') {
            return Err(format!("`{text}`: versions are written without a `v` prefix"));
        }
        semver::Version::parse(text).map(Version).map_err(|e| format!("`{text}` is not a semantic version ({e})"))
    }
    pub fn is_prerelease(&self) -> bool {
        !self.0.pre.is_empty()
    }
    /// Semantic-version precedence (build metadata does not count).
    fn precedence(&self, other: &Version) -> Ordering {
        self.0.cmp_precedence(&other.0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// `~>`: the rightmost given part may increase.
    Pessimistic,
}

#[derive(Debug, Clone, PartialEq)]
struct Constraint {
    op: Op,
    version: Version,
    /// How many of major/minor/patch were written (1–3).
    parts: usize,
}

impl Constraint {
    fn matches(&self, v: &Version) -> bool {
        let b = &self.version;
        let same = || v.precedence(b) == Ordering::Equal && (b.0.build.is_empty() || v.0.build == b.0.build);
        match self.op {
            Op::Eq => same(),
            Op::Ne => !same(),
            Op::Gt => v.precedence(b) == Ordering::Greater,
            Op::Ge => v.precedence(b) != Ordering::Less,
            Op::Lt => v.precedence(b) == Ordering::Less,
            Op::Le => v.precedence(b) != Ordering::Greater,
            Op::Pessimistic => {
                let upper = if self.parts == 3 {
                    semver::Version::new(b.0.major, b.0.minor.saturating_add(1), 0)
                } else {
                    semver::Version::new(b.0.major.saturating_add(1), 0, 0)
                };
                v.precedence(b) != Ordering::Less && v.0.cmp_precedence(&upper) == Ordering::Less
            }
        }
    }
}

/// A list of version constraints as written in a provider block's
/// `version` (empty: any released version).
#[derive(Debug, Clone, PartialEq)]
pub struct Constraints {
    text: String,
    all: Vec<Constraint>,
}

impl Constraints {
    /// No constraint: the newest released version.
    pub fn any() -> Constraints {
        Constraints { text: String::new(), all: Vec::new() }
    }

    /// Parses `~> 1.36`, `>= 1.0, < 2.0`, …; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Constraints, String> {
        if text.trim().is_empty() {
            return Err("the version constraint is empty; write one like \"~> 1.2\" or leave `version` out".into());
        }
        let mut all = Vec::new();
        for piece in text.split(',') {
            all.push(parse_one(piece.trim()).map_err(|why| if text.contains(',') { format!("`{}`: {why}", piece.trim()) } else { why })?);
        }
        Ok(Constraints { text: text.to_string(), all })
    }

    /// The constraints as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `v` meets every constraint. A prerelease meets them only if
    /// an `=` constraint names it and no ordering constraint is given.
    pub fn allows(&self, v: &Version) -> bool {
        if v.is_prerelease() {
            let named = self.all.iter().any(|c| c.op == Op::Eq && c.matches(v));
            return named && self.all.iter().all(|c| matches!(c.op, Op::Eq | Op::Ne) && c.matches(v));
        }
        self.all.iter().all(|c| c.matches(v))
    }

    /// The newest of `versions` that the constraints allow.
    pub fn newest<'a>(&self, versions: impl IntoIterator<Item = &'a Version>) -> Option<&'a Version> {
        versions.into_iter().filter(|v| self.allows(v)).max()
    }
}

impl fmt::Display for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_one(piece: &str) -> Result<Constraint, String> {
    if piece.is_empty() {
        return Err("an empty constraint between commas".into());
    }
    let ops: [(&str, Option<Op>); 10] = [
        ("~>", Some(Op::Pessimistic)),
        (">=", Some(Op::Ge)),
        ("<=", Some(Op::Le)),
        ("!=", Some(Op::Ne)),
        ("=>", None),
        ("=<", None),
        (">", Some(Op::Gt)),
        ("<", Some(Op::Lt)),
        ("=", Some(Op::Eq)),
        ("", Some(Op::Eq)),
    ];
    let (symbol, op) = ops.iter().find(|(s, _)| piece.starts_with(s)).copied().unwrap_or(("", Some(Op::Eq)));
    let Some(op) = op else {
        let fix = if symbol == "=>" { ">=" } else { "<=" };
        return Err(format!("`{symbol}` is not an operator; did you mean `{fix}`?"));
    };
    let rest = piece[symbol.len()..].trim_start();
    if rest.is_empty() {
        return Err(format!("`{piece}` has an operator but no version"));
    }
    if rest.starts_with('v') {
        return Err(format!("`{piece}`: versions are written without a `v` prefix"));
    }
    let (core, extra) = match rest.find(['-', '+']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() > 3 {
        return Err(format!("`{piece}` has more than three version parts (major.minor.patch)"));
    }
    for n in &nums {
        if matches!(*n, "*" | "x" | "X") {
            return Err(format!("`{piece}`: wildcards are not allowed; leave out the parts that may vary and use `~>`"));
        }
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{piece}` is not a version constraint: use an operator (=, !=, >, >=, <, <=, ~>) and a version like 1.2.3"));
        }
    }
    let mut full: Vec<&str> = nums.clone();
    full.resize(3, "0");
    let version = Version::parse(&format!("{}{extra}", full.join("."))).map_err(|e| format!("`{piece}`: {e}"))?;
    Ok(Constraint { op, version, parts: nums.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn allows(c: &str, ver: &str) -> bool {
        Constraints::parse(c).unwrap_or_else(|e| panic!("{c}: {e}")).allows(&v(ver))
    }

    #[test]
    fn operators_mean_what_terraform_says() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("~> 1.36", &["1.36.0", "1.36.9", "1.99.0"], &["1.35.9", "2.0.0"]),
            ("~> 1.2.3", &["1.2.3", "1.2.99"], &["1.2.2", "1.3.0"]),
            ("~> 1", &["1.0.0", "1.9.9"], &["0.9.0", "2.0.0"]),
            (">= 1.0, < 2.0", &["1.0.0", "1.99.99"], &["0.9.9", "2.0.0"]),
            ("= 1.2.3", &["1.2.3"], &["1.2.4", "1.2.2"]),
            ("1.2.3", &["1.2.3"], &["1.2.4"]),
            ("= 1.2", &["1.2.0"], &["1.2.1"]),
            ("!= 1.3.0", &["1.2.9", "1.3.1"], &["1.3.0"]),
            (">1.0.0", &["1.0.1"], &["1.0.0"]),
            ("<=1.0.0", &["1.0.0", "0.1.0"], &["1.0.1"]),
            (">= 1.2, != 1.4.0, < 2", &["1.2.0", "1.5.0"], &["1.4.0", "2.0.0", "1.1.0"]),
        ];
        for (c, yes, no) in cases {
            for ver in *yes {
                assert!(allows(c, ver), "{c} should allow {ver}");
            }
            for ver in *no {
                assert!(!allows(c, ver), "{c} should not allow {ver}");
            }
        }
        assert_eq!(Constraints::parse(">= 1.0, < 2.0").unwrap().to_string(), ">= 1.0, < 2.0");
    }

    #[test]
    fn prereleases_match_only_an_exact_constraint() {
        assert!(allows("= 2.0.0-beta1", "2.0.0-beta1"));
        assert!(allows("2.0.0-beta1", "2.0.0-beta1"));
        assert!(!allows(">= 1.0", "2.0.0-beta1"));
        assert!(!allows("~> 2.0", "2.1.0-rc1"));
        assert!(!allows("!= 1.0.0", "2.0.0-beta1"));
        assert!(!allows("2.0.0-beta1, >= 1.0.0", "2.0.0-beta1"));
        assert!(allows("2.0.0-beta1, != 1.0.0", "2.0.0-beta1"));
        assert!(!allows("= 2.0.0-beta1", "2.0.0-beta2"));
        assert!(!allows("= 2.0.0-beta1", "2.0.0"));
        // A prerelease bound still orders released versions.
        assert!(allows(">= 2.0.0-beta1", "2.0.0"));
        assert!(Constraints::any().allows(&v("1.0.0")) && !Constraints::any().allows(&v("1.0.0-rc1")));
    }

    #[test]
    fn the_newest_matching_version_is_chosen() {
        let all: Vec<Version> = ["1.35.0", "1.36.0", "1.36.2", "1.40.1", "2.0.0", "2.1.0-beta1"].iter().map(|s| v(s)).collect();
        let newest = |c: &str| Constraints::parse(c).unwrap().newest(&all).map(|v| v.to_string());
        assert_eq!(newest("~> 1.36").as_deref(), Some("1.40.1"));
        assert_eq!(newest("~> 1.36.0").as_deref(), Some("1.36.2"));
        assert_eq!(newest(">= 1.0, < 2.0, != 1.40.1").as_deref(), Some("1.36.2"));
        assert_eq!(newest("2.1.0-beta1").as_deref(), Some("2.1.0-beta1"));
        assert_eq!(newest("> 3.0"), None);
        assert_eq!(Constraints::any().newest(&all).map(|v| v.to_string()).as_deref(), Some("2.0.0"));
    }

    #[test]
    fn invalid_constraints_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("  ", "empty"),
            ("~>", "no version"),
            ("=> 1.0", "did you mean `>=`"),
            ("=< 1.0", "did you mean `<=`"),
            ("~> v1.2", "without a `v` prefix"),
            ("1.2.3.4", "more than three"),
            ("1.*", "wildcards"),
            (">= 1.0,", "empty constraint"),
            ("^1.2", "not a version constraint"),
            ("1.2.3-", "not a semantic version"),
            ("latest", "not a version constraint"),
        ] {
            let e = Constraints::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(Version::parse("v1.2.3").unwrap_err().contains("`v` prefix"));
        assert!(Version::parse("1.2").is_err());
    }
}
