//! Templates: text with Plinth expressions between delimiters — the
//! gomplate replacement (`docs/language.md`, "Templates").
//!
//! Input → output: a template's text, its variables (`vars`) and
//! environment map (`env`) → the rendered text, or `Value::Unknown` when a
//! value it uses is not known yet (plans render before apply), marked
//! sensitive when a sensitive value was used.
//!
//! Invariants: no IO of its own (functions called from a template go
//! through the caller's [`FnHost`]); linear in the size of the template
//! (the lexer and the block parser are loops, not recursion; only the
//! evaluation of nested `if`/`for` blocks recurses, and nesting is capped
//! at [`MAX_NESTING`]); never an empty string for a missing variable.
//! Template text is not part of the engine's `Sources`, so diagnostics
//! carry `file:line:column` in their help and a note instead of a span.

use crate::diagnostic::Diagnostic;
use crate::eval::expr::{Evaluator, Namespace};
use crate::eval::functions::FnHost;
use crate::syntax::ast::Expr;
use crate::value::Value;
use std::cell::Cell;

/// Deepest nesting of `if`/`for` blocks a template may have.
pub const MAX_NESTING: usize = 100;
/// Deepest nesting of templates rendering templates (`template()` called
/// from inside a template).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// The markers around a tag. Default: `{{` and `}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delimiters {
    pub open: String,
    pub close: String,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters { open: "{{".into(), close: "}}".into() }
    }
}

impl Delimiters {
    pub fn new(open: impl Into<String>, close: impl Into<String>) -> Delimiters {
        Delimiters { open: open.into(), close: close.into() }
    }

    /// Checks that both markers are usable: non-empty, no whitespace.
    pub fn validate(&self) -> Result<(), Diagnostic> {
        let bad = |d: &str| d.is_empty() || d.chars().any(char::is_whitespace);
        if bad(&self.open) || bad(&self.close) {
            return Err(Diagnostic::new("P2076", "invalid template delimiters").help(format!(
                "Delimiters must be two non-empty strings without whitespace, such as [\"{{{{\", \"}}}}\"] or [\"{{{{{{\", \"}}}}}}\"]; got {:?} and {:?}.",
                self.open, self.close
            )));
        }
        Ok(())
    }

    /// Delimiters from a value: a list of exactly two strings.
    pub fn from_value(v: &Value) -> Result<Delimiters, Diagnostic> {
        let invalid = || {
            Diagnostic::new("P2076", "invalid template delimiters")
                .help("Give the delimiters as a list of two strings, the opening and the closing marker: [\"{{{\", \"}}}\"].")
        };
        match v.peel() {
            Value::List(items) if items.len() == 2 => {
                let open = items[0].as_str().ok_or_else(invalid)?;
                let close = items[1].as_str().ok_or_else(invalid)?;
                let d = Delimiters::new(open, close);
                d.validate()?;
                Ok(d)
            }
            _ => Err(invalid()),
        }
    }
}

thread_local! {
    static INCLUDE_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Renders `text` (the template named `name`, for messages) with `vars` and
/// `env`. See the module documentation.
pub fn render(name: &str, text: &str, delims: &Delimiters, vars: &Value, env: &Value, host: &mut dyn FnHost) -> Result<Value, Diagnostic> {
    delims.validate()?;
    let depth = INCLUDE_DEPTH.with(|d| d.get());
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(Diagnostic::new("P2075", "templates nested too deeply").help(format!(
            "{name}: templates that render templates may nest at most {MAX_INCLUDE_DEPTH} levels; a template probably renders itself through `template()`."
        )));
    }
    let src = Source { name, text };
    let nodes = parse(&src, delims)?;
    let ns = namespace(vars, env);
    let mut host = EnvHost { inner: host, env, read_sensitive: false };
    INCLUDE_DEPTH.with(|d| d.set(depth + 1));
    let mut r = Renderer { src: &src, ev: Evaluator::new(&ns, &mut host), out: String::with_capacity(text.len()), unknown: false, sensitive: false };
    let result = r.nodes(&nodes);
    INCLUDE_DEPTH.with(|d| d.set(depth));
    result?;
    let (out, sensitive) = (if r.unknown { Value::Unknown } else { Value::String(r.out) }, r.sensitive);
    Ok(out.mark_if(sensitive || host.read_sensitive))
}

