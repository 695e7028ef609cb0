//! Expression evaluation over a [`Namespace`].
//!
//! Unknown values propagate: any operation over an unknown operand is unknown
//! (except where the known part decides, as in `false && x`). Sensitive marks
//! are stripped before an operation and put back on its result.

use crate::diagnostic::{suggestion, Diagnostic, Span};
use crate::eval::functions::{self, FnHost};
use crate::eval::limits;
use crate::eval::types::article_of_value;
use crate::syntax::ast::*;
use crate::value::{Map, Value};
use rustc_hash::FxHashMap as HashMap;

/// Names visible to expressions: params and lets by name, and one root per
/// provider name holding `type → name → value` for resources.
#[derive(Debug, Default, Clone)]
pub struct Namespace {
    pub vars: HashMap<String, Value>,
}

impl Namespace {
    pub fn set(&mut self, name: &str, value: Value) {
        note_secrets(&value);
        self.vars.insert(name.to_string(), value);
    }

    /// Records the value of a resource declaration (an object, or a list/map
    /// of instance objects under `count`/`for_each`).
    pub fn set_resource(&mut self, provider: &str, rtype: &str, name: &str, value: Value) {
        note_secrets(&value);
        let root = self.vars.entry(provider.to_string()).or_insert_with(|| Value::Map(Map::default()));
        if let Value::Map(types) = root {
            let by_name = types.entry(rtype.to_string()).or_insert_with(|| Value::Map(Map::default()));
            if let Value::Map(names) = by_name {
                names.insert(name.to_string(), value);
            }
        }
    }

    /// Records the value of a data block under its root (`data`, or
    /// `stack.core.data` in a component): `<root>.<provider>.<type>.<name>`.
    pub fn set_data(&mut self, root: &str, provider: &str, dtype: &str, name: &str, value: Value) {
        note_secrets(&value);
        let root = self.vars.entry(root.to_string()).or_insert_with(|| Value::Map(Map::default()));
        if let Value::Map(providers) = root {
            let types = providers.entry(provider.to_string()).or_insert_with(|| Value::Map(Map::default()));
            if let Value::Map(types) = types {
                let by_name = types.entry(dtype.to_string()).or_insert_with(|| Value::Map(Map::default()));
                if let Value::Map(names) = by_name {
                    names.insert(name.to_string(), value);
                }
            }
        }
    }

