//! Diagnostics: every user-facing error is a [`Diagnostic`] with a stable
//! code (`P1xxx` syntax, `P2xxx` evaluation and types, `P3xxx` graph,
//! `P4xxx` plan and apply, `P5xxx` state, `P6xxx` providers), a terse
//! summary, a help sentence, and labelled source spans where a source exists.
//! Codes are documented once in `docs/diagnostics.md`.
//!
//! Diagnostics are plain data so that every stage can accumulate them; the CLI
//! turns them into `miette` reports with [`Diagnostic::to_report`].

use std::fmt;
use std::sync::{Arc, OnceLock};

thread_local! {
    /// Bytes of source text examined (by this thread) while locating and
    /// rendering diagnostics (line index builds, line/column lookups,
    /// windows handed to miette). A deterministic measure of rendering work:
    /// the rendering-scales-linearly test compares it for 1,000 and 8,000
    /// diagnostics.
    static SCANNED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Work done by this thread locating and rendering diagnostics (see
/// `SCANNED`).
pub fn scanned_bytes() -> u64 {
    SCANNED.with(std::cell::Cell::get)
}

/// Edit-distance cells one thread may compute for "did you mean" help.
/// Each unknown name is compared with every name in scope, so a storm of n
/// unknown names in a scope of n names is n² work; past this budget (far
/// beyond any real mistake count) suggestions are simply left out.
const SUGGESTION_CELLS: u64 = 5_000_000;

thread_local! {
    static SUGGESTION_SPENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn scanned(n: usize) {
    SCANNED.with(|c| c.set(c.get() + n as u64));
}

/// Every sensitive text the run has seen (sensitive params and lets, the
/// sensitive values of provider and resource configurations, recorded
/// sensitive attributes). Every diagnostic is redacted of them when it is
/// shown ([`Diagnostic::to_report`], [`Diagnostic::one_line`],
/// [`Diagnostic::to_json`], `Display`): the last line of defence behind the
/// sites that check sensitivity themselves, for messages that repeat a
/// value derived from a secret (a server echoing a header built from a
/// token, a path built from one).
static SECRETS: std::sync::RwLock<std::collections::BTreeSet<String>> = std::sync::RwLock::new(std::collections::BTreeSet::new());

/// Adds texts to the run's sensitive texts (see [`SECRETS`]); texts shorter
/// than three characters are ignored (see [`Diagnostic::redact`]).
pub fn register_secrets(texts: impl IntoIterator<Item = String>) {
    let new: Vec<String> = texts.into_iter().filter(|t| t.chars().count() >= 3).collect();
    if new.is_empty() {
        return;
    }
    if let Ok(mut all) = SECRETS.write() {
        all.extend(new);
    }
}

fn known_secrets() -> Vec<String> {
    SECRETS.read().map(|s| s.iter().cloned().collect()).unwrap_or_default()
}

/// Index of a file in [`Sources`].
pub type FileId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end as u32 }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// One source file loaded for a run.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as shown to users (relative to the project where possible).
    pub name: String,
    pub text: Arc<str>,
    /// Byte offsets of line starts, built once on first use: each lookup is
    /// then a binary search, so reporting n diagnostics costs O(n log n)
    /// plus their own lines, not O(n × file size).
    lines: Arc<OnceLock<Vec<usize>>>,
}

impl SourceFile {
    fn line_starts(&self) -> &[usize] {
        self.lines.get_or_init(|| {
            scanned(self.text.len());
            let mut starts = vec![0];
            starts.extend(self.text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
            starts
        })
    }

    /// 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts().partition_point(|&s| s <= offset).saturating_sub(1)
    }
}

/// A source for miette that hands it only the lines around a span (miette
/// scans what it is given from the start; given the whole file, rendering n
/// diagnostics was quadratic).
#[derive(Debug)]
struct Window {
    file: SourceFile,
}

impl miette::SourceCode for Window {
    fn read_span<'a>(&'a self, span: &miette::SourceSpan, before: usize, after: usize) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let text: &str = &self.file.text;
        let starts = self.file.line_starts();
        let first = self.file.line_of(span.offset()).saturating_sub(before);
        let last = self.file.line_of((span.offset() + span.len()).min(text.len())) + after + 2;
        let ws = starts[first.min(starts.len() - 1)];
        let we = starts.get(last).copied().unwrap_or(text.len()).max(ws);
        let window = text.get(ws..we).ok_or(miette::MietteError::OutOfBounds)?;
        scanned(window.len());
        let shifted = miette::SourceSpan::new(span.offset().saturating_sub(ws).into(), span.len());
        let inner = <str as miette::SourceCode>::read_span(window, &shifted, before, after)?;
        let contents = miette::MietteSpanContents::new_named(
            self.file.name.clone(),
            inner.data(),
            miette::SourceSpan::new((inner.span().offset() + ws).into(), inner.span().len()),
            inner.line() + first,
            inner.column(),
            inner.line_count() + first,
        )
        .with_language("plinth");
        Ok(Box::new(contents))
    }
}

