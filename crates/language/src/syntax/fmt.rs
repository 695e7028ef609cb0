//! `plinth fmt`: the canonical layout of Plinth source.
//!
//! Input → output: the text of one `.plinth` file → the same program laid out
//! canonically. Pure and fast: no IO, no recursion, linear time.
//!
//! Architecture invariants:
//! - It knows only the lexical rules (names, numbers, strings, heredocs and
//!   comments as `grammar/plinth.pest` defines them), never the pest parser or
//!   the AST, so a file that lexes can be formatted even while it does not
//!   parse.
//! - It changes only horizontal whitespace and blank lines. The tokens and the
//!   line breaks between them are those of the input; this is checked at the
//!   end by lexing the output again, so a layout bug becomes an error, never a
//!   changed program.
//! - Idempotent: `format_source(format_source(x)?) == format_source(x)`.
//!
//! The style (the model is `terraform fmt`):
//! - Indentation is two spaces for every *line* that leaves brackets open
//!   (`{`, `[`, `(`; several opened on one line count once, as in `merge({`).
//!   A line that starts with closers is dedented to the level of the line
//!   that opened them (`}, {` and `], baz)` sit at the level of their opener).
//! - Trailing whitespace goes; runs of blank lines become one; no blank line at
//!   the start or end of the file, after a line that ends with an opener, or
//!   before a line that starts with a closer. The file ends with one newline;
//!   an empty (or all-whitespace) file stays empty.
//! - Within a line, outside strings and comments: one space around `=`, `=>`,
//!   `?`, `:` and the binary operators; none after a prefix `-` or `!`;
//!   none around `.`; none before `,` and one after it; none inside `( )` and
//!   `[ ]`; one inside non-empty `{ }` and none in `{}`; none between a name
//!   and the `(` of a call or the `[` of an index; one space between words and
//!   before a block's `{`. A splat stays tight: `x[*].id`, `x.*.id`.
//! - The `:` after the name in `param name: type` and after an object key
//!   written first on its line or after `{` or `,` (`{ a: 1, "b": 2 }`) has
//!   no space before it; every other `:` (conditional, `for`) has one space
//!   on both sides.
//! - `-` is a prefix (negation) when it does not follow an operand: at the start
//!   of the file, after an opener, `,`, `=`, `=>`, `?`, `:`, an operator, or the
//!   words `for`, `in`, `if`. The operand may end the previous line, since an
//!   expression continues across line breaks (`a` newline `- b` subtracts).
//! - Consecutive attribute lines (`key = value` on one line, the key a name, a
//!   quoted string or a parenthesised expression) at the same level, with no
//!   blank line, comment-only line or block between them, have their `=`
//!   aligned. A line whose value spans lines (a heredoc) can end such a run.
//! - Comments keep their text (trailing whitespace aside) and are reindented
//!   only: for a multi-line `/* */` only the first line moves. A trailing
//!   comment is one space after the code; trailing comments on consecutive
//!   lines are aligned one space after the longest code among them, like
//!   `terraform fmt` does.
//! - The contents of strings (interpolations included) and heredoc bodies
//!   are copied byte for byte, and so is the closing marker of a heredoc with
//!   its indentation; what follows the marker on its line (`)`, `,`) is laid
//!   out as usual.
//!
//! Errors: text that cannot be lexed (an unterminated string, interpolation,
//! heredoc or block comment, an unexpected character) or whose brackets do not
//! balance is refused with the byte offset of the problem.

use std::borrow::Cow;
use std::fmt;

/// Why a source text could not be formatted.
#[derive(Debug, Clone, PartialEq)]
pub struct FmtError {
    pub message: String,
    /// Byte offset in the input.
    pub offset: usize,
}

impl fmt::Display for FmtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for FmtError {}

fn error(message: impl Into<String>, offset: usize) -> FmtError {
    FmtError { message: message.into(), offset }
}

/// Formats Plinth source canonically. Idempotent: format_source(format_source(x)?) == format_source(x)?. Keeps every comment. Never changes meaning.
///
/// # Errors
///
/// A [`FmtError`] with the byte offset of the problem when `src` cannot be
/// lexed (an unterminated string, interpolation, heredoc or block comment, a
/// character that has no place outside strings and comments) or when its
/// brackets do not balance.
pub fn format_source(src: &str) -> Result<String, FmtError> {
    let tokens = lex(src)?;
    let out = layout(src, &tokens)?;
    check_same_tokens(src, &tokens, &out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    /// A whole quoted string, interpolations included.
    Str,
    /// `<<EOT` … closing marker line, body included.
    Heredoc,
    LineComment,
    BlockComment,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    LParen,
    RParen,
    Eq,
    FatArrow,
    Comma,
    Colon,
    Question,
    Dot,
    Ellipsis,
    Star,
    Plus,
    Minus,
    Slash,
    Percent,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Bang,
}

impl Kind {
    fn is_comment(self) -> bool {
        matches!(self, Kind::LineComment | Kind::BlockComment)
    }

    fn is_opener(self) -> bool {
        matches!(self, Kind::LBrace | Kind::LBrack | Kind::LParen)
    }

    fn is_closer(self) -> bool {
        matches!(self, Kind::RBrace | Kind::RBrack | Kind::RParen)
    }

    fn symbol(self) -> &'static str {
        match self {
            Kind::LBrace => "{",
            Kind::RBrace => "}",
            Kind::LBrack => "[",
            Kind::RBrack => "]",
            Kind::LParen => "(",
            Kind::RParen => ")",
            _ => "",
        }
    }

    fn closer(self) -> Kind {
        match self {
            Kind::LBrace => Kind::RBrace,
            Kind::LBrack => Kind::RBrack,
            _ => Kind::RParen,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    /// Heredocs only: where the body (the line after the opener) starts.
    body: usize,
    /// At least one line break between the previous token and this one.
    newline_before: bool,
    /// At least one blank line between the previous token and this one.
    blank_before: bool,
}

// Names, line ends, comment ends and heredoc ends are decided by the one
// shared scanner's rules (`syntax::lexical`).
use super::lexical::{ident_end, is_ident_continue, is_ident_start, line_end};

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r')
}

fn scan_while(b: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while b.get(i).is_some_and(|&c| pred(c)) {
        i += 1;
    }
    i
}

fn lex(src: &str) -> Result<Vec<Token>, FmtError> {
    use Kind::*;
    let b = src.as_bytes();
    let mut tokens = Vec::with_capacity(b.len() / 6 + 1);
    let mut i = 0;
    let mut newlines = 0usize;
    while let Some(&c) = b.get(i) {
        let next = b.get(i + 1).copied();
        let mut body = 0;
        let (kind, end) = match c {
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'\n' => {
                newlines += 1;
                i += 1;
                continue;
            }
            b'#' => (LineComment, line_end(b, i)),
            b'/' => match next {
                Some(b'/') => (LineComment, line_end(b, i)),
                Some(b'*') => (BlockComment, block_comment_end(b, i)?),
                _ => (Slash, i + 1),
            },
            b'"' => (Str, string_end(b, i)?),
            b'<' => match next {
                // `a <<<EOT` compares with a heredoc, as in the grammar
                Some(b'<') if b.get(i + 2) == Some(&b'<') => (Lt, i + 1),
                Some(b'<') => {
                    let (body_start, end) = heredoc_end(b, i)?;
                    body = body_start;
                    (Heredoc, end)
                }
                Some(b'=') => (Le, i + 2),
                _ => (Lt, i + 1),
            },
            b'>' if next == Some(b'=') => (Ge, i + 2),
            b'>' => (Gt, i + 1),
            b'=' => match next {
                Some(b'=') => (EqEq, i + 2),
                Some(b'>') => (FatArrow, i + 2),
                _ => (Eq, i + 1),
            },
            b'!' if next == Some(b'=') => (NotEq, i + 2),
            b'!' => (Bang, i + 1),
            b'&' if next == Some(b'&') => (AndAnd, i + 2),
            b'|' if next == Some(b'|') => (OrOr, i + 2),
            b'.' if next == Some(b'.') && b.get(i + 2) == Some(&b'.') => (Ellipsis, i + 3),
            b'.' => (Dot, i + 1),
            b'{' => (LBrace, i + 1),
            b'}' => (RBrace, i + 1),
            b'[' => (LBrack, i + 1),
            b']' => (RBrack, i + 1),
            b'(' => (LParen, i + 1),
            b')' => (RParen, i + 1),
            b',' => (Comma, i + 1),
            b':' => (Colon, i + 1),
            b'?' => (Question, i + 1),
            b'*' => (Star, i + 1),
            b'+' => (Plus, i + 1),
            b'-' => (Minus, i + 1),
            b'%' => (Percent, i + 1),
            c if is_ident_start(c) => (Ident, ident_end(b, i)),
            c if c.is_ascii_digit() => (Number, number_end(b, i)),
            _ => return Err(unexpected_char(src, i)),
        };
        tokens.push(Token { kind, start: i, end, body, newline_before: newlines > 0, blank_before: newlines > 1 });
        newlines = 0;
        i = end;
    }
    Ok(tokens)
}

fn unexpected_char(src: &str, i: usize) -> FmtError {
    let ch = src.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
    let hint = match ch {
        '&' => " (the logical and is `&&`)",
        '|' => " (the logical or is `||`)",
        '\'' => " (strings are written in double quotes)",
        '$' => " (interpolation `${…}` is only allowed inside strings)",
        _ => "",
    };
    error(format!("unexpected character {ch:?}{hint}"), i)
}

fn number_end(b: &[u8], start: usize) -> usize {
    let digit = |c: u8| c.is_ascii_digit();
    let mut i = scan_while(b, start, digit);
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = scan_while(b, i + 1, digit);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            i = scan_while(b, j, digit);
        }
    }
    i
}

