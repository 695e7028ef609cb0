//! Stage `syntax`: text → AST with spans.
//!
//! Invariants: this module knows nothing past the AST. `pest::Pair` and
//! `Rule` never leave it: [`parse_file`] is a small function calling pest and a
//! larger one turning pairs into [`ast`] nodes. Every grammar rule has a human
//! name in [`rule_name`] (a `match` with no wildcard arm, so a new rule does not
//! compile until someone names it). No IO.
//!
//! Pathological input is rejected before pest sees it: nesting deeper than
//! [`MAX_DEPTH`] is a `P1003` diagnostic, so neither the parser nor the tree
//! builder can exhaust the stack.

pub mod ast;
pub mod fmt;
pub mod lexical;

use crate::diagnostic::{Diagnostic, Diags, FileId, Span};
use ast::*;
use pest::iterators::Pair;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "../../../grammar/plinth.pest"]
struct PlinthParser;

/// Deepest nesting of brackets, parentheses, braces and interpolations a file
/// may have. Real configurations stay far below; deeper input is refused with
/// a diagnostic rather than risking the stack.
pub const MAX_DEPTH: usize = 200;
/// Longest chain of binary operators in one expression (a left-deep tree).
pub const MAX_OPERATORS: usize = 2_000;

/// Files larger than this are parsed in chunks of whole declarations, so
/// that pest's token queue never holds more than one chunk (at 50,000
/// resources the whole-file queue dominated peak memory).
const CHUNK_BYTES: usize = 64 * 1024;

/// Parses a configuration file (declarations).
pub fn parse_file(file: FileId, text: &str) -> Result<File, Diags> {
    precheck(file, text)?;
    if text.len() > CHUNK_BYTES {
        if let Some(parsed) = parse_in_chunks(file, text) {
            return parsed;
        }
    }
    parse_items(file, text, 0).map_err(|e| {
        // Terraform written where Plinth is expected: say how Plinth writes
        // it instead of where pest stopped.
        let idioms = terraform_idioms(file, text);
        if idioms.is_empty() {
            vec![syntax_error(file, text, e)]
        } else {
            idioms
        }
    })?
}

/// `P1011` for each line that starts a Terraform block (`variable "x" {`,
/// `resource "t" "n" {`, `locals {`, …), with the Plinth form in the help.
fn terraform_idioms(file: FileId, text: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let Some(brace) = line.find('{') else { continue };
        let head = &line[..brace];
        let words: Vec<&str> = head.split_whitespace().collect();
        let quoted = |w: &str| -> Option<String> {
            let inner = w.strip_prefix('"')?.strip_suffix('"')?;
            (!inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')).then(|| inner.to_string())
        };
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        let help = match words.as_slice() {
            ["variable", n] => quoted(n).map(|n| format!("Terraform's `variable` is Plinth's `param`: write `param {n}: string` (with its type; `= default` and a `{{ description = … }}` block are optional), and refer to it as `{n}`, not `var.{n}`.")),
            ["output", n] => quoted(n).map(|n| format!("Write `output {n} = <value>`: the value follows `=` (a `{{ sensitive = true }}` block may follow it).")),
            ["locals"] => Some("Plinth has no `locals` block: write each local as its own declaration, `let name = value`, and refer to it as `name`: `local.y` → `y`.".to_string()),
            ["provider", n] => quoted(n).map(|n| format!("Write `provider {n} {{`: names are not quoted in Plinth.")),
            ["module", n] => quoted(n).map(|n| format!("Write `module {n} from \"./path\" {{ … }}`: the source follows `from` instead of a `source = …` attribute, and the name is not quoted.")),
            ["resource", t, n] => match (quoted(t), quoted(n)) {
                (Some(t), Some(n)) => {
                    let plinth = match t.split_once('_') {
                        Some((p, rest)) => format!("{p}.{rest}"),
                        None => format!("<provider>.{t}"),
                    };
                    Some(format!("Write `resource {plinth} {n} {{`: the provider and the type are joined by a dot and nothing is quoted (e.g. `random_password` → `random.password`)."))
                }
                _ => None,
            },
            ["data", t, n] => match (quoted(t), quoted(n)) {
                (Some(t), Some(n)) => {
                    let plinth = match t.split_once('_') {
                        Some((p, rest)) => format!("{p}.{rest}"),
                        None => format!("<provider>.{t}"),
                    };
                    Some(format!("Write `data {plinth} {n} {{`: the provider and the data source's type are joined by a dot and nothing is quoted (e.g. `aws_s3_bucket` → `aws.s3_bucket`); read it as `data.{plinth}.{n}.<attribute>`."))
                }
                _ => None,
            },
            ["terraform"] => Some("Plinth has no `terraform` block: providers are built in, and the state backend is configured per environment (`backend \"<kind>\" { … }` in `envs/<name>.plinth`).".to_string()),
            _ => None,
        };
        if let Some(help) = help {
            let end = start + head.trim_end().len();
            out.push(
                Diagnostic::new("P1011", "Terraform syntax")
                    .help(help)
                    .label(Span::new(file, start, end), format!("`{}` is Terraform syntax", words.first().copied().unwrap_or(""))),
            );
        }
    }
    out
}

/// Parses `text` (a run of whole declarations starting at byte `base` of the
/// file); the outer error is pest's, the inner result the builder's.
fn parse_items(file: FileId, text: &str, base: usize) -> Result<Result<File, Diags>, pest::error::Error<Rule>> {
    let mut pairs = PlinthParser::parse(Rule::file, text)?;
    let mut builder = Builder { file, base, diags: Vec::new() };
    let mut items = Vec::new();
    if let Some(root) = pairs.next() {
        for pair in root.into_inner() {
            if let Some(item) = builder.item(pair) {
                items.push(item);
            }
        }
    }
    Ok(if builder.diags.is_empty() { Ok(File { items }) } else { Err(builder.diags) })
}