    pub fn get_resource(&self, provider: &str, rtype: &str, name: &str) -> Option<&Value> {
        match self.vars.get(provider)? {
            Value::Map(types) => match types.get(rtype)? {
                Value::Map(names) => names.get(name),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Every sensitive value that enters a namespace is a secret no diagnostic
/// may show (see [`crate::diagnostic::register_secrets`]).
fn note_secrets(value: &Value) {
    if value.is_sensitive_deep() {
        let mut texts = Vec::new();
        value.sensitive_texts(&mut texts);
        crate::diagnostic::register_secrets(texts);
    }
}

pub struct Evaluator<'a> {
    pub ns: &'a Namespace,
    pub host: &'a mut dyn FnHost,
    locals: Vec<(String, Value)>,
}

type R = Result<Value, Diagnostic>;

fn err(code: &'static str, span: Span, message: impl Into<String>, label: impl Into<String>, help: impl Into<String>) -> Diagnostic {
    Diagnostic::new(code, message).help(help).label(span, label)
}

impl<'a> Evaluator<'a> {
    pub fn new(ns: &'a Namespace, host: &'a mut dyn FnHost) -> Self {
        Evaluator { ns, host, locals: Vec::new() }
    }

    /// Binds a name (`each`, `count`, a for-variable) for nested evaluation.
    pub fn push_local(&mut self, name: &str, value: Value) {
        self.locals.push((name.to_string(), value));
    }
    pub fn pop_local(&mut self) {
        self.locals.pop();
    }

    fn lookup(&self, name: &str) -> Option<&Value> {
        self.locals.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v).or_else(|| self.ns.vars.get(name))
    }

    pub fn eval(&mut self, expr: &Expr) -> R {
        match &expr.kind {
            ExprKind::Null => Ok(Value::Null),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Float(f) => Ok(Value::Float(*f)),
            ExprKind::Template(parts) => self.template(parts),
            ExprKind::List(items) => {
                limits::charge(items.len() as u64).map_err(|stop| limits::diagnostic(stop, Some(expr.span)))?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.eval(item)?);
                }
                Ok(Value::List(out))
            }
            ExprKind::Object(entries) => {
                limits::charge(entries.len() as u64).map_err(|stop| limits::diagnostic(stop, Some(expr.span)))?;
                let mut out = Map::with_capacity_and_hasher(entries.len(), Default::default());
                // A key built from a sensitive value makes the whole object
                // sensitive: keys are shown wherever the object is.
                let mut key_sensitive = false;
                let mut key_spans: Vec<Span> = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let key_span = match key {
                        ObjectKey::Literal(_, span) => *span,
                        ObjectKey::Expr(e) => e.span,
                    };
                    let k = match key {
                        ObjectKey::Literal(s, _) => s.clone(),
                        ObjectKey::Expr(e) => {
                            let (v, ks) = self.eval(e)?.unmark();
                            key_sensitive |= ks;
                            match v {
                                Value::Unknown => return Ok(Value::Unknown.mark_if(key_sensitive)),
                                v => match key_string(&v) {
                                    Some(s) => s,
                                    None => {
                                        return Err(err(
                                            "P2023",
                                            e.span,
                                            "invalid object key",
                                            format!("this is {}", article_of_value(&v)),
                                            "Object keys must be strings, numbers or bools.",
                                        ))
                                    }
                                },
                            }
                        }
                    };
                    let v = self.eval(value)?;
                    // Literal keys are checked by the parser (P1010); this
                    // catches computed ones, as Terraform does.
                    if let Some(i) = out.get_index_of(&k) {
                        let first = key_spans.get(i).copied().unwrap_or(key_span);
                        return Err(Diagnostic::new("P2141", "duplicate object key")
                            .help("An object constructor may set each key once; a computed key produced the same key as another one. Remove one, or merge objects with `merge(a, b)` when a later value should win.")
                            .label(key_span, "this key is set again here")
                            .label(first, "first set here"));
                    }
                    key_spans.push(key_span);
                    out.insert(k, v);
                }
                Ok(Value::Map(out).mark_if(key_sensitive))
            }
            ExprKind::Variable(_) | ExprKind::GetAttr(..) | ExprKind::Index(..) => self.traversal(expr),
            ExprKind::Splat(base, steps) => {
                let base_v = self.eval(base)?;
                let (base_v, sensitive) = split_mark(base_v);
                let items = match base_v {
                    Value::Unknown => return Ok(Value::Unknown.mark_if(sensitive)),
                    Value::Null => vec![],
                    Value::List(items) => items,
                    Value::Map(m) if matches!(base.kind, ExprKind::Splat(..)) => sorted_entries(m).into_iter().map(|(_, v)| v).collect(),
                    other => vec![other],
                };
                limits::charge(items.len() as u64).map_err(|stop| limits::diagnostic(stop, Some(expr.span)))?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let mut cur = item;
                    for step in steps {
                        cur = match step {
                            Step::Attr(name) => get_attr(cur, name)?,
                            Step::Index(key_expr) => {
                                let key = self.eval(key_expr)?;
                                index(cur, key, key_expr.span)?
                            }
                        };
                    }
                    out.push(cur);
                }
                Ok(Value::List(out).mark_if(sensitive))
            }
            ExprKind::Unary(op, operand) => {
                let v = self.eval(operand)?;
                let (v, sensitive) = v.unmark();
                let out = match (op, v) {
                    (_, Value::Unknown) => Value::Unknown,
                    (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
                    (UnaryOp::Neg, Value::Int(i)) => match i.checked_neg() {
                        Some(n) => Value::Int(n),
                        None => return Err(overflow(expr.span)),
                    },
                    (UnaryOp::Neg, Value::Float(f)) => Value::Float(-f),
                    (op, v) => {
                        let want = if *op == UnaryOp::Not { "a bool" } else { "a number" };
                        return Err(err(
                            "P2024",
                            operand.span,
                            "wrong operand type",
                            format!("this is {}", article_of_value(&v)),
                            format!("`{}` needs {want}.", if *op == UnaryOp::Not { "!" } else { "-" }),
                        ));
                    }
                };
                Ok(out.mark_if(sensitive))
            }
            ExprKind::Binary(op, lhs, rhs) => self.binary(*op, lhs, rhs),
            ExprKind::Conditional(cond, a, b) => {
                let c = self.eval(cond)?;
                let (c, sensitive) = c.unmark();
                match c {
                    Value::Unknown => Ok(Value::Unknown.mark_if(sensitive)),
                    Value::Bool(true) => Ok(self.eval(a)?.mark_if(sensitive)),
                    Value::Bool(false) => Ok(self.eval(b)?.mark_if(sensitive)),
                    other => Err(err(
                        "P2024",
                        cond.span,
                        "condition is not a bool",
                        format!("this is {}", article_of_value(&other)),
                        "The condition of `cond ? a : b` must be true or false; compare explicitly, e.g. `x != \"\"`.",
                    )),
                }
            }
            ExprKind::Call(name, args) => self.call(name, args, expr.span),
            ExprKind::ForList { key_var, value_var, collection, body, cond } => {
                let coll = self.eval(collection)?;
                let (coll, sensitive) = split_mark(coll);
                let pairs = match iter_pairs(coll, collection.span)? {
                    Some(p) => p,
                    None => return Ok(Value::Unknown.mark_if(sensitive)),
                };
                let mut out = Vec::new();
                let mut cond_sensitive = false;
                for (k, v) in pairs {
                    limits::charge(1).map_err(|stop| limits::diagnostic(stop, Some(expr.span)))?;
                    let bound = self.bind(key_var.as_ref(), value_var, k, v);
                    let result = (|| {
                        if let Some(c) = cond {
                            let (cv, cs) = self.eval(c)?.unmark();
                            cond_sensitive |= cs;
                            match cv {
                                Value::Bool(true) => {}
                                Value::Bool(false) => return Ok(None),
                                Value::Unknown => return Ok(Some(Value::Unknown)),
                                other => {
                                    return Err(err(
                                        "P2024",
                                        c.span,
                                        "condition is not a bool",
                                        format!("this is {}", article_of_value(&other)),
                                        "An `if` clause must be true or false.",
                                    ))
                                }
                            }
                        }
                        self.eval(body).map(Some)
                    })();
                    for _ in 0..bound {
                        self.pop_local();
                    }
                    match result? {
                        Some(Value::Unknown) if cond.is_some() => return Ok(Value::Unknown.mark_if(sensitive || cond_sensitive)),
                        Some(v) => out.push(v),
                        None => {}
                    }
                }
                Ok(Value::List(out).mark_if(sensitive || cond_sensitive))
            }
            ExprKind::ForMap { key_var, value_var, collection, key, value, cond } => {
                let coll = self.eval(collection)?;
                let (coll, sensitive) = split_mark(coll);
                let pairs = match iter_pairs(coll, collection.span)? {
                    Some(p) => p,
                    None => return Ok(Value::Unknown.mark_if(sensitive)),
                };
                let mut out = Map::default();
                let mut unknown = false;
                let mut cond_sensitive = false;
                // A key built from a sensitive value makes the result sensitive.
                let mut key_sensitive = false;
                for (k, v) in pairs {
                    limits::charge(1).map_err(|stop| limits::diagnostic(stop, Some(expr.span)))?;
                    let bound = self.bind(key_var.as_ref(), value_var, k, v);
                    let result = (|| {
                        if let Some(c) = cond {
                            let (cv, cs) = self.eval(c)?.unmark();
                            cond_sensitive |= cs;
                            match cv {
                                Value::Bool(true) => {}
                                Value::Bool(false) => return Ok(None),
                                Value::Unknown => return Ok(Some((Value::Unknown, Value::Unknown))),
                                other => {
                                    return Err(err(
                                        "P2024",
                                        c.span,
                                        "condition is not a bool",
                                        format!("this is {}", article_of_value(&other)),
                                        "An `if` clause must be true or false.",
                                    ))
                                }
                            }
                        }
                        let kv = self.eval(key)?;
                        let vv = self.eval(value)?;
                        Ok(Some((kv, vv)))
                    })();
                    for _ in 0..bound {
                        self.pop_local();
                    }
                    if let Some((kv, vv)) = result? {
                        let (kv, ks) = kv.unmark();
                        key_sensitive |= ks;
                        if matches!(kv, Value::Unknown) {
                            unknown = true;
                            continue;
                        }
                        let Some(ks) = key_string(&kv) else {
                            return Err(err(
                                "P2023",
                                key.span,
                                "invalid object key",
                                format!("this is {}", article_of_value(&kv)),
                                "Keys of a `{for …}` result must be strings.",
                            ));
                        };
                        if out.contains_key(&ks) {
                            return Err(err(
                                "P2025",
                                key.span,
                                "duplicate key in for expression",
                                if key_sensitive {
                                    "a key built from a sensitive value is produced twice".to_string()
                                } else {
                                    format!("`{ks}` is produced twice")
                                },
                                "Each key of a `{for …}` result must be unique; filter with `if` or make the key expression unique.",
                            ));
                        }
                        out.insert(ks, vv);
                    }
                }
                if unknown {
                    return Ok(Value::Unknown.mark_if(sensitive || cond_sensitive || key_sensitive));
                }
                Ok(Value::Map(out).mark_if(sensitive || cond_sensitive || key_sensitive))
            }
        }
    }

    fn bind(&mut self, key_var: Option<&Ident>, value_var: &Ident, k: Value, v: Value) -> usize {
        let mut n = 0;
        if let Some(kv) = key_var {
            self.push_local(&kv.name, k);
            n += 1;
        }
        self.push_local(&value_var.name, v);
        n + 1
    }

    fn template(&mut self, parts: &[TemplatePart]) -> R {
        if let [TemplatePart::Literal(s)] = parts {
            return Ok(Value::String(s.clone()));
        }
        let mut out = String::new();
        let mut sensitive = false;
        let mut unknown = false;
        for part in parts {
            match part {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Interp(e) => {
                    let v = self.eval(e)?;
                    let (v, s) = v.unmark();
                    sensitive |= s;
                    match v {
                        Value::Unknown => unknown = true,
                        Value::String(s) => out.push_str(&s),
                        Value::Int(i) => out.push_str(&i.to_string()),
                        Value::Float(f) => out.push_str(&f.to_string()),
                        Value::Bool(b) => out.push_str(&b.to_string()),
                        other if other.is_unknown_deep() => unknown = true,
                        other => {
                            return Err(err(
                                "P2026",
                                e.span,
                                "cannot interpolate this value",
                                format!("this is {}", article_of_value(&other)),
                                "Only strings, numbers and bools can be interpolated; use `jsonencode(…)` or `join(\",\", …)` for collections, and `coalesce(x, \"\")` for a value that may be null.",
                            ))
                        }
                    }
                }
            }
        }
        if unknown {
            return Ok(Value::Unknown.mark_if(sensitive));
        }
        Ok(Value::String(out).mark_if(sensitive))
    }

    fn traversal(&mut self, expr: &Expr) -> R {
        let Some((root, steps)) = expr.traversal() else {
            return match &expr.kind {
                ExprKind::GetAttr(inner, name) => {
                    let v = self.eval(inner)?;
                    get_attr(v, name)
                }
                ExprKind::Index(inner, key) => {
                    let v = self.eval(inner)?;
                    let k = self.eval(key)?;
                    index(v, k, key.span)
                }
                _ => Ok(Value::Unknown),
            };
        };
        // Evaluate index keys first (they may need `&mut self`), then walk by
        // reference so only the final value is cloned.
        let mut keys: Vec<Option<(Value, Span)>> = Vec::with_capacity(steps.len());
        for step in &steps {
            keys.push(match step {
                TraversalStep::Attr(_) => None,
                TraversalStep::Index(e) => Some((self.eval(e)?, e.span)),
            });
        }
        let Some(mut cur) = self.lookup(&root.name) else {
            let mut names: Vec<&str> = self.ns.vars.keys().map(String::as_str).collect();
            names.extend(self.locals.iter().map(|(n, _)| n.as_str()));
            return Err(err(
                "P2003",
                root.span,
                "unknown name",
                format!("`{}` is not declared", root.name),
                format!("Declare it with `let` or `param`, or reference a resource as `<provider>.<type>.<name>`.{}", suggestion(&root.name, names)),
            ));
        };
        let mut sensitive = false;
        for (step, key) in steps.iter().zip(keys) {
            if let Value::Sensitive(inner) = cur {
                sensitive = true;
                cur = inner;
            }
            if let Value::Unknown = cur {
                return Ok(Value::Unknown.mark_if(sensitive));
            }
            cur = match (step, key) {
                (TraversalStep::Attr(name), _) => match cur {
                    Value::Map(map) => match map.get(&name.name) {
                        Some(v) => v,
                        None => return Err(missing_attr(map, name, sensitive)),
                    },
                    Value::List(items) if name.name.parse::<usize>().is_ok() => {
                        let i = name.name.parse::<usize>().unwrap_or(0);
                        match items.get(i) {
                            Some(v) => v,
                            None => return Err(out_of_range(i as i64, items.len(), name.span, sensitive)),
                        }
                    }
                    other => return Err(no_attrs(other, name)),
                },
                (TraversalStep::Index(_), Some((key, span))) => {
                    let (key, key_sensitive) = key.unmark();
                    sensitive |= key_sensitive;
                    match (cur, key) {
                        (_, Value::Unknown) => return Ok(Value::Unknown.mark_if(sensitive)),
                        (Value::List(items), k) => {
                            let Some(i) = k.as_i64() else {
                                return Err(err(
                                    "P2020",
                                    span,
                                    "invalid index",
                                    format!("this is {}", article_of_value(&k)),
                                    "Lists are indexed by whole numbers from 0.",
                                ));
                            };
                            match usize::try_from(i).ok().and_then(|u| items.get(u)) {
                                Some(v) => v,
                                None => return Err(out_of_range(i, items.len(), span, sensitive)),
                            }
                        }
                        (Value::Map(map), k) => {
                            let Some(ks) = key_string(&k) else {
                                return Err(err(
                                    "P2020",
                                    span,
                                    "invalid key",
                                    format!("this is {}", article_of_value(&k)),
                                    "Objects and maps are indexed by strings.",
                                ));
                            };
                            match map.get(&ks) {
                                Some(v) => v,
                                None if sensitive => return Err(key_not_found_sensitive(span)),
                                None => {
                                    return Err(err(
                                        "P2020",
                                        span,
                                        "key not found",
                                        format!("no key {ks:?}"),
                                        format!("The keys are: {}.{}", preview_keys(map), suggestion(&ks, map.keys().map(String::as_str))),
                                    ))
                                }
                            }
                        }
                        (other, _) => {
                            return Err(err(
                                "P2020",
                                span,
                                "value cannot be indexed",
                                format!("this is {}", article_of_value(other)),
                                "Only lists and maps can be indexed with `[…]`.",
                            ))
                        }
                    }
                }
                (TraversalStep::Index(_), None) => cur,
            };
        }
        Ok(cur.clone().mark_if(sensitive))
    }

    fn binary(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr) -> R {
        let l = self.eval(lhs)?;
        let (l, ls) = l.unmark();
        // Short-circuit: the known left side of && / || may decide.
        match (op, &l) {
            (BinaryOp::And, Value::Bool(false)) => return Ok(Value::Bool(false).mark_if(ls)),
            (BinaryOp::Or, Value::Bool(true)) => return Ok(Value::Bool(true).mark_if(ls)),
            _ => {}
        }
        let r = self.eval(rhs)?;
        let (r, rs) = r.unmark();
        let sensitive = ls || rs;
        if matches!(op, BinaryOp::Eq | BinaryOp::Ne) {
            if l.is_unknown_deep() || r.is_unknown_deep() {
                return Ok(Value::Unknown.mark_if(sensitive));
            }
            let eq = l == r;
            return Ok(Value::Bool(if op == BinaryOp::Eq { eq } else { !eq }).mark_if(sensitive));
        }
        if matches!(l, Value::Unknown) || matches!(r, Value::Unknown) {
            return Ok(Value::Unknown.mark_if(sensitive));
        }
        let type_error = |which: &Expr, v: &Value, want: &str| {
            err(
                "P2024",
                which.span,
                "wrong operand type",
                format!("this is {}", article_of_value(v)),
                format!(
                    "`{}` needs {want}.{}",
                    op.symbol(),
                    if op == BinaryOp::Add && matches!(v, Value::String(_)) { " Join strings with interpolation: \"${a}${b}\"." } else { "" }
                ),
            )
        };
        let out = match op {
            BinaryOp::And | BinaryOp::Or => match (&l, &r) {
                (Value::Bool(a), Value::Bool(b)) => Value::Bool(if op == BinaryOp::And { *a && *b } else { *a || *b }),
                (Value::Bool(_), other) => return Err(type_error(rhs, other, "bools")),
                (other, _) => return Err(type_error(lhs, other, "bools")),
            },
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let a = l.as_f64().ok_or_else(|| type_error(lhs, &l, "numbers"))?;
                let b = r.as_f64().ok_or_else(|| type_error(rhs, &r, "numbers"))?;
                Value::Bool(match op {
                    BinaryOp::Lt => a < b,
                    BinaryOp::Le => a <= b,
                    BinaryOp::Gt => a > b,
                    _ => a >= b,
                })
            }
            _ => {
                if l.as_f64().is_none() {
                    return Err(type_error(lhs, &l, "numbers"));
                }
                if r.as_f64().is_none() {
                    return Err(type_error(rhs, &r, "numbers"));
                }
                arithmetic(op, &l, &r).map_err(|e| match e {
                    ArithError::Overflow => overflow(lhs.span.to(rhs.span)),
                    ArithError::Other(msg) => err("P2027", rhs.span, "arithmetic error", msg, "Check the operands of this operation."),
                })?
            }
        };
        Ok(out.mark_if(sensitive))
    }

    fn call(&mut self, name: &Ident, args: &[Expr], span: Span) -> R {
        match (name.name.as_str(), args) {
            // Internal: what the component rewriter writes (see eval::components).
            ("__unknown", []) => return Ok(Value::Unknown),
            ("__in_module", [dir, path]) => {
                let dir = self.eval(dir)?;
                let (path, sensitive) = self.eval(path)?.unmark();
                return Ok(match (dir.as_str(), path) {
                    (Some(d), Value::String(p)) if !p.starts_with('/') => Value::String(format!("{}/{p}", d.trim_end_matches('/'))),
                    (_, other) => other,
                }
                .mark_if(sensitive));
            }
            _ => {}
        }
        let Some((min, max)) = functions::arity(&name.name) else {
            return Err(err(
                "P2021",
                name.span,
                "unknown function",
                format!("`{}` is not a function", name.name),
                format!("See docs/language.md for the standard functions.{}", suggestion(&name.name, functions::FUNCTION_NAMES.iter().copied())),
            ));
        };
        if args.len() < min || max.is_some_and(|m| args.len() > m) {
            let expected = match max {
                Some(m) if m == min => format!("{min}"),
                Some(m) => format!("{min} to {m}"),
                None => format!("at least {min}"),
            };
            return Err(err(
                "P2021",
                span,
                "wrong number of arguments",
                format!("{} given", args.len()),
                format!("`{}` takes {expected} argument{}.", name.name, if expected == "1" { "" } else { "s" }),
            ));
        }
        let mut values = Vec::with_capacity(args.len());
        let mut sensitive = false;
        let mut unknown = false;
        for a in args {
            let v = self.eval(a)?;
            let (v, s) = v.unmark();
            sensitive |= s;
            unknown |= v.is_unknown_deep();
            values.push(v);
        }
        if unknown {
            return Ok(Value::Unknown.mark_if(sensitive));
        }
        match functions::call(&name.name, values, self.host) {
            Ok(v) => {
                limits::charge(1 + limits::size_of(&v)).map_err(|stop| limits::diagnostic(stop, Some(span)))?;
                Ok(v.mark_if(sensitive))
            }
            Err(e) => {
                let at = e.arg.and_then(|i| args.get(i)).map(|a| a.span).unwrap_or(span);
                if let Some(d) = e.diagnostic {
                    // A function's own diagnostic (template errors): keep
                    // its code, point at the call. Template messages never
                    // contain variable values.
                    return Err(d.label(at, format!("in this call to `{}`", name.name)));
                }
                // Never echo a sensitive argument's content in a message.
                let message = if sensitive { "the function rejected a sensitive argument".to_string() } else { e.message };
                Err(err(
                    "P2022",
                    at,
                    format!("call to `{}` failed", name.name),
                    message,
                    format!("Check the arguments of `{}` (docs/language.md lists each function).", name.name),
                ))
            }
        }
    }
}

