//! String functions: `trim`, `replace`, `split`, `join`, `substr`, `regex`.
//! `lower`, `upper`, `trimprefix`, `trimsuffix`, `trimspace`, `startswith`
//! and `endswith` are one-line arms of the dispatcher in `mod.rs` (their
//! tests are here); `format` has its own file.
//!
//! Invariants: pure, no host access; Terraform semantics unless a
//! function's documentation here says otherwise. Offsets and lengths count
//! characters, not bytes. Regular expressions get RE2's (Terraform's)
//! ASCII-only Perl classes (see `re2_classes`).

use super::args::{describe, quote, scalar_to_string, Args};
use super::FnError;
use crate::value::{Map, Value};

pub(super) fn f_trim(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let cutset = a.string(1)?;
    Ok(Value::String(s.trim_matches(|c| cutset.contains(c)).to_string()))
}

fn compile_regex(pattern: &str, arg: usize) -> Result<regex::Regex, FnError> {
    regex::Regex::new(&re2_classes(pattern)).map_err(|e| FnError::at(arg, format!("{} is not a valid regular expression: {e}", quote(pattern))))
}

/// Rewrites the Perl classes of a pattern to their RE2 (Terraform) meaning:
/// `\w`, `\d`, `\s` and `\b` are ASCII-only there, while the regex crate
/// makes them Unicode-aware (`\d` would match Arabic-Indic digits, `\w`
/// accented letters). Literals and everything else keep full UTF-8
/// matching. Inside a bracket class the positive classes become ranges
/// and the negated ones POSIX classes (ASCII by definition).
fn re2_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Inside `[...]`; `class_start` while `]` would still be a literal.
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let replacement = match (in_class, e) {
                    (false, 'w') => Some("[0-9A-Za-z_]"),
                    (false, 'W') => Some("[^0-9A-Za-z_]"),
                    (false, 'd') => Some("[0-9]"),
                    (false, 'D') => Some("[^0-9]"),
                    (false, 's') => Some("[\\t\\n\\f\\r ]"),
                    (false, 'S') => Some("[^\\t\\n\\f\\r ]"),
                    (false, 'b') => Some("(?-u:\\b)"),
                    (false, 'B') => Some("(?-u:\\B)"),
                    (true, 'w') => Some("0-9A-Za-z_"),
                    (true, 'W') => Some("[:^word:]"),
                    (true, 'd') => Some("0-9"),
                    (true, 'D') => Some("[:^digit:]"),
                    (true, 's') => Some("\\t\\n\\f\\r "),
                    (true, 'S') => Some("[:^space:]"),
                    _ => None,
                };
                match replacement {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(e);
                    }
                }
                class_start = false;
            }
            '[' if !in_class => {
                out.push('[');
                in_class = true;
                class_start = true;
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class `[:name:]` inside a bracket class.
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
                class_start = false;
            }
            ']' if in_class && !class_start => {
                out.push(']');
                in_class = false;
            }
            c => {
                out.push(c);
                class_start = false;
            }
        }
    }
    out
}

/// `replace(s, substr, replacement)`; a `substr` wrapped in slashes is a
/// regular expression and the replacement may use `$1` / `${name}`.
pub(super) fn f_replace(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let substr = a.string(1)?;
    let replacement = a.string(2)?;
    let pattern = if substr.len() >= 2 { substr.strip_prefix('/').and_then(|p| p.strip_suffix('/')) } else { None };
    match pattern {
        Some(pattern) => {
            let re = compile_regex(pattern, 1)?;
            Ok(Value::String(re.replace_all(&s, replacement.as_str()).into_owned()))
        }
        None => Ok(Value::String(s.replace(&substr, &replacement))),
    }
}

/// `split(separator, s)` like Go's strings.Split: an empty separator splits
/// into characters.
pub(super) fn f_split(a: &Args) -> Result<Value, FnError> {
    let sep = a.string(0)?;
    let s = a.string(1)?;
    let parts: Vec<Value> =
        if sep.is_empty() { s.chars().map(|c| Value::String(c.to_string())).collect() } else { s.split(sep.as_str()).map(Value::str).collect() };
    Ok(Value::List(parts))
}

pub(super) fn f_join(mut a: Args) -> Result<Value, FnError> {
    let sep = a.string(0)?;
    let items = a.list(1)?;
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match scalar_to_string(item) {
            Some(s) => parts.push(s),
            None => {
                return Err(FnError::at(1, format!("expected a list of strings as the second argument, found a list whose element {i} is {}", describe(item))))
            }
        }
    }
    Ok(Value::String(parts.join(&sep)))
}