/// Parses chunk by chunk. None when any chunk fails to parse: the caller then
/// parses the whole file, so results and messages are exactly those of a
/// whole-file parse (a split inside a multi-line construct always leaves its
/// chunk unterminated, hence failing).
fn parse_in_chunks(file: FileId, text: &str) -> Option<Result<File, Diags>> {
    let starts = declaration_starts(text);
    let mut bounds = vec![0usize];
    for s in starts {
        if s - bounds[bounds.len() - 1] >= CHUNK_BYTES {
            bounds.push(s);
        }
    }
    bounds.push(text.len());
    if bounds.len() <= 2 {
        return None;
    }
    // Chunks are independent: parse them on every core, in contiguous runs,
    // and join the results in order.
    let ranges: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8).min(ranges.len());
    let per_worker = ranges.len().div_ceil(workers);
    let results: Vec<Option<Vec<Result<File, Diags>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .chunks(per_worker)
            .map(|run| {
                std::thread::Builder::new().stack_size(64 << 20).spawn_scoped(scope, move || {
                    run.iter().map(|&(start, end)| parse_items(file, text.get(start..end)?, start).ok()).collect::<Option<Vec<_>>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.ok().and_then(|h| h.join().ok()).flatten()).collect()
    });
    let mut items = Vec::new();
    let mut diags = Vec::new();
    for run in results {
        for parsed in run? {
            match parsed {
                Ok(f) => items.extend(f.items),
                Err(d) => diags.extend(d),
            }
        }
    }
    Some(if diags.is_empty() { Ok(File { items }) } else { Err(diags) })
}

/// Byte offsets of lines that start a top-level declaration: a keyword at
/// the start of a line that [`lexical::walk`] finds outside brackets,
/// strings, comments and heredocs.
fn declaration_starts(text: &str) -> Vec<usize> {
    const KEYWORDS: [&str; 6] = ["param ", "let ", "provider ", "resource ", "data ", "output "];
    let mut out = Vec::new();
    lexical::walk(text, |event| {
        if let lexical::Event::TopLevelLine { at } = event {
            if KEYWORDS.iter().any(|k| text.as_bytes()[at..].starts_with(k.as_bytes())) {
                out.push(at);
            }
        }
        true
    });
    out
}

/// Parses a values file: only `name = expr` assignments.
pub fn parse_assignments(file: FileId, text: &str) -> Result<Vec<Attribute>, Diags> {
    precheck(file, text)?;
    let mut pairs = PlinthParser::parse(Rule::varfile, text).map_err(|e| vec![syntax_error(file, text, e)])?;
    let mut builder = Builder { file, base: 0, diags: Vec::new() };
    let mut attrs = Vec::new();
    if let Some(root) = pairs.next() {
        for pair in root.into_inner() {
            if pair.as_rule() == Rule::attribute {
                attrs.push(builder.attribute(pair));
            }
        }
    }
    if builder.diags.is_empty() {
        Ok(attrs)
    } else {
        Err(builder.diags)
    }
}

/// Parses an environment file: top-level assignments and `backend "<kind>"
/// { … }` blocks. Declarations are parsed only to be reported by the caller
/// (see [`EnvFile::declarations`]); a name assigned twice is `P1008`.
pub fn parse_env_file(file: FileId, text: &str) -> Result<EnvFile, Diags> {
    precheck(file, text)?;
    let mut pairs = PlinthParser::parse(Rule::envfile, text).map_err(|e| vec![syntax_error(file, text, e)])?;
    let mut builder = Builder { file, base: 0, diags: Vec::new() };
    let mut out = EnvFile::default();
    let mut seen: Vec<(String, Span)> = Vec::new();
    if let Some(root) = pairs.next() {
        for pair in root.into_inner() {
            match pair.as_rule() {
                Rule::attribute => {
                    let attr = builder.attribute(pair);
                    if let Some((_, first)) = seen.iter().find(|(n, _)| *n == attr.name.name) {
                        builder.diags.push(
                            Diagnostic::new("P1008", "duplicate attribute")
                                .help(format!("`{}` is set twice in this file; keep one.", attr.name.name))
                                .label(attr.name.span, "set again here")
                                .label(*first, "first set here"),
                        );
                    } else {
                        seen.push((attr.name.name.clone(), attr.name.span));
                    }
                    out.attrs.push(attr);
                }
                Rule::backend_block => {
                    let span = builder.span(&pair);
                    let mut kind = None;
                    let mut kind_span = span;
                    let mut body = Body { span, ..Body::default() };
                    for part in pair.into_inner() {
                        match part.as_rule() {
                            Rule::string => {
                                kind_span = builder.span(&part);
                                kind = match builder.string_parts(part).as_slice() {
                                    [] => Some(String::new()),
                                    [TemplatePart::Literal(s)] => Some(s.clone()),
                                    _ => None,
                                };
                            }
                            Rule::body => body = builder.body(part),
                            _ => {}
                        }
                    }
                    out.backends.push(BackendBlock { kind, kind_span, body, span });
                }
                Rule::env_decl => {
                    let Some(decl) = pair.into_inner().next() else { continue };
                    let mut inner = decl.into_inner();
                    let Some(kw) = inner.next() else { continue };
                    // Up to the last name of the header (`resource p.t name`).
                    let name = inner.take_while(|p| p.as_rule() == Rule::ident).last();
                    let keyword = match kw.as_rule() {
                        Rule::kw_param => "param",
                        Rule::kw_let => "let",
                        Rule::kw_provider => "provider",
                        Rule::kw_resource => "resource",
                        Rule::kw_data => "data",
                        _ => "output",
                    };
                    let kw_span = builder.span(&kw);
                    let span = name.map_or(kw_span, |n| kw_span.to(builder.span(&n)));
                    out.declarations.push((keyword, span));
                }
                _ => {}
            }
        }
    }
    if builder.diags.is_empty() {
        Ok(out)
    } else {
        Err(builder.diags)
    }
}