fn block_comment_end(b: &[u8], start: usize) -> Result<usize, FmtError> {
    super::lexical::block_comment_end(b, start).ok_or_else(|| error("unterminated block comment: `/*` has no matching `*/`", start))
}

#[derive(Clone, Copy)]
enum Frame {
    /// Inside quotes; the offset of the opening `"`.
    Quote(usize),
    /// Inside `${ … }`; the offset of the `$` and the depth of `{` within.
    Interp(usize, usize),
}

/// The end (exclusive) of the string opening at `start`. Interpolations may
/// hold strings which hold interpolations…: an explicit stack keeps this
/// iterative.
fn string_end(b: &[u8], start: usize) -> Result<usize, FmtError> {
    let mut frames = vec![Frame::Quote(start)];
    let mut i = start + 1;
    while let Some(&frame) = frames.last() {
        let c = b.get(i).copied();
        match frame {
            Frame::Quote(quote) => match c {
                None => {
                    return Err(error("unterminated string: missing the closing `\"`", quote));
                }
                Some(b'\n') => {
                    return Err(error("unterminated string: a quoted string must end on the line where it starts (use a heredoc for several lines)", quote));
                }
                // `\` escapes any character, a line break included
                Some(b'\\') => i += 2,
                Some(b'"') => {
                    frames.pop();
                    i += 1;
                }
                Some(b'$') if b.get(i + 1) == Some(&b'{') => {
                    frames.push(Frame::Interp(i, 0));
                    i += 2;
                }
                Some(_) => i += 1,
            },
            Frame::Interp(dollar, depth) => match c {
                None => {
                    return Err(error("unterminated interpolation: `${` has no matching `}`", dollar));
                }
                Some(b'"') => {
                    frames.push(Frame::Quote(i));
                    i += 1;
                }
                Some(b'{') => {
                    if let Some(top) = frames.last_mut() {
                        *top = Frame::Interp(dollar, depth + 1);
                    }
                    i += 1;
                }
                Some(b'}') => {
                    if depth == 0 {
                        frames.pop();
                    } else if let Some(top) = frames.last_mut() {
                        *top = Frame::Interp(dollar, depth - 1);
                    }
                    i += 1;
                }
                Some(b'#') => i = line_end(b, i),
                Some(b'/') if b.get(i + 1) == Some(&b'/') => i = line_end(b, i),
                Some(b'/') if b.get(i + 1) == Some(&b'*') => i = block_comment_end(b, i)?,
                Some(_) => i += 1,
            },
        }
    }
    Ok(i)
}

/// The end of the heredoc marker (`EOT` in `<<-EOT`) of the heredoc at `start`.
fn heredoc_marker_end(b: &[u8], start: usize) -> usize {
    let dash = usize::from(b.get(start + 2) == Some(&b'-'));
    ident_end(b, start + 2 + dash)
}

/// For the heredoc opening at `start`: where its body starts and where its
/// closing marker ends. As in the grammar, the closing line is optional
/// spaces or tabs, the marker, and then no name character: whatever follows
/// (`)`, `,`, a comment) continues the line as ordinary tokens.
fn heredoc_end(b: &[u8], start: usize) -> Result<(usize, usize), FmtError> {
    let dash = usize::from(b.get(start + 2) == Some(&b'-'));
    let marker_start = start + 2 + dash;
    if !b.get(marker_start).is_some_and(|&c| is_ident_start(c)) {
        return Err(error("expected a heredoc marker such as `EOT` right after `<<`", start));
    }
    let marker_end = heredoc_marker_end(b, start);
    let marker = b.get(marker_start..marker_end).unwrap_or_default();
    let mut i = scan_while(b, marker_end, is_space);
    match b.get(i) {
        Some(b'\n') => i += 1,
        None => return Err(error("unterminated heredoc: no line starts with its closing marker", start)),
        Some(_) => return Err(error("a heredoc opener such as `<<EOT` must be the last thing on its line", i)),
    }
    let body = i;
    loop {
        let end = line_end(b, i);
        if let Some(after) = super::lexical::heredoc_closing(b, i, marker) {
            return Ok((body, after));
        }
        if end >= b.len() {
            return Err(error(format!("unterminated heredoc: no line starts with its closing marker `{}`", String::from_utf8_lossy(marker)), start));
        }
        i = end + 1;
    }
}

/// The text a token is written as in canonical output: the source text,
/// except that comments lose trailing whitespace (on every line) and a
/// heredoc opener loses whatever whitespace followed its marker.
fn token_text<'a>(src: &'a str, t: &Token) -> Cow<'a, str> {
    let raw = src.get(t.start..t.end).unwrap_or_default();
    match t.kind {
        Kind::LineComment => Cow::Borrowed(raw.trim_end()),
        Kind::BlockComment if raw.contains('\n') => {
            let mut text = String::with_capacity(raw.len());
            for (n, line) in raw.split('\n').enumerate() {
                if n > 0 {
                    text.push('\n');
                }
                text.push_str(line.trim_end());
            }
            Cow::Owned(text)
        }
        Kind::Heredoc => {
            let marker_end = heredoc_marker_end(src.as_bytes(), t.start);
            let marker = src.get(t.start..marker_end).unwrap_or_default();
            let body = src.get(t.body..t.end).unwrap_or_default();
            let mut text = String::with_capacity(marker.len() + 1 + body.len());
            text.push_str(marker);
            text.push('\n');
            text.push_str(body);
            Cow::Owned(text)
        }
        _ => Cow::Borrowed(raw),
    }
}

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------

/// One output line before alignment.
struct OutLine {
    /// Nesting level (two spaces each).
    indent: usize,
    /// The code, with canonical spacing, without a trailing comment. A line
    /// holding only comments has them here.
    code: String,
    /// Attribute lines: where in `code` the key ends (the space before `=`).
    split: Option<usize>,
    /// Width (chars) of `code[..split]`.
    key_width: usize,
    /// Spaces added at `split` to align `=`.
    pad: usize,
    /// A comment after code.
    comment: Option<String>,
    /// Spaces before `comment`.
    comment_gap: usize,
    /// Some token of the line spans several lines.
    multiline: bool,
    /// A blank line is written before this line.
    blank_before: bool,
}

