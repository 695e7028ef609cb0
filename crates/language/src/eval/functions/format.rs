//! `format(fmt, args...)`: Go/Terraform-style verbs (`%v %s %q %t %d %f %x
//! %X %o %b %%`), flags (`-+ 0`), width, precision and explicit argument
//! indexes (`%[2]s`).
//!
//! Invariants: pure, no host access; Terraform semantics unless documented
//! here. Widths and precisions are at most [`MAX_FORMAT_WIDTH`]; as in
//! Terraform, every argument must be used. `%v` of a list or map is its
//! JSON, with integral numbers as integers (`encoding::to_json`).

use super::args::{describe, ordinal, quote, scalar_to_string, to_number, Args};
use super::encoding::to_json;
use super::FnError;
use crate::value::Value;

/// Largest width or precision accepted in a `format` verb.
const MAX_FORMAT_WIDTH: usize = 10_000;

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

fn format_error(message: impl Into<String>) -> FnError {
    FnError::at(0, message)
}

fn read_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Option<usize>, FnError> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        let next = n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize);
        if next > MAX_FORMAT_WIDTH {
            return Err(format_error(format!("a width or precision in the format string is larger than {MAX_FORMAT_WIDTH}")));
        }
        n = Some(next);
    }
    Ok(n)
}

/// Reads an explicit argument index `[n]` (1-based) if one follows.
fn read_arg_index(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Option<usize>, FnError> {
    if chars.peek() != Some(&'[') {
        return Ok(None);
    }
    chars.next();
    let n = read_digits(chars)?;
    if chars.next() != Some(']') {
        return Err(format_error("an argument index in the format string is not closed with \"]\""));
    }
    match n {
        Some(n) if n >= 1 => Ok(Some(n - 1)),
        _ => Err(format_error("argument indexes in the format string start at 1, as in %[1]s")),
    }
}

fn pad(body: String, spec: &Spec, numeric: bool) -> String {
    let Some(width) = spec.width else { return body };
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if spec.minus {
        body + &" ".repeat(fill)
    } else if spec.zero && numeric {
        let (sign, digits) = if body.starts_with(['-', '+', ' ']) { body.split_at_checked(1).unwrap_or(("", body.as_str())) } else { ("", body.as_str()) };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        " ".repeat(fill) + &body
    }
}

fn signed(body: String, negative: bool, spec: &Spec) -> String {
    if negative {
        format!("-{body}")
    } else if spec.plus {
        format!("+{body}")
    } else if spec.space {
        format!(" {body}")
    } else {
        body
    }
}

/// Formats one argument for one verb; errors carry the argument's index.
fn format_one(verb: char, v: &Value, spec: &Spec, arg: usize) -> Result<String, FnError> {
    let bad = |what: &str| FnError::at(arg, format!("the verb %{verb} expects {what}, but the {} argument is {}", ordinal(arg), describe(v)));
    match verb {
        'v' => {
            let body = match v {
                Value::List(_) | Value::Map(_) => to_json(v).to_string(),
                Value::Null => "null".to_string(),
                other => scalar_to_string(other).ok_or_else(|| bad("a value"))?,
            };
            Ok(pad(body, spec, false))
        }
        's' => {
            let s = scalar_to_string(v).ok_or_else(|| bad("a string, number or bool"))?;
            let s = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s,
            };
            Ok(pad(s, spec, false))
        }
        'q' => {
            let s = scalar_to_string(v).ok_or_else(|| bad("a string, number or bool"))?;
            Ok(pad(quote(&s), spec, false))
        }
        't' => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s == "true" => true,
                Value::String(s) if s == "false" => false,
                _ => return Err(bad("a bool")),
            };
            Ok(pad(b.to_string(), spec, false))
        }
        'd' | 'x' | 'X' | 'o' | 'b' => {
            let n = to_number(v).ok_or_else(|| bad("a whole number"))?;
            let n = n.as_i64().ok_or_else(|| FnError::at(arg, format!("the verb %{verb} expects a whole number, but the {} argument is {n}", ordinal(arg))))?;
            let magnitude = n.unsigned_abs();
            let body = match verb {
                'x' => format!("{magnitude:x}"),
                'X' => format!("{magnitude:X}"),
                'o' => format!("{magnitude:o}"),
                'b' => format!("{magnitude:b}"),
                _ => magnitude.to_string(),
            };
            Ok(pad(signed(body, n < 0, spec), spec, true))
        }
        'f' => {
            let n = to_number(v).and_then(|n| n.as_f64()).ok_or_else(|| bad("a number"))?;
            let body = format!("{:.*}", spec.precision.unwrap_or(6), n.abs());
            Ok(pad(signed(body, n.is_sign_negative() && n != 0.0, spec), spec, true))
        }
        other => Err(format_error(format!(
            "the format string uses the unsupported verb %{other}; supported verbs are %v, %s, %q, %t, %d, %f, %x, %X, %o, %b and %%"
        ))),
    }
}