/// Parses one expression (for `-var` values given on the command line).
pub fn parse_expression(file: FileId, text: &str) -> Result<Expr, Diags> {
    precheck(file, text)?;
    let wrapped = format!("v = {text}");
    let attrs = parse_assignments(file, &wrapped).map_err(|diags| {
        diags
            .into_iter()
            .map(|mut d| {
                for l in &mut d.labels {
                    l.span.start = l.span.start.saturating_sub(4);
                    l.span.end = l.span.end.saturating_sub(4);
                }
                d
            })
            .collect::<Vec<_>>()
    })?;
    match attrs.into_iter().next() {
        Some(mut attr) if true => {
            shift_expr(&mut attr.value, -4);
            Ok(attr.value)
        }
        _ => Err(vec![Diagnostic::new("P1001", "expected an expression")
            .help("Give a value such as `3`, `\"text\"`, `[\"a\", \"b\"]` or `{ key = \"value\" }`.")
            .label(Span::new(file, 0, text.len()), "not an expression")]),
    }
}

fn shift_expr(expr: &mut Expr, by: i64) {
    // Only the outer span matters for command-line values; nested spans are
    // shifted lazily by clamping (they are used only for labels).
    let shift = |s: &mut Span| {
        s.start = (s.start as i64 + by).max(0) as u32;
        s.end = (s.end as i64 + by).max(0) as u32;
    };
    shift(&mut expr.span);
}

/// Refuses input that would make the recursive-descent parser or the tree
/// walkers recurse too deeply. Only code brackets and interpolations count
/// (see [`lexical`]): brackets in comments, strings and heredoc text do not.
fn precheck(file: FileId, text: &str) -> Result<(), Diags> {
    let mut too_deep = None;
    lexical::walk(text, |event| match event {
        lexical::Event::Open { at, depth } if depth > MAX_DEPTH => {
            too_deep = Some(at);
            false
        }
        _ => true,
    });
    match too_deep {
        Some(i) => Err(vec![Diagnostic::new("P1003", "nesting too deep")
            .help(format!("Expressions may nest at most {MAX_DEPTH} levels of brackets, braces and parentheses; split the value into `let` declarations."))
            .label(Span::new(file, i, (i + 1).min(text.len())), "this opening is too deep")]),
        None => Ok(()),
    }
}

fn syntax_error(file: FileId, text: &str, error: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let end = text[pos..].chars().next().map_or(pos, |c| pos + c.len_utf8());
    let (message, expected) = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().map(|r| rule_name(*r)).collect();
            names.sort();
            names.dedup();
            let expected = match names.len() {
                0 => "something else".to_string(),
                1 => names[0].to_string(),
                n => format!("{} or {}", names[..n - 1].join(", "), names[n - 1]),
            };
            (format!("expected {expected}"), expected)
        }
        pest::error::ErrorVariant::CustomError { message } => (message.clone(), String::new()),
    };
    let found = match text[pos..].chars().next() {
        None => "end of file".to_string(),
        Some(c) if c.is_whitespace() => "whitespace".to_string(),
        Some(_) => {
            let word: String = text[pos..].chars().take_while(|c| !c.is_whitespace()).take(20).collect();
            format!("`{word}`")
        }
    };
    let mut help = format!("Plinth expected {expected} here but found {found}.");
    if text[..pos].trim_end().ends_with('=') || expected.contains("expression") {
        help.push_str(" An attribute is written `name = value`; strings are quoted.");
    }
    Diagnostic::new("P1001", format!("syntax error: {message}")).help(help).label(Span::new(file, pos, end), format!("expected {expected}"))
}