fn layout(src: &str, tokens: &[Token]) -> Result<String, FmtError> {
    let mut lines: Vec<&[Token]> = Vec::new();
    let mut first = 0;
    for (k, t) in tokens.iter().enumerate() {
        if k > first && t.newline_before {
            lines.push(tokens.get(first..k).unwrap_or_default());
            first = k;
        }
    }
    if first < tokens.len() {
        lines.push(tokens.get(first..).unwrap_or_default());
    }

    let indents = indentation(&lines)?;

    let mut out_lines = Vec::with_capacity(lines.len());
    let mut previous: Option<&[Token]> = None;
    let mut context = Context::default();
    for (line, &indent) in lines.iter().zip(&indents) {
        let blank_before = match (previous, line.first()) {
            (Some(previous), Some(head)) => head.blank_before && !head.kind.is_closer() && !ends_with_opener(previous),
            _ => false,
        };
        out_lines.push(render_line(src, line, indent, blank_before, &mut context));
        previous = Some(line);
    }

    align_assignments(&mut out_lines);
    align_comments(&mut out_lines);
    Ok(write_lines(&out_lines, src.len()))
}

fn ends_with_opener(line: &[Token]) -> bool {
    line.iter().rev().find(|t| !t.kind.is_comment()).is_some_and(|t| t.kind.is_opener())
}

/// Checks that brackets balance and computes each line's nesting level.
///
/// Brackets are counted in *groups*: all brackets a line leaves open form one
/// group, one level deep. A closer removes one bracket from the newest group
/// (or from the line's own new brackets first). A line starting with closers
/// sits at the level after them, and one level less when it only partly
/// closed a group (`}, {`), in which case what it opens joins that group.
fn indentation(lines: &[&[Token]]) -> Result<Vec<usize>, FmtError> {
    let mut open: Vec<&Token> = Vec::new();
    let mut groups: Vec<usize> = Vec::new();
    let mut indents = Vec::with_capacity(lines.len());
    for line in lines {
        let mut leading = true;
        let mut partial = false;
        let mut indent = 0;
        let mut fresh = 0usize;
        for t in line.iter() {
            if leading && !t.kind.is_comment() && !t.kind.is_closer() {
                leading = false;
                indent = groups.len().saturating_sub(usize::from(partial));
            }
            if t.kind.is_opener() {
                open.push(t);
                fresh += 1;
            } else if t.kind.is_closer() {
                match_closer(&mut open, t)?;
                if fresh > 0 {
                    fresh -= 1;
                } else {
                    match groups.last_mut() {
                        Some(count) if *count > 1 => {
                            *count -= 1;
                            partial = true;
                        }
                        Some(_) => {
                            groups.pop();
                            partial = false;
                        }
                        None => {}
                    }
                }
            }
        }
        if leading {
            indent = groups.len().saturating_sub(usize::from(partial));
        }
        if fresh > 0 {
            match groups.last_mut() {
                Some(count) if partial => *count += fresh,
                _ => groups.push(fresh),
            }
        }
        indents.push(indent);
    }
    match open.last() {
        Some(t) => Err(error(format!("unclosed `{}`: no matching `{}` before the end of the file", t.kind.symbol(), t.kind.closer().symbol()), t.start)),
        None => Ok(indents),
    }
}

fn match_closer(open: &mut Vec<&Token>, t: &Token) -> Result<(), FmtError> {
    match open.pop() {
        None => Err(error(format!("unexpected `{}`: nothing is open here", t.kind.symbol()), t.start)),
        Some(o) if o.kind.closer() == t.kind => Ok(()),
        Some(o) => Err(error(
            format!("`{}` does not close the `{}` opened at byte {} (expected `{}`)", t.kind.symbol(), o.kind.symbol(), o.start, o.kind.closer().symbol()),
            t.start,
        )),
    }
}

/// What the spacing rules need to know about a token.
#[derive(Clone, Copy)]
struct Shape {
    kind: Kind,
    /// A prefix operator (`!`, negating `-`): no space after it.
    prefix: bool,
    /// `for`, `in`, `if`: words, never a called function or an operand.
    keyword: bool,
    /// The `*` of a splat.
    splat: bool,
    first: u8,
    last: u8,
}

impl Shape {
    fn new(t: &Token, text: &str, previous: Option<Shape>) -> Shape {
        let after_operand = previous.is_some_and(|p| p.ends_operand());
        Shape {
            kind: t.kind,
            prefix: t.kind == Kind::Bang || (t.kind == Kind::Minus && !after_operand),
            keyword: t.kind == Kind::Ident && matches!(text, "for" | "in" | "if"),
            splat: t.kind == Kind::Star && previous.is_some_and(|p| matches!(p.kind, Kind::Dot | Kind::LBrack)),
            first: text.bytes().next().unwrap_or(b' '),
            last: text.bytes().last().unwrap_or(b' '),
        }
    }

    /// Whether a `-` after this token subtracts (rather than negates).
    fn ends_operand(&self) -> bool {
        match self.kind {
            Kind::Ident => !self.keyword,
            Kind::Number | Kind::Str | Kind::Heredoc | Kind::RParen | Kind::RBrack | Kind::RBrace | Kind::Ellipsis => true,
            Kind::Star => self.splat,
            _ => false,
        }
    }
}

/// Spaces between two adjacent tokens of one line.
/// Spaces between two adjacent tokens of one line; `hugs_name`: `b` is a `:`
/// that sticks to the name before it.
fn gap(a: &Shape, b: &Shape, hugs_name: bool) -> usize {
    use Kind::*;
    if b.kind.is_comment() {
        return usize::from(!matches!(a.kind, LParen | LBrack));
    }
    if a.kind.is_comment() {
        return usize::from(!matches!(b.kind, Comma | RParen | RBrack));
    }
    if b.kind == Comma || matches!(a.kind, LParen | LBrack) || matches!(b.kind, RParen | RBrack) {
        return 0;
    }
    if a.kind == LBrace && b.kind == RBrace {
        return 0;
    }
    if a.kind == LBrace || b.kind == RBrace || a.kind == Comma {
        return 1;
    }
    if a.kind == Dot || b.kind == Dot || b.kind == Ellipsis || a.prefix {
        return 0;
    }
    if b.kind == Colon && hugs_name {
        return 0;
    }
    let name = a.kind == Ident && !a.keyword;
    match b.kind {
        LParen => usize::from(!name),
        LBrack => usize::from(!(name || matches!(a.kind, RParen | RBrack | RBrace | Str) || (a.kind == Star && a.splat))),
        _ => 1,
    }
}

/// Whether writing `a` and `b` without a space would lex differently.
fn glues(a: &Shape, b: &Shape) -> bool {
    match a.kind {
        Kind::Ident | Kind::Number | Kind::Heredoc => is_ident_continue(b.first),
        _ => matches!(
            (a.last, b.first),
            (b'=' | b'!' | b'<' | b'>', b'=') | (b'=', b'>') | (b'<', b'<') | (b'&', b'&') | (b'|', b'|') | (b'/', b'/' | b'*') | (b'.', b'.')
        ),
    }
}

fn is_multiline(src: &str, t: &Token) -> bool {
    match t.kind {
        Kind::Heredoc => true,
        Kind::Str | Kind::BlockComment => src.get(t.start..t.end).is_some_and(|s| s.contains('\n')),
        _ => false,
    }
}

fn push_spaces(out: &mut String, mut n: usize) {
    const SPACES: &str = "                                ";
    while n > 0 {
        let chunk = n.min(SPACES.len());
        out.push_str(SPACES.get(..chunk).unwrap_or_default());
        n -= chunk;
    }
}

/// What rendering a line needs to know about the lines before it.
#[derive(Default)]
struct Context {
    /// The last non-comment token so far. Inside `( )` and `[ ]` an
    /// expression continues across lines, so `a` newline `- b` subtracts.
    last_code: Option<Shape>,
    /// The brackets open so far (balanced: checked by [`indentation`]).
    open: Vec<Kind>,
}