/// The host a template's functions see: `env("X")` reads the `env` the
/// template was given (never the process environment); files go through
/// the caller's host, confinement included.
struct EnvHost<'h, 'e> {
    inner: &'h mut dyn FnHost,
    env: &'e Value,
    /// An `env("X")` call returned a sensitive value.
    read_sensitive: bool,
}

impl FnHost for EnvHost<'_, '_> {
    fn env(&mut self, name: &str) -> Option<String> {
        let Value::Map(map) = self.env.peel() else { return None };
        let value = map.get(name)?;
        self.read_sensitive |= matches!(self.env, Value::Sensitive(_)) || value.is_sensitive_deep();
        value.peel().as_str().map(str::to_string)
    }
    fn confine(&mut self, path: &str) -> Result<(), String> {
        self.inner.confine(path)
    }
    fn read_file(&mut self, path: &str) -> Result<String, String> {
        self.inner.read_file(path)
    }
    fn fileset(&mut self, dir: &str, pattern: &str) -> Result<Vec<String>, String> {
        self.inner.fileset(dir, pattern)
    }
}

/// `vars` and `env` by name, and every top-level key of `vars` as a bare
/// name (`vars` and `env` win over keys of the same name).
fn namespace(vars: &Value, env: &Value) -> Namespace {
    let mut ns = Namespace::default();
    if let Value::Map(map) = vars.peel() {
        let sensitive = matches!(vars, Value::Sensitive(_));
        for (k, v) in map {
            ns.set(k, v.clone().mark_if(sensitive));
        }
    }
    ns.set("vars", vars.clone());
    ns.set("env", env.clone());
    ns
}

// ---------------------------------------------------------------------------
// Positions and diagnostics
// ---------------------------------------------------------------------------

struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let upto = &self.text[..offset];
        let line = upto.matches('\n').count() + 1;
        let col = upto.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        (line, col)
    }

    fn at(&self, offset: usize) -> String {
        let (line, col) = self.line_col(offset);
        format!("{}:{line}:{col}", self.name)
    }

    /// A template diagnostic located at `offset`: `file:line:column` leads
    /// the help and is repeated as a note.
    fn error(&self, code: &'static str, summary: &str, offset: usize, help: impl AsRef<str>) -> Diagnostic {
        let at = self.at(offset);
        let (line, col) = self.line_col(offset);
        Diagnostic::new(code, summary).help(format!("{at}: {}", help.as_ref())).note(format!("in template {}, line {line}, column {col}", self.name))
    }
}

// ---------------------------------------------------------------------------
// Lexing: text and tags
// ---------------------------------------------------------------------------

enum Token<'t> {
    Text(&'t str),
    /// `content` without delimiters and trim markers; `open_at` is the
    /// byte offset of the opening marker.
    Tag {
        content: &'t str,
        open_at: usize,
    },
}

/// Splits the template into text and tags, applying `{{-`/`-}}` trimming.
fn lex<'t>(src: &Source<'t>, delims: &Delimiters) -> Result<Vec<Token<'t>>, Diagnostic> {
    let text = src.text;
    let bytes = text.as_bytes();
    let open = delims.open.as_str();
    let close = delims.close.as_str();
    let mut tokens = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    while pos <= text.len() {
        let Some(found) = text[pos..].find(open) else {
            let rest = &text[pos..];
            tokens.push(Token::Text(if trim_next { rest.trim_start() } else { rest }));
            break;
        };
        let open_at = pos + found;
        let mut literal = &text[pos..open_at];
        if trim_next {
            literal = literal.trim_start();
        }
        let mut start = open_at + open.len();
        // `{{-` followed by whitespace trims the text before the tag.
        if bytes.get(start) == Some(&b'-') && bytes.get(start + 1).is_some_and(u8::is_ascii_whitespace) {
            literal = literal.trim_end();
            start += 1;
        }
        tokens.push(Token::Text(literal));
        let Some(end) = find_close(text, start, close) else {
            return Err(src.error(
                "P2070",
                "unterminated template tag",
                open_at,
                format!("this `{open}` has no matching `{close}`; close the tag (a string inside it must close its quotes too)."),
            ));
        };
        let mut content = &text[start..end];
        trim_next = false;
        // Whitespace then `-` before the closing marker trims the text after it.
        if let Some(stripped) = content.strip_suffix('-') {
            if stripped.ends_with(|c: char| c.is_whitespace()) {
                content = stripped;
                trim_next = true;
            }
        }
        tokens.push(Token::Tag { content, open_at });
        pos = end + close.len();
    }
    Ok(tokens)
}