/// The human name of every grammar rule, shown in syntax errors.
fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::WHITESPACE => "whitespace",
        Rule::COMMENT => "a comment",
        Rule::ident_char => "a name character",
        Rule::ident => "a name",
        Rule::kw_param => "`param`",
        Rule::kw_let => "`let`",
        Rule::kw_provider => "`provider`",
        Rule::kw_resource => "`resource`",
        Rule::kw_data => "`data`",
        Rule::kw_output => "`output`",
        Rule::kw_for => "`for`",
        Rule::kw_in => "`in`",
        Rule::kw_if => "`if`",
        Rule::kw_import => "`import`",
        Rule::kw_meta => "`meta`",
        Rule::kw_from => "`from`",
        Rule::kw_version => "`version`",
        Rule::component_decl => "a component `<kind> <name> from \"<source>\" { … }`",
        Rule::component_version => "`version \"<constraint>\"`",
        Rule::import_decl => "an `import` declaration",
        Rule::meta_decl => "a `meta` block",
        Rule::file => "a declaration",
        Rule::item => "a declaration (`param`, `let`, `provider`, `resource`, `data`, `output`, `import`, `meta` or a component)",
        Rule::varfile => "an assignment",
        Rule::envfile => "an assignment or a `backend` block",
        Rule::backend_block => "a `backend \"<kind>\" { … }` block",
        Rule::env_decl => "a declaration",
        Rule::kw_backend => "`backend`",
        Rule::param_decl => "a `param` declaration",
        Rule::param_default => "a default value",
        Rule::let_decl => "a `let` declaration",
        Rule::provider_decl => "a `provider` block",
        Rule::resource_decl => "a `resource` block",
        Rule::data_decl => "a `data` block",
        Rule::output_decl => "an `output` declaration",
        Rule::body => "a block body `{ … }`",
        Rule::attribute => "an attribute `name = value`",
        Rule::block => "a nested block",
        Rule::type_expr => "a type",
        Rule::type_object => "an object type `{ name = type }`",
        Rule::type_field => "an object type field",
        Rule::expr => "an expression",
        Rule::question => "`?`",
        Rule::colon => "`:`",
        Rule::operation => "an expression",
        Rule::bin_op => "an operator",
        Rule::op_start => "an operator",
        Rule::unary_op => "`!` or `-`",
        Rule::postfix => "an expression",
        Rule::suffix => "`.`, `[` or an operator",
        Rule::get_attr => "`.name`",
        Rule::splat => "`[*]`",
        Rule::index => "`[index]`",
        Rule::primary => "a value",
        Rule::literal => "a literal",
        Rule::null_lit => "`null`",
        Rule::true_lit => "`true`",
        Rule::false_lit => "`false`",
        Rule::number => "a number",
        Rule::integer => "an integer",
        Rule::list => "a list `[…]`",
        Rule::object => "an object `{…}`",
        Rule::object_item => "an object entry `key = value`",
        Rule::object_key => "an object key",
        Rule::for_list => "a `[for …]` expression",
        Rule::for_map => "a `{for …}` expression",
        Rule::for_cond => "`if` condition",
        Rule::variable => "a name or a function call",
        Rule::call_args => "function arguments `(…)`",
        Rule::paren => "a parenthesized expression",
        Rule::string => "a string",
        Rule::str_text => "string text",
        Rule::str_escape => "an escape sequence",
        Rule::interp => "an interpolation `${…}`",
        Rule::heredoc => "a heredoc `<<EOT`",
        Rule::heredoc_dash => "`-`",
        Rule::heredoc_body => "heredoc text",
        Rule::heredoc_end => "the heredoc's closing marker",
        Rule::heredoc_line => "a heredoc line",
        Rule::heredoc_text => "heredoc text",
        Rule::heredoc_newline => "a newline",
    }
}

struct Builder {
    file: FileId,
    /// Offset of the parsed text in its file (chunked parsing).
    base: usize,
    diags: Diags,
}