fn split_mark(v: Value) -> (Value, bool) {
    match v {
        Value::Sensitive(inner) => (*inner, true),
        v => (v, false),
    }
}

/// Key/value pairs of a collection for for-expressions; None when unknown.
fn iter_pairs(coll: Value, span: Span) -> Result<Option<Vec<(Value, Value)>>, Diagnostic> {
    match coll {
        Value::Unknown => Ok(None),
        Value::List(items) => Ok(Some(items.into_iter().enumerate().map(|(i, v)| (Value::Int(i as i64), v)).collect())),
        Value::Map(map) => Ok(Some(sorted_entries(map).into_iter().map(|(k, v)| (Value::String(k), v)).collect())),
        Value::Null => Ok(Some(vec![])),
        other => {
            Err(err("P2024", span, "cannot iterate", format!("this is {}", article_of_value(&other)), "A `for` expression iterates over a list or a map."))
        }
    }
}

/// The entries of a map in lexical key order: every iteration over a map
/// (`for`, splats, `keys()`, `values()`, template loops) walks it this way,
/// as Terraform does, so `zipmap(keys(m), [for k, v in m : v])` is `m`.
pub fn sorted_entries(map: Map) -> Vec<(String, Value)> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// Whole-number arithmetic that leaves the 64-bit range is an error, never a
/// silent float (see docs/language.md, "Numbers").
fn overflow(span: Span) -> Diagnostic {
    err(
        "P2140",
        span,
        "integer overflow",
        "the result does not fit in a 64-bit integer",
        "Whole numbers range from -9223372036854775808 to 9223372036854775807; Terraform would compute the exact value, Plinth refuses rather than lose precision. Use smaller numbers or floats (e.g. `1.0 * x`).",
    )
}