/// Every file loaded in a run, addressed by [`FileId`].
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        self.files.push(SourceFile { name: name.into(), text: text.into(), lines: Arc::default() });
        (self.files.len() - 1) as FileId
    }
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id as usize)
    }
    /// 1-based line and column of a span's start.
    pub fn line_col(&self, span: Span) -> Option<(usize, usize)> {
        let file = self.get(span.file)?;
        let start = span.start as usize;
        file.text.get(..start)?;
        let line = file.line_of(start);
        let line_start = file.line_starts()[line];
        let prefix = file.text.get(line_start..start)?;
        scanned(prefix.len());
        Some((line + 1, prefix.chars().count() + 1))
    }
    pub fn snippet(&self, span: Span) -> &str {
        self.get(span.file).and_then(|f| f.text.get(span.start as usize..span.end as usize)).unwrap_or("")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub message: String,
    pub help: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    /// A transient failure (a timeout, HTTP 429 or 5xx, a dropped
    /// connection): the engine may retry the operation (see `max_retries`).
    pub retryable: bool,
}

pub type Diags = Vec<Diagnostic>;

impl Diagnostic {
    pub fn new(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, message: message.into(), help: String::new(), labels: vec![], notes: vec![], retryable: false }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = help.into();
        self
    }
    pub fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label { span, text: text.into() });
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    /// Marks a transient failure that may be retried.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }
    /// Replaces every occurrence of a secret (and of its quoted-string
    /// escapes) in the text of the diagnostic with `(sensitive)`. The
    /// engine passes the sensitive values of the configuration a failing
    /// call was given, so a message that echoes one (a provider repeating a
    /// path, a mode, a server's answer) never shows it. Texts shorter than
    /// three characters are not searched for (they would garble every
    /// message); sites that show values check sensitivity themselves.
    pub fn redact(mut self, secrets: &[String]) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for s in secrets.iter().filter(|s| s.chars().count() >= 3) {
            let debug = format!("{s:?}");
            let json = serde_json::Value::String(s.clone()).to_string();
            for n in [s.clone(), debug[1..debug.len() - 1].to_string(), json[1..json.len() - 1].to_string()] {
                if !needles.contains(&n) {
                    needles.push(n);
                }
            }
        }
        if needles.is_empty() {
            return self;
        }
        // Longest first, so a secret that contains another goes whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let scrub = |text: &mut String| {
            for n in &needles {
                if text.contains(n.as_str()) {
                    *text = text.replace(n.as_str(), "(sensitive)");
                }
            }
            // An excerpt cut in the middle of a secret ("abc…"): its start.
            if text.contains('…') {
                *text = scrub_cut_secrets(text, &needles);
            }
        };
        scrub(&mut self.message);
        scrub(&mut self.help);
        self.labels.iter_mut().for_each(|l| scrub(&mut l.text));
        self.notes.iter_mut().for_each(scrub);
        self
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }

    /// A miette report for terminal rendering. Labels in other files than the
    /// first label's become related reports so each shows its own source.
    pub fn to_report(&self, sources: &Sources) -> miette::Report {
        miette::Report::new(self.shown().rendered(sources))
    }

    /// The diagnostic as it may be shown: redacted of every sensitive text
    /// the run has seen.
    fn shown(&self) -> Diagnostic {
        let secrets = known_secrets();
        if secrets.is_empty() {
            self.clone()
        } else {
            self.clone().redact(&secrets)
        }
    }

    fn rendered(&self, sources: &Sources) -> Rendered {
        let mut by_file: Vec<(FileId, Vec<&Label>)> = Vec::new();
        for label in &self.labels {
            match by_file.iter_mut().find(|(f, _)| *f == label.span.file) {
                Some((_, v)) => v.push(label),
                None => by_file.push((label.span.file, vec![label])),
            }
        }
        let mut help = self.help.clone();
        for note in &self.notes {
            help.push_str("\nnote: ");
            help.push_str(note);
        }
        let mut groups = by_file.into_iter();
        let make = |file: FileId, labels: Vec<&Label>| {
            let source = sources.get(file).map(|f| Arc::new(Window { file: f.clone() }));
            let labels = labels
                .into_iter()
                .map(|l| {
                    let text = if l.text.is_empty() { None } else { Some(l.text.clone()) };
                    miette::LabeledSpan::new(text, l.span.start as usize, (l.span.end - l.span.start) as usize)
                })
                .collect::<Vec<_>>();
            (source, labels)
        };
        let (source, labels) = match groups.next() {
            Some((file, labels)) => make(file, labels),
            None => (None, vec![]),
        };
        let related = groups
            .map(|(file, labels)| {
                let (source, labels) = make(file, labels);
                Rendered { code: self.code, message: "also here".into(), help: None, source, labels, related: vec![] }
            })
            .collect();
        Rendered { code: self.code, message: self.message.clone(), help: if help.is_empty() { None } else { Some(help) }, source, labels, related }
    }

    /// Plain one-line text: `P2001 message (file:line:col)`; used in logs and
    /// JSON output.
    pub fn one_line(&self, sources: &Sources) -> String {
        let d = self.shown();
        let this = &d;
        match this.primary_span().and_then(|s| Some((sources.get(s.file)?, sources.line_col(s)?))) {
            Some((file, (line, col))) => format!("{} {} ({}:{}:{})", this.code, this.message, file.name, line, col),
            None => format!("{} {}", this.code, this.message),
        }
    }

    pub fn to_json(&self, sources: &Sources) -> serde_json::Value {
        let d = self.shown();
        let this = &d;
        let labels: Vec<serde_json::Value> = this
            .labels
            .iter()
            .map(|l| {
                let (line, col) = sources.line_col(l.span).unwrap_or((0, 0));
                serde_json::json!({
                    "file": sources.get(l.span.file).map(|f| f.name.clone()),
                    "line": line, "column": col,
                    "start": l.span.start, "end": l.span.end,
                    "label": l.text,
                })
            })
            .collect();
        serde_json::json!({
            "code": this.code, "message": this.message, "help": this.help,
            "labels": labels, "notes": this.notes,
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.shown().message)
    }
}