impl Builder {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.base + s.start(), self.base + s.end())
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: self.span(&pair) }
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> Option<Item> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
        match rule {
            Rule::param_decl => {
                let name = self.ident(inner.next()?);
                let mut decl = ParamDecl { name, ty: None, default: None, body: None, span };
                for part in inner {
                    match part.as_rule() {
                        Rule::type_expr => decl.ty = Some(self.type_expr(part)),
                        Rule::param_default => {
                            let e = part.into_inner().next()?;
                            decl.default = Some(self.expr(e));
                        }
                        Rule::body => decl.body = Some(self.body(part)),
                        _ => {}
                    }
                }
                Some(Item::Param(decl))
            }
            Rule::let_decl => {
                let name = self.ident(inner.next()?);
                let value = self.expr(inner.next()?);
                Some(Item::Let(LetDecl { name, value, span }))
            }
            Rule::provider_decl => {
                let name = self.ident(inner.next()?);
                let next = inner.next()?;
                let (alias, body) = if next.as_rule() == Rule::ident { (Some(self.ident(next)), self.body(inner.next()?)) } else { (None, self.body(next)) };
                Some(Item::Provider(ProviderDecl { name, alias, body, span }))
            }
            Rule::resource_decl => {
                let provider = self.ident(inner.next()?);
                let rtype = self.ident(inner.next()?);
                let name = self.ident(inner.next()?);
                let body = self.body(inner.next()?);
                Some(Item::Resource(ResourceDecl { provider, rtype, name, body, span }))
            }
            Rule::data_decl => {
                let provider = self.ident(inner.next()?);
                let rtype = self.ident(inner.next()?);
                let name = self.ident(inner.next()?);
                let body = self.body(inner.next()?);
                Some(Item::Data(ResourceDecl { provider, rtype, name, body, span }))
            }
            Rule::output_decl => {
                let name = self.ident(inner.next()?);
                let value = self.expr(inner.next()?);
                let body = inner.next().map(|b| self.body(b));
                Some(Item::Output(OutputDecl { name, value, body, span }))
            }
            Rule::component_decl => {
                let kind = self.ident(inner.next()?);
                let name = self.ident(inner.next()?);
                let source = self.lit_str(inner.next()?, "a module source");
                let mut version = None;
                let mut body = Body::default();
                for part in inner {
                    match part.as_rule() {
                        Rule::component_version => {
                            version = part.into_inner().find(|p| p.as_rule() == Rule::string).map(|p| self.lit_str(p, "a version constraint"))
                        }
                        Rule::body => body = self.body(part),
                        _ => {}
                    }
                }
                Some(Item::Component(ComponentDecl { kind, name, source, version, body, span }))
            }
            Rule::import_decl => {
                let name = self.ident(inner.next()?);
                let source = self.lit_str(inner.next()?, "an import source");
                let version = inner.next().and_then(|p| p.into_inner().find(|p| p.as_rule() == Rule::string)).map(|p| self.lit_str(p, "a version constraint"));
                Some(Item::Import(ImportDecl { name, source, version, span }))
            }
            Rule::meta_decl => {
                let body = self.body(inner.next()?);
                Some(Item::Meta(MetaDecl { body, span }))
            }
            _ => None,
        }
    }

    /// A string that must be a literal (no `${…}`): sources and versions are
    /// read before anything is evaluated.
    fn lit_str(&mut self, pair: Pair<'_, Rule>, what: &str) -> LitStr {
        let e = self.expr(pair);
        match &e.kind {
            ExprKind::Template(parts) if parts.is_empty() => LitStr { value: String::new(), span: e.span },
            ExprKind::Template(parts) => match parts.as_slice() {
                [TemplatePart::Literal(s)] => LitStr { value: s.clone(), span: e.span },
                _ => {
                    self.diags.push(
                        Diagnostic::new("P1009", "interpolation where a literal string is needed")
                            .help(format!("{what} is read before anything is evaluated, so it must be a plain string without `${{…}}`."))
                            .label(e.span, "not a literal string"),
                    );
                    LitStr { value: String::new(), span: e.span }
                }
            },
            _ => LitStr { value: String::new(), span: e.span },
        }
    }

    fn body(&mut self, pair: Pair<'_, Rule>) -> Body {
        let mut body = Body { span: self.span(&pair), ..Body::default() };
        // (name, span, is a block): an attribute is set once; blocks of one
        // name may repeat (a provider schema's nested blocks); where a block
        // may appear once, the checker says so.
        let mut seen: Vec<(String, Span, bool)> = Vec::new();
        for part in pair.into_inner() {
            if matches!(part.as_rule(), Rule::attribute | Rule::block) {
                let is_block = part.as_rule() == Rule::block;
                if let Some(name) = part.clone().into_inner().next() {
                    let (text, span) = (name.as_str().to_string(), self.span(&name));
                    if let Some((_, first, _)) = seen.iter().find(|(n, _, b)| *n == text && !(*b && is_block)) {
                        self.diags.push(
                            Diagnostic::new("P1008", "duplicate attribute")
                                .help(format!("`{text}` is set twice in this block; keep one."))
                                .label(span, "set again here")
                                .label(*first, "first set here"),
                        );
                    } else {
                        seen.push((text, span, is_block));
                    }
                }
            }
            match part.as_rule() {
                Rule::attribute => body.attrs.push(self.attribute(part)),
                Rule::block => {
                    let span = self.span(&part);
                    let mut inner = part.into_inner();
                    if let (Some(name), Some(b)) = (inner.next(), inner.next()) {
                        let name = self.ident(name);
                        let b = self.body(b);
                        body.blocks.push(Block { name, body: b, span });
                    }
                }
                _ => {}
            }
        }
        body
    }

    fn attribute(&mut self, pair: Pair<'_, Rule>) -> Attribute {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = inner.next().map(|p| self.ident(p)).unwrap_or(Ident { name: String::new(), span });
        let value = match inner.next() {
            Some(e) => self.expr(e),
            None => Expr { kind: ExprKind::Null, span },
        };
        Attribute { name, value, span }
    }

    fn type_expr(&mut self, pair: Pair<'_, Rule>) -> TypeExpr {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let Some(name) = inner.next() else {
            return TypeExpr { ty: Type::Any, span };
        };
        let name_str = name.as_str();
        let arg = inner.next();
        let ty = match (name_str, arg) {
            ("string", None) => Type::String,
            ("number", None) => Type::Number,
            ("bool", None) => Type::Bool,
            ("any", None) => Type::Any,
            ("list", Some(a)) if a.as_rule() == Rule::type_expr => Type::List(Box::new(self.type_expr(a).ty)),
            ("set", Some(a)) if a.as_rule() == Rule::type_expr => Type::Set(Box::new(self.type_expr(a).ty)),
            ("map", Some(a)) if a.as_rule() == Rule::type_expr => Type::Map(Box::new(self.type_expr(a).ty)),
            ("object", Some(a)) if a.as_rule() == Rule::type_object => {
                let mut fields = Vec::new();
                for field in a.into_inner() {
                    let mut f = field.into_inner();
                    if let (Some(n), Some(t)) = (f.next(), f.next()) {
                        fields.push((n.as_str().to_string(), self.type_expr(t).ty));
                    }
                }
                Type::Object(fields)
            }
            ("list" | "set" | "map", None) => Type::List(Box::new(Type::Any)).clone_with(name_str),
            (other, _) => {
                self.diags.push(
                    Diagnostic::new("P1007", "unknown type")
                        .help(format!(
                            "Types are `string`, `number`, `bool`, `any`, `list(T)`, `set(T)`, `map(T)` and `object({{name = T}})`.{}",
                            crate::diagnostic::suggestion(other, ["string", "number", "bool", "any", "list", "set", "map", "object"])
                        ))
                        .label(span, "not a type"),
                );
                Type::Any
            }
        };
        TypeExpr { ty, span }
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::expr => {
                let mut inner = pair.into_inner();
                let Some(first) = inner.next() else { return Expr { kind: ExprKind::Null, span } };
                let cond = self.expr(first);
                let _q = inner.next();
                match (inner.next(), inner.next(), inner.next()) {
                    (Some(a), Some(_colon), Some(b)) => {
                        let a = self.expr(a);
                        let b = self.expr(b);
                        Expr { kind: ExprKind::Conditional(Box::new(cond), Box::new(a), Box::new(b)), span }
                    }
                    _ => cond,
                }
            }
            Rule::operation => self.operation(pair),
            Rule::postfix => {
                let mut inner = pair.into_inner();
                let Some(first) = inner.next() else { return Expr { kind: ExprKind::Null, span } };
                let mut e = self.expr(first);
                let mut splat: Option<(Expr, Vec<Step>)> = None;
                for suffix in inner {
                    let s_span = self.span(&suffix);
                    match suffix.as_rule() {
                        Rule::splat => {
                            if let Some((base, steps)) = splat.take() {
                                let sp = base.span.to(s_span);
                                e = Expr { kind: ExprKind::Splat(Box::new(base), steps), span: sp };
                            }
                            splat = Some((e.clone(), Vec::new()));
                        }
                        Rule::get_attr => {
                            let Some(name) = suffix.into_inner().next() else { continue };
                            let ident = self.ident(name);
                            match &mut splat {
                                Some((_, steps)) => steps.push(Step::Attr(ident)),
                                None => {
                                    let sp = e.span.to(s_span);
                                    e = Expr { kind: ExprKind::GetAttr(Box::new(e), ident), span: sp };
                                }
                            }
                        }
                        Rule::index => {
                            let Some(key) = suffix.into_inner().next() else { continue };
                            let key = self.expr(key);
                            match &mut splat {
                                Some((_, steps)) => steps.push(Step::Index(key)),
                                None => {
                                    let sp = e.span.to(s_span);
                                    e = Expr { kind: ExprKind::Index(Box::new(e), Box::new(key)), span: sp };
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if let Some((base, steps)) = splat {
                    e = Expr { kind: ExprKind::Splat(Box::new(base), steps), span };
                }
                e
            }
            Rule::null_lit => Expr { kind: ExprKind::Null, span },
            Rule::true_lit => Expr { kind: ExprKind::Bool(true), span },
            Rule::false_lit => Expr { kind: ExprKind::Bool(false), span },
            Rule::number => {
                let text = pair.as_str();
                let kind = if !text.contains(['.', 'e', 'E']) {
                    match text.parse::<i64>() {
                        Ok(i) => ExprKind::Int(i),
                        Err(_) => {
                            self.diags.push(
                                Diagnostic::new("P1005", "number out of range")
                                    .help("Integers must fit in 64 bits (up to 9223372036854775807).")
                                    .label(span, "too large"),
                            );
                            ExprKind::Int(0)
                        }
                    }
                } else {
                    ExprKind::Float(text.parse::<f64>().unwrap_or(0.0))
                };
                Expr { kind, span }
            }
            Rule::list => {
                let items = pair.into_inner().map(|p| self.expr(p)).collect();
                Expr { kind: ExprKind::List(items), span }
            }
            Rule::object => {
                let mut entries: Vec<(ObjectKey, Expr)> = Vec::new();
                for item in pair.into_inner() {
                    let mut inner = item.into_inner();
                    let (Some(key), Some(value)) = (inner.next(), inner.next()) else { continue };
                    let key = self.object_key(key);
                    if let ObjectKey::Literal(name, again) = &key {
                        let first = entries.iter().find_map(|(k, _)| match k {
                            ObjectKey::Literal(n, s) if n == name => Some(*s),
                            _ => None,
                        });
                        if let Some(first) = first {
                            self.diags.push(
                                Diagnostic::new("P1010", "duplicate object key")
                                    .help(format!("`{name}` is set twice in this object; keep one (Terraform refuses this too). To let a later value win, use `merge(a, b)`."))
                                    .label(*again, "set again here")
                                    .label(first, "first set here"),
                            );
                        }
                    }
                    entries.push((key, self.expr(value)));
                }
                Expr { kind: ExprKind::Object(entries), span }
            }
            Rule::for_list | Rule::for_map => {
                let is_map = pair.as_rule() == Rule::for_map;
                let parts: Vec<Pair<'_, Rule>> = pair.into_inner().filter(|p| p.as_rule() != Rule::colon && !is_keyword(p.as_rule())).collect();
                let mut idents = Vec::new();
                let mut exprs = Vec::new();
                let mut cond = None;
                for p in parts {
                    match p.as_rule() {
                        Rule::ident => idents.push(self.ident(p)),
                        Rule::for_cond => {
                            if let Some(c) = p.into_inner().find(|p| !is_keyword(p.as_rule())) {
                                cond = Some(Box::new(self.expr(c)));
                            }
                        }
                        _ => exprs.push(self.expr(p)),
                    }
                }
                let (key_var, value_var) = match idents.len() {
                    2 => {
                        let v = idents.pop();
                        (idents.pop(), v)
                    }
                    _ => (None, idents.pop()),
                };
                let null = || Expr { kind: ExprKind::Null, span };
                let value_var = value_var.unwrap_or(Ident { name: "_".into(), span });
                let mut exprs = exprs.into_iter();
                let collection = Box::new(exprs.next().unwrap_or_else(null));
                let first = Box::new(exprs.next().unwrap_or_else(null));
                let kind = if is_map {
                    let value = Box::new(exprs.next().unwrap_or_else(null));
                    ExprKind::ForMap { key_var, value_var, collection, key: first, value, cond }
                } else {
                    ExprKind::ForList { key_var, value_var, collection, body: first, cond }
                };
                Expr { kind, span }
            }
            Rule::variable => {
                let mut inner = pair.into_inner();
                let ident = inner.next().map(|p| self.ident(p)).unwrap_or(Ident { name: String::new(), span });
                match inner.next() {
                    Some(args) => {
                        let args = args.into_inner().map(|p| self.expr(p)).collect();
                        Expr { kind: ExprKind::Call(ident, args), span }
                    }
                    None => Expr { kind: ExprKind::Variable(ident), span },
                }
            }
            Rule::paren => match pair.into_inner().next() {
                Some(inner) => {
                    let mut e = self.expr(inner);
                    e.span = span;
                    e
                }
                None => Expr { kind: ExprKind::Null, span },
            },
            Rule::string => {
                let parts = self.string_parts(pair);
                Expr { kind: ExprKind::Template(parts), span }
            }
            Rule::heredoc => {
                let mut dash = false;
                let mut parts = Vec::new();
                for part in pair.into_inner() {
                    match part.as_rule() {
                        Rule::heredoc_dash => dash = true,
                        Rule::heredoc_body => parts = self.heredoc_parts(part),
                        _ => {}
                    }
                }
                if dash {
                    strip_indent(&mut parts);
                }
                Expr { kind: ExprKind::Template(parts), span }
            }
            _ => Expr { kind: ExprKind::Null, span },
        }
    }

    fn too_many_operators(&mut self, span: Span) {
        self.diags.push(
            Diagnostic::new("P1003", "expression too long")
                .help(format!("An expression may chain at most {MAX_OPERATORS} operators; split it into `let` declarations."))
                .label(span, "this expression"),
        );
    }

    /// Binary operators by precedence climbing over the flat operand list,
    /// iteratively (an explicit stack), left-associative.
    fn operation(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let mut operands: Vec<Expr> = Vec::new();
        let mut ops: Vec<BinaryOp> = Vec::new();
        let mut prefixes: Vec<(UnaryOp, Span)> = Vec::new();
        let mut n_ops = 0usize;
        for part in pair.into_inner() {
            if part.as_rule() == Rule::unary_op {
                n_ops += 1;
                if n_ops > MAX_OPERATORS {
                    self.too_many_operators(span);
                    return Expr { kind: ExprKind::Null, span };
                }
                let op = if part.as_str() == "!" { UnaryOp::Not } else { UnaryOp::Neg };
                prefixes.push((op, self.span(&part)));
                continue;
            }
            if part.as_rule() == Rule::bin_op {
                n_ops += 1;
                if n_ops > MAX_OPERATORS {
                    self.too_many_operators(span);
                    return Expr { kind: ExprKind::Null, span };
                }
                let op = match part.as_str() {
                    "||" => BinaryOp::Or,
                    "&&" => BinaryOp::And,
                    "==" => BinaryOp::Eq,
                    "!=" => BinaryOp::Ne,
                    "<=" => BinaryOp::Le,
                    ">=" => BinaryOp::Ge,
                    "<" => BinaryOp::Lt,
                    ">" => BinaryOp::Gt,
                    "+" => BinaryOp::Add,
                    "-" => BinaryOp::Sub,
                    "*" => BinaryOp::Mul,
                    "/" => BinaryOp::Div,
                    _ => BinaryOp::Mod,
                };
                while let Some(&top) = ops.last() {
                    if top.precedence() >= op.precedence() {
                        ops.pop();
                        reduce(&mut operands, top);
                    } else {
                        break;
                    }
                }
                ops.push(op);
            } else {
                let mut e = self.expr(part);
                // Prefix operators bind tighter than any binary one.
                for (op, op_span) in prefixes.drain(..).rev() {
                    // `-3` folds into a literal so that it displays as written.
                    let kind = match (op, &e.kind) {
                        (UnaryOp::Neg, ExprKind::Int(i)) => ExprKind::Int(i.wrapping_neg()),
                        (UnaryOp::Neg, ExprKind::Float(f)) => ExprKind::Float(-f),
                        _ => ExprKind::Unary(op, Box::new(e.clone())),
                    };
                    e = Expr { kind, span: op_span.to(e.span) };
                }
                operands.push(e);
            }
        }
        while let Some(op) = ops.pop() {
            reduce(&mut operands, op);
        }
        operands.pop().unwrap_or(Expr { kind: ExprKind::Null, span })
    }

    fn object_key(&mut self, pair: Pair<'_, Rule>) -> ObjectKey {
        let span = self.span(&pair);
        let Some(inner) = pair.into_inner().next() else { return ObjectKey::Literal(String::new(), span) };
        match inner.as_rule() {
            Rule::ident => ObjectKey::Literal(inner.as_str().to_string(), span),
            Rule::string => {
                let parts = self.string_parts(inner);
                match parts.as_slice() {
                    [] => ObjectKey::Literal(String::new(), span),
                    [TemplatePart::Literal(s)] => ObjectKey::Literal(s.clone(), span),
                    _ => ObjectKey::Expr(Expr { kind: ExprKind::Template(parts), span }),
                }
            }
            _ => ObjectKey::Expr(self.expr(inner)),
        }
    }

    fn string_parts(&mut self, pair: Pair<'_, Rule>) -> Vec<TemplatePart> {
        let mut parts: Vec<TemplatePart> = Vec::new();
        let push_lit = |parts: &mut Vec<TemplatePart>, s: &str| match parts.last_mut() {
            Some(TemplatePart::Literal(l)) => l.push_str(s),
            _ => parts.push(TemplatePart::Literal(s.to_string())),
        };
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::str_text => push_lit(&mut parts, part.as_str()),
                Rule::str_escape => {
                    let c = match &part.as_str()[1..] {
                        "n" => "\n",
                        "t" => "\t",
                        "r" => "\r",
                        "\"" => "\"",
                        "\\" => "\\",
                        "$" => "$",
                        other => {
                            let span = self.span(&part);
                            self.diags.push(
                                Diagnostic::new("P1002", "invalid escape sequence")
                                    .help(format!(
                                        "Strings accept the escapes \\n \\t \\r \\\" \\\\ and \\$; `\\{other}` is not one. Write `\\\\` for a backslash."
                                    ))
                                    .label(span, "unknown escape"),
                            );
                            ""
                        }
                    };
                    push_lit(&mut parts, c);
                }
                Rule::interp => {
                    if let Some(e) = part.into_inner().next() {
                        parts.push(TemplatePart::Interp(self.expr(e)));
                    }
                }
                _ => {}
            }
        }
        parts
    }

    fn heredoc_parts(&mut self, pair: Pair<'_, Rule>) -> Vec<TemplatePart> {
        let mut parts: Vec<TemplatePart> = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::heredoc_text | Rule::heredoc_newline => {
                    let text = part.as_str();
                    let text = if part.as_rule() == Rule::heredoc_text { text.strip_suffix('\r').unwrap_or(text) } else { text };
                    match parts.last_mut() {
                        Some(TemplatePart::Literal(l)) => l.push_str(text),
                        _ => parts.push(TemplatePart::Literal(text.to_string())),
                    }
                }
                Rule::interp => {
                    if let Some(e) = part.into_inner().next() {
                        parts.push(TemplatePart::Interp(self.expr(e)));
                    }
                }
                _ => {}
            }
        }
        parts
    }
}

