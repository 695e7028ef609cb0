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