/// Offset of the closing marker of a tag whose content starts at `start`:
/// the first one outside a string literal and outside brackets, so that
/// `{{ {a = {b = 1}} }}` and `{{ "}}" }}` work.
fn find_close(text: &str, start: usize, close: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = start;
    let rest = &text[start..];
    let body = rest.trim_start();
    if body.starts_with("/*") {
        // A comment: ends at the first `*/`, whatever it holds.
        let comment_start = start + (rest.len() - body.len());
        let end = comment_start + body.find("*/")? + 2;
        return text[end..].find(close).map(|j| end + j);
    }
    let mut depth = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if depth == 0 && bytes[i..].starts_with(close.as_bytes()) {
            return Some(i);
        }
        match b {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

// ---------------------------------------------------------------------------
// Parsing: blocks
// ---------------------------------------------------------------------------

/// An expression of a tag, with the byte offset of its text in the template.
struct TagExpr {
    expr: Expr,
    at: usize,
}

enum Node {
    Text(String),
    Expr(TagExpr),
    If { arms: Vec<(TagExpr, Vec<Node>)>, otherwise: Option<Vec<Node>> },
    For { key: Option<String>, value: String, collection: TagExpr, body: Vec<Node> },
}

enum OpenBlock {
    /// `cond` is None once inside the `else` branch.
    If {
        arms: Vec<(TagExpr, Vec<Node>)>,
        cond: Option<TagExpr>,
    },
    For {
        key: Option<String>,
        value: String,
        collection: TagExpr,
    },
}

struct Frame {
    block: OpenBlock,
    open_at: usize,
    nodes: Vec<Node>,
}

/// Offset in the template of the text `inner` (a subslice of `src.text`).
fn offset_of(src: &Source, inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(src.text.as_ptr() as usize)
}

/// The keyword argument: `rest` when `content` is `kw rest` (keyword then
/// whitespace or an opening parenthesis).
fn keyword<'c>(content: &'c str, kw: &str) -> Option<&'c str> {
    let rest = content.strip_prefix(kw)?;
    if rest.is_empty() {
        return Some(rest);
    }
    if rest.starts_with(|c: char| c.is_whitespace() || c == '(' || c == '!') {
        Some(rest)
    } else {
        None
    }
}