/// Keyword tokens carry no information past the rule that holds them.
fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_param
            | Rule::kw_let
            | Rule::kw_provider
            | Rule::kw_resource
            | Rule::kw_data
            | Rule::kw_output
            | Rule::kw_for
            | Rule::kw_in
            | Rule::kw_if
            | Rule::kw_import
            | Rule::kw_meta
            | Rule::kw_from
            | Rule::kw_version
    )
}

fn reduce(operands: &mut Vec<Expr>, op: BinaryOp) {
    let (Some(rhs), Some(lhs)) = (operands.pop(), operands.pop()) else { return };
    let span = lhs.span.to(rhs.span);
    operands.push(Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span });
}

/// `<<-` heredocs: remove the smallest indentation shared by all non-blank
/// lines. Lines that start with an interpolation count as unindented.
fn strip_indent(parts: &mut [TemplatePart]) {
    let mut min: Option<usize> = None;
    let mut at_line_start = true;
    for part in parts.iter() {
        match part {
            TemplatePart::Literal(text) => {
                for (i, line) in text.split('\n').enumerate() {
                    if i > 0 {
                        at_line_start = true;
                    }
                    if at_line_start {
                        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
                        let is_last_fragment = i == text.split('\n').count() - 1;
                        if !line.trim().is_empty() || (is_last_fragment && !line.is_empty()) {
                            min = Some(min.map_or(indent, |m| m.min(indent)));
                        }
                    }
                    if !line.is_empty() {
                        at_line_start = false;
                    }
                }
            }
            TemplatePart::Interp(_) => {
                if at_line_start {
                    min = Some(0);
                }
                at_line_start = false;
            }
        }
    }
    let Some(min) = min else { return };
    if min == 0 {
        return;
    }
    let mut at_line_start = true;
    for part in parts.iter_mut() {
        match part {
            TemplatePart::Literal(text) => {
                let mut out = String::with_capacity(text.len());
                for (i, line) in text.split('\n').enumerate() {
                    if i > 0 {
                        out.push('\n');
                        at_line_start = true;
                    }
                    if at_line_start {
                        let strip = line.len() - line.trim_start_matches([' ', '\t']).len();
                        out.push_str(&line[strip.min(min)..]);
                    } else {
                        out.push_str(line);
                    }
                    if !line.is_empty() {
                        at_line_start = false;
                    }
                }
                *text = out;
            }
            TemplatePart::Interp(_) => at_line_start = false,
        }
    }
}