enum ArithError {
    Overflow,
    Other(String),
}

pub fn key_string(v: &Value) -> Option<String> {
    match v.peel() {
        Value::String(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_attr(v: Value, name: &Ident) -> R {
    let (v, sensitive) = split_mark(v);
    match v {
        Value::Unknown => Ok(Value::Unknown.mark_if(sensitive)),
        Value::Map(mut map) => match map.shift_remove(&name.name) {
            Some(x) => Ok(x.mark_if(sensitive)),
            None => Err(missing_attr(&map, name, sensitive)),
        },
        other => Err(no_attrs(&other, name)),
    }
}

fn index(v: Value, key: Value, span: Span) -> R {
    let (v, s1) = split_mark(v);
    let (key, s2) = key.unmark();
    let sensitive = s1 || s2;
    match (v, key) {
        (Value::Unknown, _) | (_, Value::Unknown) => Ok(Value::Unknown.mark_if(sensitive)),
        (Value::List(items), k) => {
            let Some(i) = k.as_i64() else {
                return Err(err("P2020", span, "invalid index", format!("this is {}", article_of_value(&k)), "Lists are indexed by whole numbers from 0."));
            };
            let len = items.len();
            match usize::try_from(i).ok().and_then(|u| items.into_iter().nth(u)) {
                Some(v) => Ok(v.mark_if(sensitive)),
                None => Err(out_of_range(i, len, span, sensitive)),
            }
        }
        (Value::Map(mut map), k) => {
            let Some(ks) = key_string(&k) else {
                return Err(err("P2020", span, "invalid key", format!("this is {}", article_of_value(&k)), "Objects and maps are indexed by strings."));
            };
            match map.shift_remove(&ks) {
                Some(v) => Ok(v.mark_if(sensitive)),
                None if sensitive => Err(key_not_found_sensitive(span)),
                None => Err(err("P2020", span, "key not found", format!("no key {ks:?}"), format!("The keys are: {}.", preview_keys(&map)))),
            }
        }
        (other, _) => Err(err(
            "P2020",
            span,
            "value cannot be indexed",
            format!("this is {}", article_of_value(&other)),
            "Only lists and maps can be indexed with `[…]`.",
        )),
    }
}

fn preview_keys(map: &Map) -> String {
    if map.is_empty() {
        return "none (the map is empty)".into();
    }
    let mut keys: Vec<String> = map.keys().take(10).map(|k| format!("{k:?}")).collect();
    if map.len() > 10 {
        keys.push(format!("… ({} in all)", map.len()));
    }
    keys.join(", ")
}

/// A lookup in a sensitive map, or with a sensitive key, that found
/// nothing: neither the key nor the map's keys are shown.
fn key_not_found_sensitive(span: Span) -> Diagnostic {
    err(
        "P2020",
        span,
        "key not found",
        "the key, or the map, is sensitive",
        "The key is not in the map; neither is shown because they are built from sensitive values. Check the key with `contains(keys(m), k)` or use `lookup(m, k, default)`.",
    )
}

fn missing_attr(map: &Map, name: &Ident, sensitive: bool) -> Diagnostic {
    if sensitive {
        return err(
            "P2006",
            name.span,
            "unsupported attribute",
            format!("no attribute `{}`", name.name),
            "This object is sensitive, so its attributes are not listed.",
        );
    }
    err(
        "P2006",
        name.span,
        "unsupported attribute",
        format!("no attribute `{}`", name.name),
        format!(
            "This object has {}.{}",
            if map.is_empty() {
                "no attributes".to_string()
            } else {
                format!("the attributes {}", map.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
            },
            suggestion(&name.name, map.keys().map(String::as_str))
        ),
    )
}

fn no_attrs(v: &Value, name: &Ident) -> Diagnostic {
    let hint = if matches!(v, Value::List(_)) {
        " To read an attribute of every element, use a splat: `x[*].name`; for one element, index it first: `x[0].name`."
    } else {
        ""
    };
    err("P2006", name.span, "unsupported attribute", format!("{} has no attributes", article_of_value(v)), format!("Only objects have attributes.{hint}"))
}

fn out_of_range(i: i64, len: usize, span: Span, sensitive: bool) -> Diagnostic {
    if sensitive {
        return err(
            "P2020",
            span,
            "index out of range",
            "the index, or the list, is sensitive",
            "The index is outside the list; neither is shown because they are built from sensitive values.",
        );
    }
    err(
        "P2020",
        span,
        "index out of range",
        format!("index {i}, but the list has {len} element{}", if len == 1 { "" } else { "s" }),
        "Valid indexes run from 0 to length - 1.",
    )
}

fn arithmetic(op: BinaryOp, l: &Value, r: &Value) -> Result<Value, ArithError> {
    if let (Value::Int(a), Value::Int(b)) = (l, r) {
        let (a, b) = (*a, *b);
        let checked = match op {
            BinaryOp::Add => a.checked_add(b),
            BinaryOp::Sub => a.checked_sub(b),
            BinaryOp::Mul => a.checked_mul(b),
            BinaryOp::Div => {
                if b == 0 {
                    return Err(ArithError::Other("division by zero".into()));
                }
                // `i64::MIN / -1` (and `% -1`) overflow: checked, never a panic.
                match a.checked_rem(b) {
                    Some(0) => a.checked_div(b),
                    Some(_) => return Ok(Value::Float(a as f64 / b as f64)),
                    None => None,
                }
            }
            BinaryOp::Mod => {
                if b == 0 {
                    return Err(ArithError::Other("modulo by zero".into()));
                }
                // `i64::MIN % -1` is 0 mathematically.
                Some(a.checked_rem(b).unwrap_or(0))
            }
            _ => None,
        };
        return checked.map(Value::Int).ok_or(ArithError::Overflow);
    }
    let other = |m: &str| ArithError::Other(m.to_string());
    let a = l.as_f64().unwrap_or(0.0);
    let b = r.as_f64().unwrap_or(0.0);
    let v = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => {
            if b == 0.0 {
                return Err(other("division by zero"));
            }
            a / b
        }
        BinaryOp::Mod => {
            if b == 0.0 {
                return Err(other("modulo by zero"));
            }
            a % b
        }
        _ => 0.0,
    };
    if !v.is_finite() {
        return Err(other("the result is not a finite number"));
    }
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Ok(Value::Int(v as i64))
    } else {
        Ok(Value::Float(v))
    }
}