fn render_line(src: &str, line: &[Token], indent: usize, blank_before: bool, context: &mut Context) -> OutLine {
    let has_code = line.iter().any(|t| !t.kind.is_comment());
    let (code_tokens, comment_token) = match line.split_last() {
        Some((last, rest)) if has_code && last.kind.is_comment() => (rest, Some(last)),
        _ => (line, None),
    };
    let assign_at = assignment(src, code_tokens);

    let mut code = String::new();
    let mut split = None;
    let mut multiline = false;
    let mut previous: Option<Shape> = None;
    let mut previous_code = context.last_code;
    // The kinds of the last two code tokens of this line, newest last.
    let mut line_code: [Option<Kind>; 2] = [None, None];
    // The declaration head `param <name>` of this line, counted in code tokens.
    let mut n_code = 0usize;
    let mut param_head = true;
    // The last token written is a `.` stuck to a number (`x.0.`): a number
    // written right after it would merge with them (`0.1`).
    let mut number_dot = false;
    for (k, t) in code_tokens.iter().enumerate() {
        let text = token_text(src, t);
        multiline |= is_multiline(src, t);
        let shape = Shape::new(t, &text, previous_code);
        if let Some(a) = previous {
            // `param name: type` and `{ key: value }`
            let hugs_name = t.kind == Kind::Colon
                && ((param_head && n_code == 2)
                    || (context.open.last() == Some(&Kind::LBrace)
                        && matches!(line_code[1], Some(Kind::Ident | Kind::Str))
                        && matches!(line_code[0], None | Some(Kind::LBrace | Kind::Comma))));
            let mut spaces = gap(&a, &shape, hugs_name);
            if spaces == 0 && (glues(&a, &shape) || (number_dot && t.kind == Kind::Number)) {
                spaces = 1;
            }
            number_dot = t.kind == Kind::Dot && a.kind == Kind::Number && spaces == 0;
            if Some(k) == assign_at {
                split = Some(code.len());
            }
            push_spaces(&mut code, spaces);
        }
        code.push_str(&text);
        previous = Some(shape);
        if !t.kind.is_comment() {
            param_head &= match n_code {
                0 => &*text == "param",
                1 => t.kind == Kind::Ident,
                _ => true,
            };
            n_code += 1;
            previous_code = Some(shape);
            line_code = [line_code[1], Some(t.kind)];
            if t.kind.is_opener() {
                context.open.push(t.kind);
            } else if t.kind.is_closer() {
                context.open.pop();
            }
        }
    }

    context.last_code = previous_code;
    let comment = comment_token.map(|t| {
        multiline |= is_multiline(src, t);
        token_text(src, t).into_owned()
    });
    let key_width = split.and_then(|s| code.get(..s)).map_or(0, |key| key.chars().count());
    OutLine { indent, code, split, key_width, pad: 0, comment, comment_gap: 1, multiline, blank_before }
}

/// For an attribute line `key = value` (key: a name, a quoted string or a
/// parenthesised expression; value: brackets balanced), the index of the `=`.
fn assignment(src: &str, tokens: &[Token]) -> Option<usize> {
    let eq = tokens.iter().position(|t| t.kind == Kind::Eq)?;
    let key = tokens.get(..eq)?;
    let is_key = match key {
        [t] => matches!(t.kind, Kind::Ident | Kind::Str | Kind::Number) && !is_multiline(src, t),
        [first, inner @ .., last] => {
            first.kind == Kind::LParen && last.kind == Kind::RParen && key.iter().all(|t| !t.kind.is_comment() && !is_multiline(src, t)) && {
                // the parenthesis at 0 must be the one closed at the end
                let mut depth = 1usize;
                inner.iter().all(|t| {
                    if t.kind.is_opener() {
                        depth += 1;
                    } else if t.kind.is_closer() {
                        depth = depth.saturating_sub(1);
                    }
                    depth > 0
                })
            }
        }
        [] => false,
    };
    if !is_key {
        return None;
    }
    let mut depth = 0usize;
    for t in tokens.get(eq..)? {
        if t.kind.is_opener() {
            depth += 1;
        } else if t.kind.is_closer() {
            depth = depth.checked_sub(1)?;
        }
    }
    (depth == 0).then_some(eq)
}

fn align_assignments(lines: &mut [OutLine]) {
    let mut k = 0;
    while let Some(head) = lines.get(k) {
        if head.split.is_none() {
            k += 1;
            continue;
        }
        let mut end = k + 1;
        let mut widest = head.key_width;
        let mut previous_multiline = head.multiline;
        while let Some(l) = lines.get(end) {
            if l.split.is_none() || l.blank_before || l.indent != head.indent || previous_multiline {
                break;
            }
            widest = widest.max(l.key_width);
            previous_multiline = l.multiline;
            end += 1;
        }
        for l in lines.iter_mut().take(end).skip(k) {
            l.pad = widest.saturating_sub(l.key_width);
        }
        k = end;
    }
}

fn align_comments(lines: &mut [OutLine]) {
    let eligible = |l: &OutLine| l.comment.is_some() && !l.multiline;
    let width = |l: &OutLine| l.indent.saturating_mul(2) + l.pad + l.code.chars().count();
    let mut k = 0;
    while let Some(head) = lines.get(k) {
        if !eligible(head) {
            k += 1;
            continue;
        }
        let mut end = k + 1;
        let mut widest = width(head);
        while let Some(l) = lines.get(end) {
            if !eligible(l) || l.blank_before {
                break;
            }
            widest = widest.max(width(l));
            end += 1;
        }
        for l in lines.iter_mut().take(end).skip(k) {
            l.comment_gap = widest.saturating_sub(width(l)) + 1;
        }
        k = end;
    }
}

fn write_lines(lines: &[OutLine], size_hint: usize) -> String {
    let mut out = String::with_capacity(size_hint.saturating_add(size_hint / 4).saturating_add(16));
    for (k, l) in lines.iter().enumerate() {
        if k > 0 {
            out.push('\n');
            if l.blank_before {
                out.push('\n');
            }
        }
        push_spaces(&mut out, l.indent.saturating_mul(2));
        match l.split.and_then(|s| Some((l.code.get(..s)?, l.code.get(s..)?))) {
            Some((key, rest)) => {
                out.push_str(key);
                push_spaces(&mut out, l.pad);
                out.push_str(rest);
            }
            None => out.push_str(&l.code),
        }
        if let Some(comment) = &l.comment {
            push_spaces(&mut out, l.comment_gap);
            out.push_str(comment);
        }
    }
    if !lines.is_empty() {
        out.push('\n');
    }
    out
}