/// `format(fmt, args...)` with Go/Terraform-style verbs, flags (`-+ 0`),
/// width, precision and explicit argument indexes (`%[2]s`).
pub(super) fn f_format(a: &Args) -> Result<Value, FnError> {
    let fmt = a.string(0)?;
    let args = a.v.get(1..).unwrap_or_default();
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0usize;
    let mut used = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        if let Some(i) = read_arg_index(&mut chars)? {
            next = i;
        }
        spec.width = read_digits(&mut chars)?;
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(read_digits(&mut chars)?.unwrap_or(0));
        }
        if let Some(i) = read_arg_index(&mut chars)? {
            next = i;
        }
        let Some(verb) = chars.next() else {
            return Err(format_error("the format string ends in the middle of a verb"));
        };
        if verb == '%' {
            out.push_str(&pad("%".to_string(), &spec, false));
            continue;
        }
        let Some(value) = args.get(next) else {
            return Err(FnError::at(0, format!("the format string needs at least {} arguments after it, but only {} were given", next + 1, args.len())));
        };
        out.push_str(&format_one(verb, value, &spec, next + 1)?);
        next += 1;
        used = used.max(next);
    }
    if used < args.len() {
        return Err(FnError::at(used + 1, format!("too many arguments for the format string: it uses {used} but {} were given", args.len())));
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;
    use crate::value::Value;

    #[test]
    fn format_verbs() {
        let fmt = |args: Vec<Value>| ok("format", args);
        same(&fmt(vec![s("Hello, %s!"), s("Ander")]), &s("Hello, Ander!"));
        same(&fmt(vec![s("There are %d lights"), i(4)]), &s("There are 4 lights"));
        same(&fmt(vec![s("%d"), f(4.0)]), &s("4"));
        same(&fmt(vec![s("%d"), s("12")]), &s("12"));
        same(&fmt(vec![s("%f"), f(3.25159)]), &s("3.251590"));
        same(&fmt(vec![s("%.2f"), f(3.25159)]), &s("3.25"));
        same(&fmt(vec![s("%.0f"), i(2)]), &s("2"));
        same(&fmt(vec![s("%.1f"), f(-0.25)]), &s("-0.2"));
        same(&fmt(vec![s("%v %v %v %v"), s("a"), i(1), Value::Bool(true), Value::Null]), &s("a 1 true null"));
        same(&fmt(vec![s("%v"), list(vec![i(1), s("x")])]), &s("[1,\"x\"]"));
        same(&fmt(vec![s("%v"), map(&[("b", i(1)), ("a", i(2))])]), &s("{\"b\":1,\"a\":2}"));
        same(&fmt(vec![s("%q"), s("say \"hi\"")]), &s("\"say \\\"hi\\\"\""));
        same(&fmt(vec![s("100%%")]), &s("100%"));
        same(&fmt(vec![s("[%3%]")]), &s("[  %]"));
        same(&fmt(vec![s("[%5s]"), s("ab")]), &s("[   ab]"));
        same(&fmt(vec![s("[%-5s]"), s("ab")]), &s("[ab   ]"));
        same(&fmt(vec![s("[%.2s]"), s("abcdef")]), &s("[ab]"));
        same(&fmt(vec![s("[%05d]"), i(-42)]), &s("[-0042]"));
        same(&fmt(vec![s("[%+d]"), i(42)]), &s("[+42]"));
        same(&fmt(vec![s("[%8.3f]"), f(3.25159)]), &s("[   3.252]"));
        same(&fmt(vec![s("%x %X %o %b"), i(255), i(255), i(8), i(5)]), &s("ff FF 10 101"));
        same(&fmt(vec![s("%t"), Value::Bool(false)]), &s("false"));
        same(&fmt(vec![s("%[2]s-%[1]s"), s("a"), s("b")]), &s("b-a"));
        same(&fmt(vec![s("%s %s"), f(1.5), Value::Bool(true)]), &s("1.5 true"));
        same(&fmt(vec![s("no verbs")]), &s("no verbs"));
        same(&fmt(vec![s("ünï %s"), s("cödé")]), &s("ünï cödé"));
    }

    #[test]
    fn format_errors() {
        err_has("format", vec![s("%s %s"), s("a")], Some(0), "needs at least 2 arguments");
        err_has("format", vec![s("%s"), s("a"), s("b")], Some(2), "too many arguments");
        err_has("format", vec![s("%d"), f(1.5)], Some(1), "the verb %d expects a whole number, but the second argument is 1.5");
        err_has("format", vec![s("%d"), s("abc")], Some(1), "expects a whole number");
        err_has("format", vec![s("%s"), list(vec![])], Some(1), "the verb %s expects a string, number or bool, but the second argument is a list");
        err_has("format", vec![s("%s"), Value::Null], Some(1), "is null");
        err_has("format", vec![s("%t"), i(1)], Some(1), "expects a bool");
        err_has("format", vec![s("%y"), i(1)], Some(0), "unsupported verb %y");
        err_has("format", vec![s("abc %"), i(1)], Some(0), "ends in the middle of a verb");
        err_has("format", vec![s("%99999999s"), s("a")], Some(0), "larger than 10000");
        err_has("format", vec![s("%[0]s"), s("a")], Some(0), "start at 1");
        err_has("format", vec![s("%[1s"), s("a")], Some(0), "not closed");
        err_has("format", vec![list(vec![])], Some(0), "expected a string as the first argument");
    }
}