#[derive(Debug)]
struct Rendered {
    code: &'static str,
    message: String,
    help: Option<String>,
    source: Option<Arc<Window>>,
    labels: Vec<miette::LabeledSpan>,
    related: Vec<Rendered>,
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s.as_ref() as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic)))
        }
    }
}

/// Replaces a start of a secret (three characters or more) that ends where
/// an excerpt was cut with `…`.
fn scrub_cut_secrets(text: &str, needles: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('…') {
        let (before, after) = rest.split_at(at);
        let mut cut = 0;
        for n in needles {
            let starts: Vec<usize> = n.char_indices().map(|(i, _)| i).skip(3).collect();
            if let Some(&k) = starts.iter().rev().find(|&&k| before.ends_with(&n[..k])) {
                cut = cut.max(k);
            }
        }
        out.push_str(&before[..before.len() - cut]);
        if cut > 0 {
            out.push_str("(sensitive)");
        }
        out.push('…');
        rest = &after['…'.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Closest candidate by edit distance, for "did you mean" help.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if SUGGESTION_SPENT.with(std::cell::Cell::get) > SUGGESTION_CELLS {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    let len = name.chars().count();
    for candidate in candidates {
        let clen = candidate.chars().count();
        let limit = (len.max(clen) / 3).max(1);
        // The distance is at least the difference in length.
        if len.abs_diff(clen) > limit {
            continue;
        }
        let cells = ((len + 1) * (clen + 1)) as u64;
        let spent = SUGGESTION_SPENT.with(|c| {
            c.set(c.get() + cells);
            c.get()
        });
        if spent > SUGGESTION_CELLS {
            return None;
        }
        scanned(cells as usize);
        let distance = edit_distance(name, candidate);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// True once this thread's suggestion budget is spent: callers that build a
/// candidate list per mistake skip building it (keeps a storm of mistakes
/// linear).
pub fn suggestions_exhausted() -> bool {
    SUGGESTION_SPENT.with(std::cell::Cell::get) > SUGGESTION_CELLS
}

/// " Did you mean `x`?" or "" — for appending to help sentences.
pub fn suggestion<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(name, candidates) {
        Some(c) => format!(" Did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_sources_render_exactly_as_whole_files() {
        let text = "let a = 1\nlet b = nope\n\nlet c = [\n  zz,\n]\nlet d = 2\n";
        let mut sources = Sources::default();
        let file = sources.add("main.plinth", text);
        let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor()).with_context_lines(1);
        for (start, end) in [(18, 22), (37, 39), (0, 3), (text.len() - 2, text.len() - 1), (8, 30)] {
            let d = Diagnostic::new("P0000", "m").help("h").label(Span::new(file, start, end), "here");
            let mut windowed = String::new();
            handler.render_report(&mut windowed, d.to_report(&sources).as_ref()).unwrap();
            let whole = miette::Report::new(Rendered {
                code: "P0000",
                message: "m".into(),
                help: Some("h".into()),
                source: None,
                labels: vec![miette::LabeledSpan::new(Some("here".into()), start, end - start)],
                related: vec![],
            })
            .with_source_code(miette::NamedSource::new("main.plinth", text.to_string()).with_language("plinth"));
            let mut expected = String::new();
            handler.render_report(&mut expected, whole.as_ref()).unwrap();
            assert_eq!(windowed, expected, "span {start}..{end}");
            assert_eq!(sources.line_col(Span::new(file, start, end)), {
                let upto = &text[..start];
                Some((upto.matches('\n').count() + 1, upto.rsplit('\n').next().unwrap().chars().count() + 1))
            });
        }
    }
}
