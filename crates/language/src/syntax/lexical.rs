//! The lexical structure of Plinth source, decided in one place: where
//! comments, quoted strings, interpolations `${ … }` and heredocs begin and
//! end, and so which brackets are code.
//!
//! Used by the nesting precheck (which must refuse deep input before pest
//! recurses), by the chunker that splits large files at declarations, and by
//! `fmt` for the rules it shares (comment and heredoc ends). Invariants:
//! - Linear and iterative: an explicit stack of frames, no recursion.
//! - Brackets inside comments, string text and heredoc text are never
//!   counted; brackets inside interpolations are, wherever the
//!   interpolation sits (string or heredoc), and `${` counts as an opener.
//! - Unterminated constructs end at the end of the text (or, for a quoted
//!   string, at the end of its line): the scanner never fails; reporting
//!   them is the parser's job.
//! - The rules follow `grammar/plinth.pest`: comments `#`, `//`, `/* */`;
//!   strings end at `"` or the line end, `\` escapes one character; a
//!   heredoc opener `<<EOT`/`<<-EOT` is followed only by spaces or tabs on
//!   its line, and its body ends at a line holding optional blanks and the
//!   marker not followed by a name character.

/// What [`walk`] reports, in text order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A bracket, brace, parenthesis or `${` opened at this byte offset;
    /// `depth` counts the openings now unclosed, this one included.
    Open { at: usize, depth: usize },
    /// A line starts at this offset outside any bracket, string, heredoc or
    /// comment (where a top-level declaration may start).
    TopLevelLine { at: usize },
}

#[derive(Clone, Copy)]
enum Frame {
    Code,
    Quote,
    /// Inside `${ … }`; the braces opened within it.
    Interp(usize),
    /// Inside a heredoc body; the marker's byte range.
    Heredoc(usize, usize),
}

pub fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

pub fn is_ident_continue(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// The end of the identifier starting at `start`: `[A-Za-z_]` then letters,
/// digits, `_`, and `-` when a letter, digit or `_` follows it (so `a-b` is
/// one name but `a- b` and `a--b` subtract), as in `grammar/plinth.pest`.
pub fn ident_end(b: &[u8], start: usize) -> usize {
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    let mut i = start + 1;
    loop {
        match b.get(i) {
            Some(c) if word(c) => i += 1,
            Some(b'-') if b.get(i + 1).is_some_and(word) => i += 2,
            _ => return i,
        }
    }
}

/// The offset of the `\n` ending the line that holds `from` (or the end).
pub fn line_end(b: &[u8], from: usize) -> usize {
    b.get(from..).and_then(|rest| rest.iter().position(|&c| c == b'\n')).map_or(b.len(), |p| from + p)
}

/// The end (exclusive) of the block comment opening at `start`, None when it
/// is never closed.
pub fn block_comment_end(b: &[u8], start: usize) -> Option<usize> {
    b.get(start + 2..).and_then(|rest| rest.windows(2).position(|w| w == b"*/")).map(|p| start + 2 + p + 2)
}

/// For a heredoc opener at `start` (`<<EOT` or `<<-EOT`): the marker's byte
/// range and where the body starts. None when this is not an opener (the
/// marker is missing or something other than blanks follows it).
pub fn heredoc_opener(b: &[u8], start: usize) -> Option<(usize, usize, usize)> {
    if b.get(start..start + 2) != Some(b"<<") {
        return None;
    }
    let dash = usize::from(b.get(start + 2) == Some(&b'-'));
    let marker_start = start + 2 + dash;
    if !b.get(marker_start).is_some_and(|&c| is_ident_start(c)) {
        return None;
    }
    let marker_end = ident_end(b, marker_start);
    let mut i = marker_end;
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\r')) {
        i += 1;
    }
    match b.get(i) {
        Some(b'\n') => Some((marker_start, marker_end, i + 1)),
        _ => None,
    }
}

/// If the line starting at `line_start` closes a heredoc with `marker`: the
/// offset just past the marker.
pub fn heredoc_closing(b: &[u8], line_start: usize, marker: &[u8]) -> Option<usize> {
    let mut i = line_start;
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let rest = b.get(i..)?;
    if rest.starts_with(marker) && !rest.get(marker.len()).is_some_and(|&c| is_ident_continue(c)) {
        Some(i + marker.len())
    } else {
        None
    }
}

