//! Typed addresses of recorded objects and of the components that hold them.
//!
//! An instance address is `<provider>.<type>.<name>[key]` after any number of
//! components `<kind>.<name>[key]`: `file.file.x`, `random.password.p["a"]`,
//! `stack.core.module.db["a"].postgres.role.app`. Keys are optional, go only
//! on a component's name and on the instance, and keep their text as written
//! (`["a"]`, `[0]`): dots and brackets inside a quoted key belong to the key.
//!
//! Invariants: [`Address::parse`] accepts exactly the addresses the state
//! records and [`fmt::Display`] gives back the text it parsed; [`Path`] is
//! any dotted prefix (`module.db`, `file.file`), for selections; nothing here
//! allocates per character or panics on any input.

use std::fmt;

/// One dotted step: a name and, after it, an optional key (`[...]`, brackets
/// included, as written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    pub name: String,
    pub key: Option<String>,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(k) = &self.key {
            f.write_str(k)?;
        }
        Ok(())
    }
}

/// A dotted path of segments: any prefix of an address (`module.db`,
/// `module.db["a"]`, `file.file`), as `--only` and `state list` take them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    pub segments: Vec<Segment>,
}

impl Path {
    /// Splits `text` at the dots outside keys. None when a key is unclosed,
    /// something other than a dot follows a key, or a name is not an
    /// identifier (letters, digits, `_`, `-`; not starting with a digit).
    pub fn parse(text: &str) -> Option<Path> {
        let mut segments = Vec::new();
        let (mut start, mut key, mut depth, mut quoted, mut escaped) = (0usize, None::<usize>, 0usize, false, false);
        let mut push = |start: usize, end: usize, key: Option<usize>| -> Option<()> {
            let name = &text[start..key.unwrap_or(end)];
            let ident =
                name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ident {
                return None;
            }
            segments.push(Segment { name: name.to_string(), key: key.map(|k| text[k..end].to_string()) });
            Some(())
        };
        for (i, c) in text.char_indices() {
            if quoted {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => quoted = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' if depth > 0 => quoted = true,
                '[' if depth == 0 && key.is_some() => return None,
                '[' => {
                    key.get_or_insert(i);
                    depth += 1;
                }
                ']' => depth = depth.checked_sub(1)?,
                '.' if depth == 0 => {
                    push(start, i, key.take())?;
                    start = i + 1;
                }
                // Nothing but a dot follows a key.
                _ if depth == 0 && key.is_some() => return None,
                _ => {}
            }
        }
        if depth != 0 || quoted {
            return None;
        }
        push(start, text.len(), key)?;
        Some(Path { segments })
    }