fn parse(src: &Source, delims: &Delimiters) -> Result<Vec<Node>, Diagnostic> {
    let tokens = lex(src, delims)?;
    let mut root: Vec<Node> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for token in tokens {
        let (content, open_at) = match token {
            Token::Text(t) => {
                if !t.is_empty() {
                    let nodes = stack.last_mut().map(|f| &mut f.nodes).unwrap_or(&mut root);
                    nodes.push(Node::Text(t.to_string()));
                }
                continue;
            }
            Token::Tag { content, open_at, .. } => (content, open_at),
        };
        let trimmed = content.trim();
        let word_at = offset_of(src, trimmed);
        if trimmed.starts_with("/*") && trimmed.ends_with("*/") && trimmed.len() >= 4 {
            continue; // a comment
        }
        if trimmed.is_empty() {
            return Err(src.error(
                "P2072",
                "invalid template expression",
                open_at,
                "this tag is empty; put an expression between the delimiters, or remove them.",
            ));
        }
        if trimmed == "end" {
            let Some(frame) = stack.pop() else {
                return Err(src.error(
                    "P2071",
                    "unbalanced template block",
                    word_at,
                    "this `end` closes no `if` or `for`; remove it or open the block it was meant to close.",
                ));
            };
            let node = match frame.block {
                OpenBlock::If { mut arms, cond } => match cond {
                    Some(cond) => {
                        arms.push((cond, frame.nodes));
                        Node::If { arms, otherwise: None }
                    }
                    None => Node::If { arms, otherwise: Some(frame.nodes) },
                },
                OpenBlock::For { key, value, collection } => Node::For { key, value, collection, body: frame.nodes },
            };
            stack.last_mut().map(|f| &mut f.nodes).unwrap_or(&mut root).push(node);
            continue;
        }
        if let Some(rest) = keyword(trimmed, "else") {
            let rest = rest.trim();
            let new_cond = match keyword(rest, "if") {
                Some(cond) if !cond.trim().is_empty() => Some(parse_expr(src, cond)?),
                Some(_) => return Err(src.error("P2071", "unbalanced template block", word_at, "`else if` needs a condition: `else if x > 1`.")),
                None if rest.is_empty() => None,
                None => {
                    return Err(src.error(
                        "P2071",
                        "unbalanced template block",
                        word_at,
                        "after `else` only `if <condition>` may follow: write `else` or `else if <condition>`.",
                    ));
                }
            };
            let Some(Frame { block: OpenBlock::If { arms, cond }, nodes, .. }) = stack.last_mut() else {
                return Err(src.error(
                    "P2071",
                    "unbalanced template block",
                    word_at,
                    "this `else` is not inside an `if` block; `else` belongs between `if` and `end`.",
                ));
            };
            let Some(previous) = cond.take() else {
                return Err(src.error(
                    "P2071",
                    "unbalanced template block",
                    word_at,
                    "this `if` already has an `else`; `else if` and `else` must come before the final `else`.",
                ));
            };
            arms.push((previous, std::mem::take(nodes)));
            *cond = new_cond;
            continue;
        }
        let block = if let Some(cond) = keyword(trimmed, "if") {
            if cond.trim().is_empty() {
                return Err(src.error("P2071", "unbalanced template block", word_at, "`if` needs a condition: `if enabled`."));
            }
            Some(OpenBlock::If { arms: Vec::new(), cond: Some(parse_expr(src, cond)?) })
        } else if let Some(header) = keyword(trimmed, "for") {
            Some(parse_for(src, header, word_at)?)
        } else {
            None
        };
        match block {
            Some(block) => {
                if stack.len() >= MAX_NESTING {
                    return Err(src.error(
                        "P2075",
                        "template blocks nested too deeply",
                        word_at,
                        format!("`if` and `for` blocks may nest at most {MAX_NESTING} levels; split the template."),
                    ));
                }
                stack.push(Frame { block, open_at: word_at, nodes: Vec::new() });
            }
            None => {
                let expr = parse_expr(src, content)?;
                stack.last_mut().map(|f| &mut f.nodes).unwrap_or(&mut root).push(Node::Expr(expr));
            }
        }
    }
    if let Some(frame) = stack.last() {
        let what = match frame.block {
            OpenBlock::If { .. } => "if",
            OpenBlock::For { .. } => "for",
        };
        return Err(src.error(
            "P2071",
            "unbalanced template block",
            frame.open_at,
            format!("this `{what}` has no `end`; close it with `{} end {}`.", delims.open, delims.close),
        ));
    }
    Ok(root)
}

/// `x in xs` or `k, v in m`.
fn parse_for(src: &Source, header: &str, word_at: usize) -> Result<OpenBlock, Diagnostic> {
    let bad = || src.error("P2071", "invalid `for` block", word_at, "write `for x in list`, or `for key, value in map` (`for index, item in list`).");
    let header_trimmed = header.trim_start();
    let Some(in_pos) = find_in_keyword(header_trimmed) else { return Err(bad()) };
    let names = &header_trimmed[..in_pos];
    let collection = &header_trimmed[in_pos + 2..];
    if collection.trim().is_empty() {
        return Err(bad());
    }
    let idents: Vec<&str> = names.split(',').map(str::trim).collect();
    let is_ident = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !idents.iter().all(|s| is_ident(s)) {
        return Err(bad());
    }
    let (key, value) = match idents.as_slice() {
        [v] => (None, v.to_string()),
        [k, v] => (Some(k.to_string()), v.to_string()),
        _ => return Err(bad()),
    };
    Ok(OpenBlock::For { key, value, collection: parse_expr(src, collection)? })
}