/// Walks `text`, reporting openings and top-level line starts to `on`;
/// stops early when `on` returns false.
pub fn walk(text: &str, mut on: impl FnMut(Event) -> bool) {
    let b = text.as_bytes();
    let mut frames: Vec<Frame> = vec![Frame::Code];
    let mut depth = 0usize;
    let mut line_start = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let top = frames.last().copied().unwrap_or(Frame::Code);
        match top {
            Frame::Code | Frame::Interp(_) => {
                if line_start && frames.len() == 1 && depth == 0 && !on(Event::TopLevelLine { at: i }) {
                    return;
                }
                line_start = false;
                match c {
                    b'\n' => {
                        line_start = true;
                        i += 1;
                    }
                    b'#' => i = line_end(b, i),
                    b'/' if next == Some(b'/') => i = line_end(b, i),
                    b'/' if next == Some(b'*') => i = block_comment_end(b, i).unwrap_or(b.len()),
                    b'"' => {
                        frames.push(Frame::Quote);
                        i += 1;
                    }
                    // `a <<<EOT` compares with a heredoc, as in the grammar.
                    b'<' if next == Some(b'<') && b.get(i + 2) != Some(&b'<') => match heredoc_opener(b, i) {
                        Some((ms, me, body)) => {
                            frames.push(Frame::Heredoc(ms, me));
                            line_start = true;
                            i = body;
                        }
                        None => i += 2,
                    },
                    b'(' | b'[' | b'{' => {
                        depth += 1;
                        if let (b'{', Some(Frame::Interp(n))) = (c, frames.last_mut()) {
                            *n += 1;
                        }
                        if !on(Event::Open { at: i, depth }) {
                            return;
                        }
                        i += 1;
                    }
                    b')' | b']' | b'}' => {
                        depth = depth.saturating_sub(1);
                        if c == b'}' {
                            match frames.last_mut() {
                                Some(Frame::Interp(0)) => {
                                    frames.pop();
                                }
                                Some(Frame::Interp(n)) => *n -= 1,
                                _ => {}
                            }
                        }
                        i += 1;
                    }
                    _ => i += 1,
                }
            }
            Frame::Quote => match c {
                b'\\' => i += 2,
                b'"' => {
                    frames.pop();
                    i += 1;
                }
                // An unterminated string ends with its line (as in the grammar).
                b'\n' => {
                    frames.pop();
                    line_start = true;
                    i += 1;
                }
                b'$' if next == Some(b'{') => {
                    frames.push(Frame::Interp(0));
                    depth += 1;
                    if !on(Event::Open { at: i, depth }) {
                        return;
                    }
                    i += 2;
                }
                _ => i += 1,
            },
            Frame::Heredoc(ms, me) => {
                if line_start {
                    line_start = false;
                    if let Some(after) = heredoc_closing(b, i, &b[ms..me]) {
                        frames.pop();
                        i = after;
                        continue;
                    }
                }
                match c {
                    b'\n' => {
                        line_start = true;
                        i += 1;
                    }
                    b'$' if next == Some(b'{') => {
                        frames.push(Frame::Interp(0));
                        depth += 1;
                        if !on(Event::Open { at: i, depth }) {
                            return;
                        }
                        i += 2;
                    }
                    _ => i += 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_depth(text: &str) -> usize {
        let mut max = 0;
        walk(text, |e| {
            if let Event::Open { depth, .. } = e {
                max = max.max(depth);
            }
            true
        });
        max
    }

    fn lines(text: &str) -> Vec<usize> {
        let mut out = Vec::new();
        walk(text, |e| {
            if let Event::TopLevelLine { at } = e {
                out.push(at);
            }
            true
        });
        out
    }

    #[test]
    fn brackets_in_comments_strings_and_heredoc_text_do_not_count() {
        assert_eq!(max_depth("# [[[[[[\n// ((((\n/* {{{{\n[[[ */\nlet x = \"[[[\"\n"), 0);
        assert_eq!(max_depth("let x = <<EOT\n[[[[ {{{{\n  EOT\nlet y = [1]\n"), 1);
        assert_eq!(max_depth("let x = <<-EOT\n  ${[[1]]} [[[\n  EOT\n"), 3);
        assert_eq!(max_depth("let x = \"${\"${[1]}\"}\"\n"), 3);
        assert_eq!(max_depth("let x = \"${ {a = 1} }\" # }}}}\nlet y = [[2]]\n"), 2);
        assert_eq!(max_depth("let x = a <<<EOT\n"), 0);
    }

    #[test]
    fn top_level_lines_skip_multi_line_constructs() {
        let text = "let a = [\n1]\nlet b = <<EOT\nparam x\nEOT\n/*\nlet c\n*/\nlet d = 1\n";
        let starts: Vec<&str> = lines(text).into_iter().map(|at| &text[at..at + 5]).collect();
        assert_eq!(starts, ["let a", "let b", "/*\nle", "let d"]);
    }
}