/// `substr(s, offset, length)` on characters. A negative offset counts from
/// the end; a length of -1 means "to the end".
pub(super) fn f_substr(a: &Args) -> Result<Value, FnError> {
    let s = a.string(0)?;
    let offset = a.int(1)?;
    let length = a.int(2)?;
    if length < -1 {
        return Err(FnError::at(2, format!("expected a length of -1 (meaning \"to the end\") or more as the third argument, found {length}")));
    }
    let chars: Vec<char> = s.chars().collect();
    let total = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    let start = if offset < 0 { total.saturating_add(offset).max(0) } else { offset };
    if start >= total {
        return Ok(Value::String(String::new()));
    }
    let end = if length < 0 { total } else { start.saturating_add(length).min(total) };
    let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
        return Ok(Value::String(String::new()));
    };
    Ok(Value::String(chars.get(start..end).unwrap_or_default().iter().collect()))
}

/// First match of `pattern` in `s`: the matched text when the pattern has no
/// capture groups, a list of the captures for unnamed groups, a map for named
/// groups. Groups that did not take part in the match are null.
pub(super) fn f_regex(a: &Args) -> Result<Value, FnError> {
    let pattern = a.string(0)?;
    let s = a.string(1)?;
    let re = compile_regex(&pattern, 0)?;
    let groups = re.captures_len().saturating_sub(1);
    let named: Vec<Option<&str>> = re.capture_names().skip(1).collect();
    let named_count = named.iter().filter(|n| n.is_some()).count();
    if named_count > 0 && named_count < groups {
        return Err(FnError::at(0, "the pattern mixes named and unnamed capture groups; use only one kind"));
    }
    let Some(caps) = re.captures(&s) else {
        return Err(FnError::at(1, format!("the pattern {} does not match any part of the string", quote(&pattern))));
    };
    let text = |i: usize| caps.get(i).map_or(Value::Null, |m| Value::str(m.as_str()));
    if groups == 0 {
        return Ok(text(0));
    }
    if named_count == 0 {
        return Ok(Value::List((1..=groups).map(text).collect()));
    }
    let mut out = Map::default();
    for (i, name) in named.iter().enumerate() {
        if let Some(name) = name {
            out.insert((*name).to_string(), text(i + 1));
        }
    }
    Ok(Value::Map(out))
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;
    use crate::value::Value;

    #[test]
    fn case_and_trimming() {
        same(&ok("upper", vec![s("héllo")]), &s("HÉLLO"));
        same(&ok("lower", vec![s("HeLLo")]), &s("hello"));
        same(&ok("upper", vec![i(5)]), &s("5"));
        err_has("upper", vec![list(vec![])], Some(0), "expected a string as the first argument, found a list");
        same(&ok("trim", vec![s("?!hello?!"), s("!?")]), &s("hello"));
        same(&ok("trim", vec![s("xx"), s("x")]), &s(""));
        same(&ok("trimprefix", vec![s("helloworld"), s("hello")]), &s("world"));
        same(&ok("trimprefix", vec![s("hellohello"), s("hello")]), &s("hello"));
        same(&ok("trimprefix", vec![s("world"), s("hello")]), &s("world"));
        same(&ok("trimsuffix", vec![s("helloworld"), s("world")]), &s("hello"));
        same(&ok("trimsuffix", vec![s("hello"), s("world")]), &s("hello"));
        same(&ok("trimspace", vec![s(" \n\thi there\u{a0} \n")]), &s("hi there"));
        err_has("trimspace", vec![Value::Null], Some(0), "found null");
        err_has("trim", vec![s("a"), map(&[])], Some(1), "expected a string as the second argument, found a map");
    }

    #[test]
    fn replace_plain_and_regex() {
        same(&ok("replace", vec![s("1 + 2 + 3"), s("+"), s("-")]), &s("1 - 2 - 3"));
        same(&ok("replace", vec![s("abc"), s(""), s("-")]), &s("-a-b-c-"));
        same(&ok("replace", vec![s("hello world"), s("/w.*d/"), s("everybody")]), &s("hello everybody"));
        same(&ok("replace", vec![s("a1b22"), s("/([a-z])(\\d+)/"), s("${2}$1")]), &s("1a22b"));
        same(&ok("replace", vec![s("a/b"), s("/"), s("|")]), &s("a|b"));
        err_has("replace", vec![s("x"), s("/(/"), s("y")], Some(1), "is not a valid regular expression");
        err_has("replace", vec![s("x"), s("y"), list(vec![])], Some(2), "third argument");
    }

    #[test]
    fn split_and_join() {
        assert_eq!(ok("split", vec![s(","), s("a,b,,c")]), slist(&["a", "b", "", "c"]));
        assert_eq!(ok("split", vec![s(","), s("")]), slist(&[""]));
        assert_eq!(ok("split", vec![s(""), s("añb")]), slist(&["a", "ñ", "b"]));
        assert_eq!(ok("split", vec![s("::"), s("a::b")]), slist(&["a", "b"]));
        err_has("split", vec![s(","), list(vec![])], Some(1), "expected a string as the second argument");

        same(&ok("join", vec![s(", "), slist(&["a", "b", "c"])]), &s("a, b, c"));
        same(&ok("join", vec![s("-"), list(vec![i(1), Value::Bool(true), f(1.5)])]), &s("1-true-1.5"));
        same(&ok("join", vec![s("-"), list(vec![])]), &s(""));
        err_has("join", vec![s("-"), list(vec![s("a"), Value::Null])], Some(1), "element 1 is null");
        err_has("join", vec![s("-"), s("abc")], Some(1), "expected a list as the second argument, found a string");
    }

    #[test]
    fn substr_on_chars() {
        same(&ok("substr", vec![s("hello world"), i(1), i(4)]), &s("ello"));
        same(&ok("substr", vec![s("héllo"), i(1), i(-1)]), &s("éllo"));
        same(&ok("substr", vec![s("hello"), i(-3), i(2)]), &s("ll"));
        same(&ok("substr", vec![s("hello"), i(-10), i(2)]), &s("he"));
        same(&ok("substr", vec![s("hello"), i(10), i(2)]), &s(""));
        same(&ok("substr", vec![s("hello"), i(2), i(100)]), &s("llo"));
        same(&ok("substr", vec![s("hello"), i(i64::MAX), i(i64::MAX)]), &s(""));
        same(&ok("substr", vec![s("hello"), i(i64::MIN), i(i64::MAX)]), &s("hello"));
        err_has("substr", vec![s("hello"), i(0), i(-2)], Some(2), "a length of -1");
        err_has("substr", vec![s("hello"), s("x"), i(1)], Some(1), "expected a whole number as the second argument, found a string");
    }

    #[test]
    fn startswith_endswith() {
        same(&ok("startswith", vec![s("hello"), s("he")]), &Value::Bool(true));
        same(&ok("startswith", vec![s("hello"), s("lo")]), &Value::Bool(false));
        same(&ok("endswith", vec![s("hello"), s("lo")]), &Value::Bool(true));
        same(&ok("endswith", vec![s("hello"), s("he")]), &Value::Bool(false));
        same(&ok("startswith", vec![s("hello"), s("")]), &Value::Bool(true));
        err_has("endswith", vec![list(vec![]), s("x")], Some(0), "expected a string");
    }

    #[test]
    fn regex_results() {
        same(&ok("regex", vec![s("[a-z]+"), s("53453453.345345aaabbbccc23454")]), &s("aaabbbccc"));
        assert_eq!(ok("regex", vec![s("(\\d\\d\\d\\d)-(\\d\\d)-(\\d\\d)"), s("2019-02-01")]), slist(&["2019", "02", "01"]));
        assert_eq!(
            ok("regex", vec![s("^(?:(?P<scheme>[^:/?#]+):)?(?://(?P<authority>[^/?#]*))?"), s("https://terraform.io/docs/")]),
            map(&[("scheme", s("https")), ("authority", s("terraform.io"))])
        );
        assert_eq!(ok("regex", vec![s("a(x)?(b)"), s("ab")]), list(vec![Value::Null, s("b")]));
        err_has("regex", vec![s("[a-z]+"), s("123")], Some(1), "does not match any part of the string");
        err_has("regex", vec![s("(?P<a>x)(y)"), s("xy")], Some(0), "mixes named and unnamed");
        err_has("regex", vec![s("(")], None, "takes exactly 2 arguments");
        err_has("regex", vec![s("("), s("x")], Some(0), "is not a valid regular expression");
    }
}