    /// Whether `address` lies inside what this path names: a component (or
    /// resource) and everything under it. `module.db` covers
    /// `module.db.random.password.x` and `module.db["a"].…`; `module.db["a"]`
    /// covers what is under that instance but not itself; `module.dbx…` is
    /// not covered by `module.db`.
    pub fn covers(&self, address: &Path) -> bool {
        let (t, a) = (&self.segments, &address.segments);
        let Some((last, init)) = t.split_last() else { return false };
        if a.len() < t.len() || init.iter().zip(a).any(|(x, y)| x != y) {
            return false;
        }
        let at = &a[t.len() - 1];
        if at.name != last.name {
            return false;
        }
        match (&last.key, &at.key) {
            (None, Some(_)) => true,
            (x, y) if x == y => a.len() > t.len(),
            _ => false,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// The address of a recorded instance: components, then provider, type,
/// name and an optional instance key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    path: Path,
}

impl Address {
    /// None unless `text` is `<provider>.<type>.<name>[key]` after any number
    /// of components `<kind>.<name>[key]`.
    pub fn parse(text: &str) -> Option<Address> {
        let path = Path::parse(text)?;
        let n = path.segments.len();
        if n < 3 || (n - 3) % 2 != 0 {
            return None;
        }
        // Keys go on a component's name and on the instance, nowhere else.
        let misplaced = path.segments.iter().enumerate().any(|(i, s)| s.key.is_some() && !(i == n - 1 || (i < n - 3 && i % 2 == 1)));
        if misplaced {
            return None;
        }
        Some(Address { path })
    }

    /// The components' segments, pairwise `<kind>`, `<name>[key]`.
    pub fn components(&self) -> &[Segment] {
        &self.path.segments[..self.path.segments.len() - 3]
    }

    pub fn provider(&self) -> &str {
        &self.path.segments[self.path.segments.len() - 3].name
    }

    pub fn rtype(&self) -> &str {
        &self.path.segments[self.path.segments.len() - 2].name
    }

    pub fn name(&self) -> &str {
        &self.last().name
    }

    /// The instance key as written (`["a"]`, `[0]`), if any.
    pub fn key(&self) -> Option<&str> {
        self.last().key.as_deref()
    }

    /// The resource this instance belongs to: the address without its key.
    pub fn resource(&self) -> Address {
        let mut path = self.path.clone();
        if let Some(last) = path.segments.last_mut() {
            last.key = None;
        }
        Address { path }
    }

    pub fn as_path(&self) -> &Path {
        &self.path
    }

    fn last(&self) -> &Segment {
        &self.path.segments[self.path.segments.len() - 1]
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(t: &str, a: &str) -> bool {
        Path::parse(t).zip(Path::parse(a)).is_some_and(|(t, a)| t.covers(&a))
    }

    #[test]
    fn addresses_parse_and_print_back() {
        for text in [
            "file.file.x",
            "random.password.p[\"a\"]",
            "random.password.p[3]",
            "stack.core.module.db[\"a\"].postgres.role.app",
            "module.m.file.file.x[\"a.b[c]\\\"d\"]",
        ] {
            let a = Address::parse(text).unwrap_or_else(|| panic!("{text} parses"));
            assert_eq!(a.to_string(), text);
        }
        let a = Address::parse("stack.core.module.db[\"a\"].postgres.role.app[\"k\"]").unwrap();
        assert_eq!((a.provider(), a.rtype(), a.name(), a.key()), ("postgres", "role", "app", Some("[\"k\"]")));
        assert_eq!(a.components().len(), 4);
        assert_eq!(a.resource().to_string(), "stack.core.module.db[\"a\"].postgres.role.app");
    }

    #[test]
    fn what_the_state_cannot_record_is_refused() {
        for text in [
            "",
            "file.file",
            "a.b.c.d",
            "file[\"a\"].file.x",
            "module.m.file[\"a\"].file.x",
            "file.file.x[\"a\"]y",
            "file.file.x[\"a\"][0]",
            "file.file.x[\"a",
            "file.file.x]",
            "file.file.1x",
            "file..x",
            "module.m[\"a\"]",
        ] {
            assert_eq!(Address::parse(text), None, "{text}");
        }
    }

    #[test]
    fn a_path_covers_what_lies_inside_it() {
        assert!(covers("module.db", "module.db.random.password.x"));
        assert!(covers("module.db", "module.db[0].postgres.role.app"));
        assert!(covers("module.db[0]", "module.db[0].postgres.role.app"));
        assert!(covers("file.file.a", "file.file.a[\"x\"]"));
        assert!(covers("file.file", "file.file.a"));
        assert!(!covers("module.db", "module.dbx.random.password.x"));
        assert!(!covers("module.db[0]", "module.db[1].postgres.role.app"));
        assert!(!covers("file.file.a[\"x\"]", "file.file.a[\"x\"]"));
        assert!(!covers("file.file.a", "file.file.a"));
        assert!(!covers("module.db.random", "module.db"));
    }

    #[test]
    fn no_input_panics() {
        for text in ["[", "]", "\"", "a[\"]", "a.[", "é.é.é", "a[[]]", ".", "a.", ".a", "a[\"\\", "a[\"\\\"]"] {
            let _ = Address::parse(text);
            let _ = Path::parse(text).map(|p| p.covers(&p));
        }
    }
}