/// Byte offset of the keyword `in` (surrounded by whitespace) in a `for` header.
fn find_in_keyword(header: &str) -> Option<usize> {
    let bytes = header.as_bytes();
    let mut i = 0;
    while i + 2 <= bytes.len() {
        if &bytes[i..i + 2] == b"in" && i > 0 && bytes[i - 1].is_ascii_whitespace() && bytes.get(i + 2).is_none_or(|b| b.is_ascii_whitespace()) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Rewrites gomplate's `.Env.X` / `.Values.x` to `env.X` / `vars.x`,
/// keeping every byte offset (the replacement is padded with spaces in
/// front), so positions in errors stay those of the template.
fn gomplate_compat(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(".Env") && !text.contains(".Values") {
        return std::borrow::Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_string = false;
    let mut last = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'.' {
            // Only at the start of a reference: not after a name, a closing
            // bracket or a digit (`a.Env`, `x[0].Env`, `1.5`).
            let prev = text[..i].trim_end().as_bytes().last().copied();
            let starts_reference = !prev.is_some_and(|p| p.is_ascii_alphanumeric() || p == b'_' || p == b'-' || p == b')' || p == b']' || p == b'"');
            if starts_reference {
                for (word, replacement) in [("Env", "env"), ("Values", "vars")] {
                    let after = i + 1 + word.len();
                    if text[i + 1..].starts_with(word) && !bytes.get(after).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                        out.push_str(&text[last..i]);
                        let pad = 1 + word.len() - replacement.len();
                        out.extend(std::iter::repeat_n(' ', pad));
                        out.push_str(replacement);
                        last = after;
                        break;
                    }
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    std::borrow::Cow::Owned(out)
}

/// Parses the expression text `inner` (a subslice of the template).
fn parse_expr(src: &Source, inner: &str) -> Result<TagExpr, Diagnostic> {
    let inner = inner.trim_start();
    let at = offset_of(src, inner);
    let rewritten = gomplate_compat(inner);
    const PREFIX: &str = "v = ";
    let wrapped = format!("{PREFIX}{}", rewritten.trim_end());
    let to_template = |offset: u32| at + (offset as usize).saturating_sub(PREFIX.len());
    match crate::syntax::parse_assignments(0, &wrapped) {
        Ok(mut attrs) if attrs.len() == 1 => match attrs.pop() {
            // Spans keep the `v = ` offset; `Renderer::expr_error` maps
            // them back to the template.
            Some(attr) => Ok(TagExpr { expr: attr.value, at }),
            None => Err(src.error("P2072", "invalid template expression", at, "expected one expression.")),
        },
        Ok(_) => Err(src.error("P2072", "invalid template expression", at, "a tag holds one expression; this looks like several lines of assignments.")),
        Err(diags) => {
            let first = diags.into_iter().next();
            let offset = first.as_ref().and_then(|d| d.primary_span()).map(|s| to_template(s.start)).unwrap_or(at);
            let detail = first
                .map(|d| {
                    let label = d.labels.first().map(|l| l.text.clone()).unwrap_or_default();
                    if label.is_empty() {
                        d.message
                    } else {
                        format!("{}: {label}", d.message)
                    }
                })
                .unwrap_or_else(|| "not an expression".into());
            Err(src.error(
                "P2072",
                "invalid template expression",
                offset,
                format!("{detail}. Between the delimiters goes one Plinth expression (`name`, `vars.a.b`, `upper(env.X)`) or `if`/`else`/`end`/`for`."),
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

struct Renderer<'a, 's> {
    src: &'a Source<'s>,
    ev: Evaluator<'a>,
    out: String,
    unknown: bool,
    sensitive: bool,
}

impl Renderer<'_, '_> {
    fn nodes(&mut self, nodes: &[Node]) -> Result<(), Diagnostic> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Expr(tag) => {
                    let v = self.eval(tag)?;
                    self.emit(v);
                }
                Node::If { arms, otherwise } => {
                    let mut chosen = otherwise.as_deref();
                    for (cond, body) in arms {
                        match self.eval(cond)? {
                            Value::Bool(true) => {
                                chosen = Some(body);
                                break;
                            }
                            Value::Bool(false) => {}
                            Value::Unknown => {
                                // Which branch is unknown: so is the result.
                                self.unknown = true;
                                chosen = None;
                                break;
                            }
                            other => {
                                return Err(self.src.error(
                                    "P2074",
                                    "template expression failed",
                                    cond.at,
                                    format!(
                                        "the condition of this `if` is {}, not a bool; compare explicitly, e.g. `x != \"\"` or `length(xs) > 0`.",
                                        crate::eval::types::article_of_value(&other)
                                    ),
                                ))
                            }
                        }
                    }
                    if let Some(body) = chosen {
                        self.nodes(body)?;
                    }
                }
                Node::For { key, value, collection, body } => {
                    let pairs: Vec<(Value, Value)> = match self.eval(collection)? {
                        Value::Unknown => {
                            self.unknown = true;
                            continue;
                        }
                        Value::Null => Vec::new(),
                        Value::List(items) => items.into_iter().enumerate().map(|(i, v)| (Value::Int(i as i64), v)).collect(),
                        Value::Map(map) => crate::eval::expr::sorted_entries(map).into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
                        other => {
                            return Err(self.src.error(
                                "P2074",
                                "template expression failed",
                                collection.at,
                                format!("`for` iterates over a list or a map, but this is {}.", crate::eval::types::article_of_value(&other)),
                            ))
                        }
                    };
                    // One unit per iteration and per 64 bytes it wrote.
                    let mut written = self.out.len();
                    for (k, v) in pairs {
                        let grown = self.out.len().saturating_sub(written) / 64;
                        written = self.out.len();
                        if let Err(stop) = crate::eval::limits::charge(1 + grown as u64) {
                            let d = crate::eval::limits::diagnostic(stop, None);
                            let help = d.help.clone();
                            return Err(self.src.error(d.code, "template rendering stopped", collection.at, help));
                        }
                        let mut bound = 1;
                        if let Some(key) = key {
                            self.ev.push_local(key, k);
                            bound += 1;
                        }
                        self.ev.push_local(value, v);
                        let result = self.nodes(body);
                        for _ in 0..bound {
                            self.ev.pop_local();
                        }
                        result?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Evaluates a tag; the result has no sensitive mark (recorded instead)
    /// and is `Unknown` when anything in it is.
    fn eval(&mut self, tag: &TagExpr) -> Result<Value, Diagnostic> {
        let v = self.ev.eval(&tag.expr).map_err(|d| self.expr_error(tag, d))?;
        let (v, sensitive) = v.unmark();
        self.sensitive |= sensitive;
        if v.is_unknown_deep() {
            return Ok(Value::Unknown);
        }
        Ok(v)
    }

    fn emit(&mut self, v: Value) {
        match v {
            Value::Unknown => self.unknown = true,
            Value::Null => {}
            Value::String(s) => self.out.push_str(&s),
            Value::Int(i) => self.out.push_str(&i.to_string()),
            Value::Float(f) => self.out.push_str(&f.to_string()),
            Value::Bool(b) => self.out.push_str(if b { "true" } else { "false" }),
            other @ (Value::List(_) | Value::Map(_)) => self.out.push_str(&other.to_json().to_string()),
            Value::Sensitive(inner) => {
                self.sensitive = true;
                self.emit(*inner);
            }
        }
    }

    /// Turns an evaluation error into a template diagnostic at the position
    /// of its subject in the template.
    fn expr_error(&self, tag: &TagExpr, d: Diagnostic) -> Diagnostic {
        let offset = d.primary_span().map(|s| tag.at + (s.start as usize).saturating_sub(4)).unwrap_or(tag.at);
        let label = d.labels.first().map(|l| l.text.clone()).unwrap_or_default();
        let missing = d.code == "P2003" || (d.code == "P2006" && label.starts_with("no attribute")) || d.message == "key not found";
        let detail = if label.is_empty() { d.message.clone() } else { format!("{}: {label}", d.message) };
        if missing {
            // The engine's advice on undeclared names (`let`, `param`) does
            // not apply inside a template; its "Did you mean" does.
            let extra = match (d.code, d.help.find("Did you mean")) {
                ("P2003", Some(i)) => format!(" {}", &d.help[i..]),
                ("P2003", None) => String::new(),
                _ if d.help.is_empty() => String::new(),
                _ => format!(" {}", d.help),
            };
            self.src
                .error(
                    "P2073",
                    "missing template variable",
                    offset,
                    format!(
                        "{detail}. A template never renders a missing value as empty: pass it in `vars` (or `env` for `.Env.X`/`env.X`), or give a fallback with `lookup(map, \"key\", default)`.{extra}"
                    ),
                )
                .note(format!("the expression failed with {}", d.code))
        } else if d.code == crate::eval::functions::OUTSIDE_CODE {
            // A refused read keeps its code (what CI and the docs name).
            self.src.error(d.code, &d.message, offset, &d.help)
        } else if d.code.starts_with("P207") {
            // From a template rendered by `template()` inside this one: its
            // own position is in its help; the label's span would point
            // into this tag's wrapped text, so it goes.
            let (line, col) = self.src.line_col(offset);
            let mut d = d;
            d.labels.clear();
            d.note(format!("rendered from template {}, line {line}, column {col}", self.src.name))
        } else {
            let extra = if d.help.is_empty() { String::new() } else { format!(" {}", d.help) };
            self.src.error("P2074", "template expression failed", offset, format!("{detail}.{extra}")).note(format!("the expression failed with {}", d.code))
        }
    }
}

#[cfg(test)]
mod tests;
