//! Diagnostics: every user-facing error is a [`Diagnostic`] with a stable
//! code (`P1xxx` syntax, `P2xxx` evaluation and types, `P3xxx` graph,
//! `P4xxx` plan and apply, `P5xxx` state, `P6xxx` providers), a terse
//! summary, a help sentence, and labelled source spans where a source exists.
//! Codes are documented once in `docs/diagnostics.md`.
//!
//! Diagnostics are plain data so that every stage can accumulate them; the CLI
//! turns them into `miette` reports with [`Diagnostic::to_report`].

use std::fmt;
use std::sync::Arc;

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
}

/// Every file loaded in a run, addressed by [`FileId`].
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        self.files.push(SourceFile { name: name.into(), text: text.into() });
        (self.files.len() - 1) as FileId
    }
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id as usize)
    }
    /// 1-based line and column of a span's start.
    pub fn line_col(&self, span: Span) -> Option<(usize, usize)> {
        let file = self.get(span.file)?;
        let upto = file.text.get(..span.start as usize)?;
        let line = upto.matches('\n').count() + 1;
        let col = upto.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        Some((line, col))
    }
    pub fn snippet(&self, span: Span) -> &str {
        self.get(span.file)
            .and_then(|f| f.text.get(span.start as usize..span.end as usize))
            .unwrap_or("")
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
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }

    /// A miette report for terminal rendering. Labels in other files than the
    /// first label's become related reports so each shows its own source.
    pub fn to_report(&self, sources: &Sources) -> miette::Report {
        miette::Report::new(self.rendered(sources))
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
            let source = sources.get(file).map(|f| {
                Arc::new(miette::NamedSource::new(f.name.clone(), f.text.to_string()).with_language("plinth"))
            });
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
                Rendered {
                    code: self.code,
                    message: "also here".into(),
                    help: None,
                    source,
                    labels,
                    related: vec![],
                }
            })
            .collect();
        Rendered {
            code: self.code,
            message: self.message.clone(),
            help: if help.is_empty() { None } else { Some(help) },
            source,
            labels,
            related,
        }
    }

    /// Plain one-line text: `P2001 message (file:line:col)`; used in logs and
    /// JSON output.
    pub fn one_line(&self, sources: &Sources) -> String {
        match self.primary_span().and_then(|s| Some((sources.get(s.file)?, sources.line_col(s)?))) {
            Some((file, (line, col))) => format!("{} {} ({}:{}:{})", self.code, self.message, file.name, line, col),
            None => format!("{} {}", self.code, self.message),
        }
    }

    pub fn to_json(&self, sources: &Sources) -> serde_json::Value {
        let labels: Vec<serde_json::Value> = self
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
            "code": self.code, "message": self.message, "help": self.help,
            "labels": labels, "notes": self.notes,
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

#[derive(Debug)]
struct Rendered {
    code: &'static str,
    message: String,
    help: Option<String>,
    source: Option<Arc<miette::NamedSource<String>>>,
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

/// Closest candidate by edit distance, for "did you mean" help.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(name, candidate);
        let limit = (name.chars().count().max(candidate.chars().count()) / 3).max(1);
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

/// " Did you mean `x`?" or "" — for appending to help sentences.
pub fn suggestion<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(name, candidates) {
        Some(c) => format!(" Did you mean `{c}`?"),
        None => String::new(),
    }
}