/// The safety net: the output must lex to the same tokens, with line breaks
/// in the same places.
fn check_same_tokens(src: &str, before: &[Token], out: &str) -> Result<(), FmtError> {
    let refuse = |offset: usize| {
        error("cannot lay this out without changing the tokens (they would run together); separate them with a space or fix the syntax here", offset)
    };
    let after = lex(out).map_err(|_| refuse(before.first().map_or(0, |t| t.start)))?;
    for (k, (x, y)) in before.iter().zip(&after).enumerate() {
        let same = x.kind == y.kind && (k == 0 || x.newline_before == y.newline_before) && token_text(src, x) == token_text(out, y);
        if !same {
            return Err(refuse(x.start));
        }
    }
    if before.len() != after.len() {
        let at = before.get(after.len().min(before.len()).saturating_sub(1)).map_or(0, |t| t.start);
        return Err(refuse(at));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_ok(src: &str) -> String {
        match format_source(src) {
            Ok(out) => {
                assert_idempotent(&out);
                out
            }
            Err(e) => panic!("format failed: {e} for input {src:?}"),
        }
    }

    fn assert_idempotent(formatted: &str) {
        match format_source(formatted) {
            Ok(again) => assert_eq!(again, formatted, "not idempotent"),
            Err(e) => panic!("formatted output does not format: {e}\n{formatted}"),
        }
    }

    fn check(src: &str, expected: &str) {
        let out = format_ok(src);
        assert_eq!(out, expected, "\n--- got ---\n{out}\n--- expected ---\n{expected}");
    }

    fn check_err(src: &str, offset: usize, fragment: &str) {
        match format_source(src) {
            Ok(out) => panic!("expected an error for {src:?}, got {out:?}"),
            Err(e) => {
                assert_eq!(e.offset, offset, "wrong offset for {src:?}: {e}");
                assert!(e.message.contains(fragment), "message {:?} lacks {fragment:?}", e.message);
            }
        }
    }

    /// Every comment of `src` appears in the output.
    fn assert_comments_kept(src: &str) {
        let out = format_ok(src);
        let tokens = match lex(src) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        for t in tokens.iter().filter(|t| t.kind.is_comment()) {
            let text = token_text(src, t);
            let first_line = text.lines().next().unwrap_or_default();
            assert!(out.contains(first_line), "comment {text:?} lost:\n{out}");
            for line in text.lines().skip(1) {
                assert!(out.contains(line), "comment line {line:?} lost:\n{out}");
            }
        }
    }

    // ---- basics ----------------------------------------------------------

    #[test]
    fn empty_and_blank_inputs() {
        check("", "");
        check("   ", "");
        check("\n\n\n", "");
        check(" \t\r\n  \n", "");
    }

    #[test]
    fn single_attribute() {
        check("a=1", "a = 1\n");
        check("a = 1\n\n\n", "a = 1\n");
        check("\n\n  a   =   1   \n", "a = 1\n");
    }

    #[test]
    fn crlf_becomes_lf() {
        check("a = 1\r\nb = 2\r\n", "a = 1\nb = 2\n");
    }

    #[test]
    fn declarations_from_the_spec() {
        let src = r#"param replicas: number = 3
param stacks: list(string) = ["core"] {
  description = "stacks to deploy"
  validate    = length(stacks) > 0
}
let base_domain = tenant == "prod" ? "buildth.ing" : "t09.de"
provider postgres admin { url = "x" }
resource random.password grafana_admin {
  length = 32
  lifecycle {
    ignore_changes = ["length"]
  }
}
output grafana_password = random.password.grafana_admin.result { sensitive = true }
"#;
        check(src, src);
    }

    #[test]
    fn messy_declarations() {
        let src = "param   replicas :number=3\nparam stacks : list( string )=[ \"core\" ]{\n\tdescription=\"stacks to deploy\"\n\t  validate =length (stacks)>0\n   }\nlet base_domain=tenant==\"prod\"?\"buildth.ing\":\"t09.de\"\nprovider postgres admin{url=\"x\"}\n";
        let expected = "param replicas: number = 3\nparam stacks: list(string) = [\"core\"] {\n  description = \"stacks to deploy\"\n  validate    = length(stacks) > 0\n}\nlet base_domain = tenant == \"prod\" ? \"buildth.ing\" : \"t09.de\"\nprovider postgres admin { url = \"x\" }\n";
        check(src, expected);
    }

    // ---- indentation -----------------------------------------------------

    #[test]
    fn nested_blocks_indent_by_two() {
        check(
            "resource a b {\nlifecycle {\nignore_changes = [\n\"x\",\n]\n}\n}\n",
            "resource a b {\n  lifecycle {\n    ignore_changes = [\n      \"x\",\n    ]\n  }\n}\n",
        );
    }

    #[test]
    fn tabs_in_indentation_become_spaces() {
        check("a {\n\t\tb = 1\n\t}\n", "a {\n  b = 1\n}\n");
    }

    #[test]
    fn several_openers_on_a_line_indent_once() {
        check("x = merge({\na = 1\n})\n", "x = merge({\n  a = 1\n})\n");
        check("x = [{\na = 1\n}, {\nb = 2\n}]\n", "x = [{\n  a = 1\n}, {\n  b = 2\n}]\n");
        check("x = f(a, [\n1,\n], b)\n", "x = f(a, [\n  1,\n], b)\n");
    }

    #[test]
    fn closers_dedent() {
        check("x = f(\n  a,\n  b\n  )\ny = [\n  1\n      ]\n", "x = f(\n  a,\n  b\n)\ny = [\n  1\n]\n");
    }

    #[test]
    fn continuation_lines_are_not_indented_further() {
        check("x = (\n      a\n   + b\n)\n", "x = (\n  a\n  + b\n)\n");
    }

    // ---- blank lines ------------------------------------------------------

    #[test]
    fn blank_lines_collapse_and_vanish_at_edges() {
        check("\n\na = 1\n\n\n\nb = 2\n\n\nc {\n\n\n  d = 1\n\n\n  e = 2\n\n}\n\n\n", "a = 1\n\nb = 2\n\nc {\n  d = 1\n\n  e = 2\n}\n");
    }

    #[test]
    fn no_blank_lines_inside_list_edges() {
        check("x = [\n\n  1,\n\n  2,\n\n]\n", "x = [\n  1,\n\n  2,\n]\n");
    }

    #[test]
    fn blank_after_opener_with_comment_removed() {
        check("a { # c\n\n  b = 1\n}\n", "a { # c\n  b = 1\n}\n");
    }

    // ---- spacing ----------------------------------------------------------

    #[test]
    fn operators_get_spaces() {
        check("x = a+b*c/d%e -f\n", "x = a + b * c / d % e - f\n");
        check("x = a==b&&c!=d||e<=f\n", "x = a == b && c != d || e <= f\n");
        check("x = a<b&&c>d&&e>=f\n", "x = a < b && c > d && e >= f\n");
    }

    #[test]
    fn hyphen_in_identifiers_is_not_minus() {
        check("x = a-b\n", "x = a-b\n");
        check("x = a -b\n", "x = a - b\n");
        check("x = a - -b\n", "x = a - -b\n");
    }

    #[test]
    fn unary_minus() {
        check("x = -1\n", "x = -1\n");
        check("x = - 1\n", "x = -1\n");
        check("x = f( - 1 , - y )\n", "x = f(-1, -y)\n");
        check("x = [ - 1 ]\n", "x = [-1]\n");
        check("x = a * - b\n", "x = a * -b\n");
        check("x = a ? - 1 : - 2\n", "x = a ? -1 : -2\n");
        check("x = - ( a )\n", "x = -(a)\n");
        check("x = (a) -1\n", "x = (a) - 1\n");
        check("x = a[0] -1\n", "x = a[0] - 1\n");
        check("x = 2 -1\n", "x = 2 - 1\n");
        check("x = \"s\" -1\n", "x = \"s\" - 1\n");
        check("x = [for v in xs : v if - v > 0]\n", "x = [for v in xs : v if -v > 0]\n");
        check("x = { a = - 1 }\n", "x = { a = -1 }\n");
        check("x = (\n- 1\n)\n", "x = (\n  -1\n)\n");
        // the expression continues across the line break: subtraction
        check("x = (a\n-b)\n", "x = (a\n  - b)\n");
        check("x = [\n  1, # c\n  -2,\n]\n", "x = [\n  1, # c\n  -2,\n]\n");
        check("x = [\n  1 # c\n  -2,\n]\n", "x = [\n  1 # c\n  - 2,\n]\n");
    }

    #[test]
    fn numbers_with_exponents_stay_whole() {
        check("x = 1e-5 + 2.5E+3\n", "x = 1e-5 + 2.5E+3\n");
    }

    #[test]
    fn bang() {
        check("x = ! a && ! b\n", "x = !a && !b\n");
        check("x = !!a\n", "x = !!a\n");
    }

    #[test]
    fn splat_stays_tight() {
        check("x = a [ * ] . id\n", "x = a[*].id\n");
        check("x = a . * . id\n", "x = a.*.id\n");
        check("x = a[*].id * 2\n", "x = a[*].id * 2\n");
        check("x = a.* - 1\n", "x = a.* - 1\n");
        check("x = postgres.database.db[*].name\n", "x = postgres.database.db[*].name\n");
    }

    #[test]
    fn colon_rules() {
        check("param x:string\n", "param x: string\n");
        check("param x : string\n", "param x: string\n");
        check("param x:list(string)=[]\n", "param x: list(string) = []\n");
        check("x = a?b:c\n", "x = a ? b : c\n");
        check("x = [for s in xs:upper(s)]\n", "x = [for s in xs : upper(s)]\n");
        check("x = {for k,v in m:k=>v}\n", "x = { for k, v in m : k => v }\n");
        check("x = {for k,v in m:k=>v...}\n", "x = { for k, v in m : k => v... }\n");
        // object items may use `:`
        check("x = {a:1,\"b\" : 2}\n", "x = { a: 1, \"b\": 2 }\n");
        check("x = {\n  a : 1\n  b :c?d:e\n}\n", "x = {\n  a: 1\n  b: c ? d : e\n}\n");
        check("x = { a = c ? d : e }\n", "x = { a = c ? d : e }\n");
        check("x = [a ? b : c, d]\n", "x = [a ? b : c, d]\n");
        check("x = f(a, b ? c : d)\n", "x = f(a, b ? c : d)\n");
        check("x = { for x in xs: x => 1 }\n", "x = { for x in xs : x => 1 }\n");
    }

    #[test]
    fn commas_and_brackets() {
        check("x = [ 1 , 2 ,3 ]\n", "x = [1, 2, 3]\n");
        check("x = [1,2,]\n", "x = [1, 2,]\n");
        check("x = f( a ,b )\n", "x = f(a, b)\n");
        check("x = f (a)\n", "x = f(a)\n");
        check("x = [ ]\n", "x = []\n");
        check("x = ( a )\n", "x = (a)\n");
        check("x = f(xs ...)\n", "x = f(xs...)\n");
    }

    #[test]
    fn braces() {
        check("x = {a=1}\n", "x = { a = 1 }\n");
        check("x = {   }\n", "x = {}\n");
        check("x = {a=1,b=2}\n", "x = { a = 1, b = 2 }\n");
        check("x = [{a=1},{b=2}]\n", "x = [{ a = 1 }, { b = 2 }]\n");
        check("x = f({a=1})\n", "x = f({ a = 1 })\n");
        check("lifecycle{}\n", "lifecycle {}\n");
        check("x = object({a=string})\n", "x = object({ a = string })\n");
        check("meta { kind = \"stack\"   description = \"d\" }\n", "meta { kind = \"stack\" description = \"d\" }\n");
    }

    #[test]
    fn indexing_and_traversal() {
        check("x = a . b [ 0 ] [\"k\"]\n", "x = a.b[0][\"k\"]\n");
        check("x = f(a) [0]\n", "x = f(a)[0]\n");
        check("x = a.0.b\n", "x = a.0.b\n");
        check("x = {a=1} [\"a\"]\n", "x = { a = 1 }[\"a\"]\n");
    }

    #[test]
    fn keywords_are_words() {
        check("x = [for x in(xs): x if(x)]\n", "x = [for x in (xs) : x if (x)]\n");
        check("x = [for x in[1,2]: x]\n", "x = [for x in [1, 2] : x]\n");
    }

    #[test]
    fn words_are_separated_by_one_space() {
        check("stack   core   from  \"catalogue/stacks/core\"   version \"1.2\" {\n}\n", "stack core from \"catalogue/stacks/core\" version \"1.2\" {\n}\n");
        check("backend \"s3\"{\nbucket=\"b\"\n}\n", "backend \"s3\" {\n  bucket = \"b\"\n}\n");
    }

    // ---- alignment --------------------------------------------------------

    #[test]
    fn consecutive_attributes_align() {
        check("a {\n  name = \"forgejo\"\n  owner = x\n  provider = y\n}\n", "a {\n  name     = \"forgejo\"\n  owner    = x\n  provider = y\n}\n");
    }

    #[test]
    fn alignment_breaks_on_blank_comment_and_block() {
        check(
            "a = 1\nbbb = 2\n\ncc = 3\nd = 4\n# note\neeeee = 5\nf = 6\ng {\n}\nhh = 7\ni = 8\n",
            "a   = 1\nbbb = 2\n\ncc = 3\nd  = 4\n# note\neeeee = 5\nf     = 6\ng {\n}\nhh = 7\ni  = 8\n",
        );
    }

    #[test]
    fn alignment_is_per_level() {
        check("aaaa = 1\nb {\n  c = 1\n  dd = 2\n}\n", "aaaa = 1\nb {\n  c  = 1\n  dd = 2\n}\n");
    }

    #[test]
    fn multiline_values_do_not_align_and_break_runs() {
        check("a = 1\nbbbb = {\n  c = 1\n}\ndd = 2\n", "a = 1\nbbbb = {\n  c = 1\n}\ndd = 2\n");
    }

    #[test]
    fn heredoc_attribute_ends_a_run() {
        check("name = \"x\"\ncontent = <<EOT\nhello\nEOT\nb = 2\nccc = 3\n", "name    = \"x\"\ncontent = <<EOT\nhello\nEOT\nb   = 2\nccc = 3\n");
    }

    #[test]
    fn data_blocks_and_references() {
        check(
            "data  aws.s3_bucket existing{\nbucket=\"plinth-data\"\ncount = 2\nfilter{name=\"x\"}\n}\noutput region=data.aws.s3_bucket.existing[0].region\n",
            "data aws.s3_bucket existing {\n  bucket = \"plinth-data\"\n  count  = 2\n  filter { name = \"x\" }\n}\noutput region = data.aws.s3_bucket.existing[0].region\n",
        );
    }

    #[test]
    fn declarations_are_not_attributes() {
        check("let a = 1\nlet bbb = 2\nparam x: number = 3\n", "let a = 1\nlet bbb = 2\nparam x: number = 3\n");
    }

    #[test]
    fn quoted_and_parenthesised_keys_align() {
        check("x = {\n  \"any key\" = 1\n  b = 2\n  (k.v) = 3,\n}\n", "x = {\n  \"any key\" = 1\n  b         = 2\n  (k.v)     = 3,\n}\n");
    }

    #[test]
    fn equals_in_inline_object_is_not_an_attribute_line() {
        check("x = [\n  { a = 1 },\n  { bb = 2 },\n]\n", "x = [\n  { a = 1 },\n  { bb = 2 },\n]\n");
    }

    // ---- comments ---------------------------------------------------------

    #[test]
    fn comments_kept_and_reindented() {
        check("a {\n      # hash\n        // slashes   \n   b = 1 # trailing\n}\n", "a {\n  # hash\n  // slashes\n  b = 1 # trailing\n}\n");
    }

    #[test]
    fn trailing_comment_gets_one_space() {
        check("a = 1# c\n", "a = 1 # c\n");
        check("a = 1          // c\n", "a = 1 // c\n");
        check("x = a /  # c\n  b\n", "x = a / # c\nb\n");
    }

    #[test]
    fn trailing_comments_on_consecutive_lines_align() {
        check(
            "param domain: string # required input\nparam replicas: number = 3 # with default\nparam stacks: list(string) = [\"core\"] { # with metadata\n  description = \"d\"\n}\n",
            "param domain: string                    # required input\nparam replicas: number = 3              # with default\nparam stacks: list(string) = [\"core\"] { # with metadata\n  description = \"d\"\n}\n",
        );
        check(
            "a {\n  name = \"forgejo\" # n\n  owner = postgres.role.x.name # o\n}\n",
            "a {\n  name  = \"forgejo\"            # n\n  owner = postgres.role.x.name # o\n}\n",
        );
    }

    #[test]
    fn comment_alignment_breaks_on_blank_and_comment_only_lines() {
        check("a = 1 # a\n\nbbbbbb = 2 # b\n# own line\nc = 3 # c\n", "a = 1 # a\n\nbbbbbb = 2 # b\n# own line\nc = 3 # c\n");
    }

    #[test]
    fn language_reference_example() {
        let src = "param domain: string                       # required input\nparam replicas: number = 3                 # with default\nparam stacks: list(string) = [\"core\"] {    # with metadata\n  description = \"stacks to deploy\"\n  validate    = length(stacks) > 0\n}\n\nresource postgres.database forgejo {\n  name     = \"forgejo\"\n  owner    = postgres.role.forgejo.name    # reference => dependency edge\n  provider = postgres.admin                # meta-argument: pick an alias\n}\n";
        let expected = "param domain: string                    # required input\nparam replicas: number = 3              # with default\nparam stacks: list(string) = [\"core\"] { # with metadata\n  description = \"stacks to deploy\"\n  validate    = length(stacks) > 0\n}\n\nresource postgres.database forgejo {\n  name     = \"forgejo\"\n  owner    = postgres.role.forgejo.name # reference => dependency edge\n  provider = postgres.admin             # meta-argument: pick an alias\n}\n";
        check(src, expected);
    }

    #[test]
    fn block_comments() {
        check("x = /*a*/1\n", "x = /*a*/ 1\n");
        check("x = f(/* none */)\n", "x = f(/* none */)\n");
        check("x = f(a /* c */ , b)\n", "x = f(a /* c */, b)\n");
        // only the first line of a multi-line block comment moves
        check("a {\n        /* first\n      second   \n   third */\n  b = 1\n}\n", "a {\n  /* first\n      second\n   third */\n  b = 1\n}\n");
    }

    #[test]
    fn block_comment_containing_brackets_and_quotes_is_opaque() {
        check("a {\n/* } \" ${ <<EOT */\nb = 1\n}\n", "a {\n  /* } \" ${ <<EOT */\n  b = 1\n}\n");
    }

    #[test]
    fn comment_markers_inside_strings_are_text() {
        check("x = \"a # b // c /* d\"\n", "x = \"a # b // c /* d\"\n");
    }

    #[test]
    fn every_comment_is_kept() {
        for src in MESSY {
            assert_comments_kept(src);
        }
    }

    // ---- strings and heredocs ---------------------------------------------

    #[test]
    fn string_contents_untouched() {
        check("x = \"  a  =  b  \\t \\\" \\\\ \\$ \"\n", "x = \"  a  =  b  \\t \\\" \\\\ \\$ \"\n");
        check("x = \"héllo ✓\"\n", "x = \"héllo ✓\"\n");
    }

    #[test]
    fn nested_interpolation() {
        check("x   =   \"${merge({a = \"}\"}, x)}\"\n", "x = \"${merge({a = \"}\"}, x)}\"\n");
        check("x = \"a${ \"b${ \"c${d}\" }\" }e\"\n", "x = \"a${ \"b${ \"c${d}\" }\" }e\"\n");
        check("x = \"${ {a=1}[\"a\"] }\"  \n", "x = \"${ {a=1}[\"a\"] }\"\n");
    }

    #[test]
    fn interpolation_may_span_lines() {
        check("a {\n  x = \"${f(\n     y)}\"\n      z = 1\n}\n", "a {\n  x = \"${f(\n     y)}\"\n  z = 1\n}\n");
    }

    #[test]
    fn heredoc_body_is_byte_for_byte() {
        let src = "a {\n      x = <<EOT\n   keep   this   \n\t\ttabs\n\n\n\n  ${ \"}\" }\nEOT\n y = 1\n}\n";
        let expected = "a {\n  x = <<EOT\n   keep   this   \n\t\ttabs\n\n\n\n  ${ \"}\" }\nEOT\n  y = 1\n}\n";
        check(src, expected);
    }

    #[test]
    fn indented_heredoc() {
        let src = "a {\nb {\nx = <<-EOT\n        hello\n          world\n        EOT\n}\n}\n";
        let expected = "a {\n  b {\n    x = <<-EOT\n        hello\n          world\n        EOT\n  }\n}\n";
        check(src, expected);
    }

    #[test]
    fn heredoc_as_argument() {
        check("x = trimspace( <<EOT\nbody\nEOT\n   )\n", "x = trimspace(<<EOT\nbody\nEOT\n)\n");
    }

    #[test]
    fn heredoc_at_end_of_file() {
        check("x = <<EOT\nbody\nEOT", "x = <<EOT\nbody\nEOT\n");
        check("x = <<EOT   \nbody\n  EOT\n", "x = <<EOT\nbody\n  EOT\n");
    }

    #[test]
    fn heredoc_with_crlf() {
        check("x = <<EOT\r\nbody\r\nEOT\r\ny = 1\r\n", "x = <<EOT\nbody\r\nEOT\ny = 1\n");
    }

    #[test]
    fn heredoc_closing_marker_as_in_the_grammar() {
        // a name character after the marker means the line is body text
        check("x = <<EOT\nEOTX\nEOT-1\nEOT_\n  EOT\n", "x = <<EOT\nEOTX\nEOT-1\nEOT_\n  EOT\n");
        // anything else may follow the marker on its line
        check("x = f(<<EOT\nbody\n   EOT   )\n", "x = f(<<EOT\nbody\n   EOT)\n");
        check("x = [<<A\na\nA  ,  <<B\nb\nB   ] # two\ny = 1\n", "x = [<<A\na\nA, <<B\nb\nB] # two\ny = 1\n");
        check("x = <<EOT\nbody\nEOT  # comment\n", "x = <<EOT\nbody\nEOT # comment\n");
        check("x = <<EOT\nEOT.y\n", "x = <<EOT\nEOT.y\n");
        check("x = a<<<EOT\nb\nEOT\n", "x = a < <<EOT\nb\nEOT\n");
    }

    #[test]
    fn escaped_line_break_in_string() {
        check("x   = \"a\\\nb\"\n", "x = \"a\\\nb\"\n");
    }

    #[test]
    fn hyphens_follow_the_grammar() {
        // `a- b` is `a - b` and `a--b` is `a - -b` in grammar/plinth.pest
        check("x = a- b\n", "x = a - b\n");
        check("x = a--b\n", "x = a - -b\n");
        check("x = a-b-c\n", "x = a-b-c\n");
    }

    // ---- errors -----------------------------------------------------------

    #[test]
    fn unterminated_string() {
        check_err("x = \"abc", 4, "unterminated string");
        check_err("x = \"abc\ny = 1\n", 4, "unterminated string");
        check_err("x = \"a${b\n", 6, "unterminated interpolation");
        check_err("x = \"a${\"b}\n", 8, "unterminated string");
    }

    #[test]
    fn unterminated_heredoc() {
        check_err("x = <<EOT\nbody\n", 4, "unterminated heredoc");
        check_err("x = <<EOT", 4, "unterminated heredoc");
        check_err("x = <<EOT y\nEOT\n", 10, "last thing on its line");
        check_err("x = << EOT\nEOT\n", 4, "heredoc marker");
    }

    #[test]
    fn unterminated_block_comment() {
        check_err("a = 1\n/* open\n", 6, "unterminated block comment");
        check_err("x = \"${ /* }\"", 8, "unterminated block comment");
    }

    #[test]
    fn unbalanced_brackets() {
        check_err("a = 1\n}\n", 6, "nothing is open");
        check_err("a = [1)\n", 6, "does not close");
        check_err("a {\n  b = [\n", 10, "unclosed `[`");
        check_err("a {\n  b = 1\n", 2, "unclosed `{`");
        check_err("x = f(\n", 5, "unclosed `(`");
    }

    #[test]
    fn unexpected_characters() {
        check_err("x = a & b\n", 6, "&&");
        check_err("x = 'a'\n", 4, "double quotes");
        check_err("x = 1;\n", 5, "unexpected character");
        check_err("x = é\n", 4, "unexpected character");
        check_err("x = ${a}\n", 4, "interpolation");
    }

    #[test]
    fn tokens_that_would_merge_are_refused_not_changed() {
        // `1 .5` must not become the number `1.5`
        check("x = 1 .5\n", "x = 1. 5\n");
        check("x = a.0 .1\n", "x = a.0. 1\n");
        check("x = a.0.1\n", "x = a.0.1\n");
        check("x = a1 .5\n", "x = a1.5\n");
        check("x = a ! = b\n", "x = a ! = b\n");
    }

    // ---- robustness -------------------------------------------------------

    const MESSY: &[&str] = &[
        "",
        "# only a comment",
        "/* only\n   a block */",
        "a=1\nbb=2 # c\n\n\n/* x */ ccc = [1,2,\n3]\n",
        "resource random.password grafana_admin{length=32\nlifecycle{ignore_changes=[\"length\"]}}\n",
        "output grafana_password=random.password.grafana_admin.result{sensitive=true}",
        "x = {\n  for k , v in m :\n  k => v\n  if v != null\n}\n",
        "x = [\n  for s in list : upper(s)\n  if s != \"\"\n]\n",
        "stack core from \"catalogue/stacks/core\" {  # a component instance (module)\n  domain  = domain\n  cluster = cluster.edp\n}\n",
        "\t\tx = <<-EOT\n\t\t\tindented\n\t\tEOT\n\n\n\n",
        "a { b { c { d = [[[1]]] } } }\n",
        "a {\n}\n\n\n# trailing comment\n\n\n",
        "x = cond ? \"a\" : \"b\" // trailing\ny = !cond\n",
        "x = \"${merge({a = \"}\"}, x)}\" # nested\n",
        "x = f(\n  a, # one\n  b, # two\n)\n",
        "x = [{\n  a = 1\n  }, {\n  b = 2\n  }]\n",
        "x = a . b [*] . c\ny = a.*.b\n",
        "tenant      = \"prod\"\nbase_domain = \"buildth.ing\"\nbackend \"s3\" {\n  bucket   = \"edp-state\"\n  region   = \"eu-de\"\n}\n",
        "provider postgres { url = env(\"PG_URL\", \"postgres://localhost/postgres\") }\n",
        "a = 1 /* multi\n  line */ b = 2\nc = 3 # after\n",
        "x = [\n  -1,\n  - 2,\n  3 - 4,\n  (5) -6,\n]\n",
        "  \t  \n a = \"tab\there\" \t \n",
        "m = {\n  \"a\" = 1, \"b\" = 2\n  c = 3\n}\n",
        "lifecycle { prevent_destroy = true, create_before_destroy = true, ignore_changes = [\"attr\"] }\n",
    ];

    #[test]
    fn messy_inputs_are_idempotent_and_keep_tokens() {
        for src in MESSY {
            let out = format_ok(src);
            // no trailing whitespace outside heredocs, one final newline
            if !out.is_empty() {
                assert!(out.ends_with('\n') && !out.ends_with("\n\n"), "{out:?}");
                assert!(!out.starts_with('\n'), "{out:?}");
            }
            if !src.contains("<<") {
                for line in out.lines() {
                    assert_eq!(line, line.trim_end(), "trailing whitespace in {out:?}");
                    assert!(!line.starts_with('\t'), "tab indentation in {out:?}");
                }
                assert!(!out.contains("\n\n\n"), "{out:?}");
            }
        }
    }

    /// A deterministic pseudo-random generator (no dependencies).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next()).unwrap_or(0) % n.max(1)
        }
    }

    /// Rewrites `src` with random horizontal whitespace between tokens and
    /// random extra blank lines, keeping tokens and line breaks.
    fn scramble(src: &str, rng: &mut Lcg) -> String {
        let tokens = match lex(src) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let mut out = String::new();
        for t in &tokens {
            if t.newline_before && !out.is_empty() {
                let breaks = if t.blank_before { 2 + rng.below(3) } else { 1 };
                for _ in 0..breaks {
                    push_whitespace(&mut out, rng);
                    out.push('\n');
                }
            }
            push_whitespace(&mut out, rng);
            out.push(' ');
            out.push_str(&token_text(src, t));
        }
        push_whitespace(&mut out, rng);
        out
    }

    fn push_whitespace(out: &mut String, rng: &mut Lcg) {
        for _ in 0..rng.below(4) {
            out.push(if rng.below(2) == 0 { ' ' } else { '\t' });
        }
    }

    #[test]
    fn whitespace_does_not_matter() {
        let mut rng = Lcg(42);
        for src in MESSY {
            let expected = format_ok(src);
            for _ in 0..20 {
                let scrambled = scramble(src, &mut rng);
                let out = format_ok(&scrambled);
                assert_eq!(out, expected, "scrambled input:\n{scrambled}");
            }
        }
    }

    #[test]
    fn random_fragment_soup_never_panics_and_is_idempotent() {
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            "\n",
            "\n\n",
            " ",
            "\t",
            "a",
            "b_c",
            "x-y",
            "1",
            "2.5",
            "1e-3",
            "\"s\"",
            "\"${a}\"",
            "\"${ {a=\"}\"} }\"",
            "=",
            "==",
            "=>",
            "!",
            "!=",
            "-",
            "+",
            "*",
            "/",
            "%",
            "<",
            ">",
            "<=",
            ">=",
            "&&",
            "||",
            "?",
            ":",
            ",",
            ".",
            "...",
            "# c",
            "// c",
            "/* c */",
            "/* \n */",
            "<<EOT\nbody\nEOT\n",
            "<<-EOT\n  b\n  EOT\n",
            "param",
            "for",
            "in",
            "if",
            "\"",
            "${",
            "<<",
            "/*",
            "é",
            "\r\n",
        ];
        let mut rng = Lcg(7);
        let mut ok = 0;
        for _ in 0..4000 {
            let mut src = String::new();
            for _ in 0..rng.below(40) {
                src.push_str(PIECES.get(rng.below(PIECES.len())).copied().unwrap_or(" "));
            }
            if let Ok(out) = format_source(&src) {
                ok += 1;
                assert_idempotent(&out);
            }
        }
        assert!(ok > 100, "too few inputs formatted: {ok}");
    }

    #[test]
    fn balanced_soup_formats() {
        // Brackets balanced by construction: must always succeed.
        const ATOMS: &[&str] =
            &["a", "b.c", "1", "-", "+", "*", "=", ",", ":", "?", "\"s\"", " ", "\n", "# c\n", "/* c */", "!", "x[*]", "f(1)", "{}", "=>", "<<EOT\nEOT\n"];
        let mut rng = Lcg(99);
        for _ in 0..2000 {
            let mut src = String::new();
            let mut stack = Vec::new();
            for _ in 0..rng.below(60) {
                match rng.below(6) {
                    0 => {
                        let (o, c) = match rng.below(3) {
                            0 => ('{', '}'),
                            1 => ('[', ']'),
                            _ => ('(', ')'),
                        };
                        src.push(o);
                        stack.push(c);
                    }
                    1 => {
                        if let Some(c) = stack.pop() {
                            src.push(c);
                        }
                    }
                    _ => src.push_str(ATOMS.get(rng.below(ATOMS.len())).copied().unwrap_or(" ")),
                }
            }
            while let Some(c) = stack.pop() {
                src.push(c);
            }
            let out = format_ok(&src);
            assert_comments_kept(&src);
            assert!(out.is_empty() || out.ends_with('\n'));
        }
    }

    #[test]
    fn deep_nesting_on_one_line() {
        let depth = 20_000;
        let src = format!("x = {}{}\n", "[".repeat(depth), "]".repeat(depth));
        check(&src, &src);
        let src = format!("x = {}1{}\n", "(".repeat(depth), ")".repeat(depth));
        check(&src, &src);
        let src = format!("x = {}{}\n", "{".repeat(depth), "}".repeat(depth));
        let out = format_ok(&src);
        assert!(out.starts_with("x = { { {"));
        check_err(&format!("x = {}", "[".repeat(depth)), 4 + depth - 1, "unclosed");
    }

    #[test]
    fn deep_nesting_across_lines() {
        let depth = 2_000;
        let src = format!("x = {}{}", "[\n".repeat(depth), "]\n".repeat(depth));
        let out = format_ok(&src);
        let widest = out.lines().map(str::len).max().unwrap_or(0);
        assert_eq!(widest, 2 * (depth - 1) + 1);
    }

    #[test]
    fn deep_interpolation_nesting() {
        let depth = 20_000;
        let mut src = String::from("x = ");
        for _ in 0..depth {
            src.push_str("\"${");
        }
        src.push('a');
        for _ in 0..depth {
            src.push_str("}\"");
        }
        src.push('\n');
        check(&src, &src);
    }

    #[test]
    fn large_input_formats_completely() {
        // Speed is the benchmark's business, not a test's: this checks that a
        // 5 MiB file formats at all, idempotently, with nothing lost.
        let unit = "resource random.password grafana_admin {\n  length  = 32 # c\n  special = true\n  tags = { a = \"x\", b = [1, 2, -3] }\n  lifecycle {\n    ignore_changes = [\"length\"]\n  }\n  v = <<EOT\n  body\nEOT\n}\n\n";
        let mut src = String::new();
        while src.len() < 5 * 1024 * 1024 {
            src.push_str(unit);
        }
        let out = format_ok(&src);
        assert!(out.len() > src.len() / 2);
        assert_eq!(out.matches("# c").count(), src.matches("# c").count());
    }
}