trait CloneWith {
    fn clone_with(self, name: &str) -> Type;
}
impl CloneWith for Type {
    fn clone_with(self, name: &str) -> Type {
        match name {
            "set" => Type::Set(Box::new(Type::Any)),
            "map" => Type::Map(Box::new(Type::Any)),
            _ => Type::List(Box::new(Type::Any)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &str) -> Result<File, Diags> {
        parse_items(0, text, 0).map_err(|e| vec![syntax_error(0, text, e)]).and_then(|r| r)
    }

    fn big_project(extra: &str) -> String {
        let mut s = String::new();
        for i in 0..3000 {
            s.push_str(&format!("resource core.data r{i} {{\n  input = \"v{i}\" # resource r{i}\n}}\n"));
            if i == 1500 {
                // Lines inside a heredoc and a comment that look like declarations.
                s.push_str("let doc = <<EOT\nresource fake.thing x {\nlet y = 1\nEOT\n/*\nresource also.fake y {\n*/\n");
            }
        }
        s.push_str(extra);
        s
    }

    #[test]
    fn chunked_parsing_equals_whole_file_parsing() {
        let text = big_project("output last = core.data.r2999.output\n");
        assert!(text.len() > 2 * CHUNK_BYTES);
        assert!(declaration_starts(&text).len() > 3000);
        let chunked = parse_file(0, &text).expect("parses");
        let reference = whole(&text).expect("parses");
        assert_eq!(format!("{chunked:?}"), format!("{reference:?}"));
        assert!(parse_in_chunks(0, &text).is_some(), "the file should really have been chunked");
    }

    #[test]
    fn errors_late_in_a_big_file_point_at_the_right_place() {
        let text = big_project("resource core.data broken {\n  input = \n}\n");
        let err = parse_file(0, &text).expect_err("must fail");
        let reference = whole(&text).expect_err("must fail");
        assert_eq!(err, reference);
        let start = err[0].labels[0].span.start as usize;
        assert!(text[..start].contains("resource core.data broken"), "span points before the error");
    }

    #[test]
    fn spans_of_later_chunks_are_absolute() {
        let text = big_project("");
        let file = parse_file(0, &text).expect("parses");
        let Some(Item::Resource(last)) = file.items.last() else { panic!("last item is a resource") };
        let at = last.name.span.start as usize;
        assert_eq!(&text[at..last.name.span.end as usize], "r2999");
    }
}
