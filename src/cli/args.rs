//! Positional arguments shared by `output` and the `state` commands: where
//! the project directory is among them. (Which recorded addresses a
//! `state list` pattern selects is `operations::surgery::address_selected`.)
//!
//! Invariants: every command takes the project directory as its last
//! positional argument (default: the current directory). `output` and
//! `state show|rm|mv|list` also take names or addresses, so a last argument
//! is the directory only when it cannot be an address: it contains `/`
//! (outside an instance key), starts with `.`, or is a directory holding
//! `*.plinth` files. With `-C DIR` no positional argument is a directory.
//! Nothing here touches the filesystem beyond reading a directory listing.

use crate::project;
use std::path::{Path, PathBuf};

/// Splits the project directory off `args`: `-C` (`flag`) if given; else
/// the last argument when there are more than `max_rest` arguments or it
/// can only be a directory ([`names_directory`]); else the current
/// directory. Returns the remaining arguments and the directory.
pub fn split_dir(mut args: Vec<String>, flag: Option<PathBuf>, max_rest: usize) -> (Vec<String>, PathBuf) {
    if let Some(dir) = flag {
        return (args, dir);
    }
    let last_is_dir = match args.last() {
        Some(last) => args.len() > max_rest || names_directory(last),
        None => false,
    };
    match args.pop() {
        Some(dir) if last_is_dir => (args, PathBuf::from(dir)),
        Some(other) => {
            args.push(other);
            (args, PathBuf::from("."))
        }
        None => (args, PathBuf::from(".")),
    }
}

/// Whether a positional argument names a project directory rather than an
/// address or an output name: a path (`/` before any `[`, or a leading
/// `.`), or an existing directory that holds `*.plinth` files.
pub fn names_directory(arg: &str) -> bool {
    let head = arg.split('[').next().unwrap_or(arg);
    head.contains('/') || head.starts_with('.') || project::check_dir(Path::new(arg)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_directory_is_the_flag_a_path_or_a_surplus_argument() {
        assert_eq!(split_dir(strings(&["pw"]), None, 1), (strings(&["pw"]), PathBuf::from(".")));
        assert_eq!(split_dir(strings(&["pw", "prj"]), None, 1), (strings(&["pw"]), PathBuf::from("prj")));
        assert_eq!(split_dir(strings(&["./prj"]), None, 1), (vec![], PathBuf::from("./prj")));
        assert_eq!(split_dir(strings(&["../prj"]), Some("x".into()), 1), (strings(&["../prj"]), PathBuf::from("x")));
        assert_eq!(split_dir(strings(&["file.*", "a/b"]), None, usize::MAX), (strings(&["file.*"]), PathBuf::from("a/b")));
        // A key may hold a slash: still an address.
        assert_eq!(split_dir(strings(&["file.file.x[\"a/b\"]"]), None, usize::MAX), (strings(&["file.file.x[\"a/b\"]"]), PathBuf::from(".")));
        assert_eq!(split_dir(vec![], None, 1), (vec![], PathBuf::from(".")));
    }
}
