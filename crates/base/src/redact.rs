//! The one redaction of URLs that Plinth prints: state addresses, module
//! sources, git remotes, HTTP endpoints, and URLs inside messages from git
//! or servers; and the percent coding of URL query values
//! ([`percent_decode`], [`percent_encode`]) every address parser uses.
//!
//! Invariants: the user information of a URL is never shown, except the user
//! name of a `postgres://`/`postgresql://` URL (`postgres://app:***@db/x`);
//! any other user information, password or not, becomes `***` (a token is
//! often given as the user name: `https://TOKEN@host`). Query parameters
//! whose name says they carry a credential (`password`, `token`, `secret`,
//! `signature`, `credential`, `key`, `sig`, `auth`…) keep their name and show
//! `***`. Everything else is shown as given. Redacting twice changes nothing.

/// Query parameter names (lower case) whose values are credentials, by part.
const SECRET_PARTS: &[&str] = &["password", "passwd", "pwd", "secret", "token", "signature", "credential", "apikey", "api_key", "api-key", "auth"];
/// … and by whole name.
const SECRET_NAMES: &[&str] = &["sig", "key", "pass"];

fn secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.contains(&name.as_str()) || SECRET_PARTS.iter().any(|p| name.contains(p))
}

/// One URL (or address) as it may be printed.
pub fn url(address: &str) -> String {
    let Some(sep) = address.find("://") else { return address.to_string() };
    let scheme = &address[..sep];
    let rest = &address[sep + 3..];
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, tail) = rest.split_at(query_at);
    let mut out = String::with_capacity(address.len());
    out.push_str(scheme);
    out.push_str("://");
    match before_query.rfind('@') {
        Some(at) => {
            let userinfo = &before_query[..at];
            let postgres = scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql");
            match (postgres, userinfo.split_once(':')) {
                (true, Some((user, _))) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                (true, None) => out.push_str(userinfo),
                (false, _) => out.push_str("***"),
            }
            out.push_str(&before_query[at..]);
        }
        None => out.push_str(before_query),
    }
    match tail.strip_prefix('?') {
        Some(query) => {
            let (query, fragment) = match query.find('#') {
                Some(i) => query.split_at(i),
                None => (query, ""),
            };
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if secret_param(k) => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

/// Every URL in a text (a message from git, a server, a parse error)
/// redacted as [`url`] does; a URL ends at white space or a quote.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: ASCII letters, digits, `+ - .` before `://`.
        let start = rest[..i].bytes().rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))).map_or(0, |p| p + 1);
        out.push_str(&rest[..start]);
        let after = &rest[i + 3..];
        let end = i + 3 + after.find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '<' | '>')).unwrap_or(after.len());
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Decodes `%XX` escapes and `+` (a space) in a URL query value; None when
/// an escape is malformed or the result is not UTF-8. State addresses
/// (`s3://…?endpoint=…`) and PostgreSQL URLs (`?sslrootcert=…`) use it.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986 unreserved characters: the
/// inverse of [`percent_decode`] for query values of state addresses.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_tokens_and_credential_parameters_are_hidden() {
        // PostgreSQL: the user stays, the password goes, in the user info or the query.
        assert_eq!(url("postgres://u:s3cret@db:5432/x?schema=a"), "postgres://u:***@db:5432/x?schema=a");
        assert_eq!(url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(url("postgresql://db/x?user=u&password=s3cret"), "postgresql://db/x?user=u&password=***");
        assert_eq!(url("postgres://u:p/w@db/x"), "postgres://u:***@db/x");
        assert_eq!(url("postgres://u@db/x?sslmode=require&PASSWORD=s3cret&sslpassword=k"), "postgres://u@db/x?sslmode=require&PASSWORD=***&sslpassword=***");
        // Elsewhere any user information goes: tokens are given as user names.
        assert_eq!(url("https://user:token@host/x.git"), "https://***@host/x.git");
        assert_eq!(url("https://ghp_tok@host/x.git"), "https://***@host/x.git");
        assert_eq!(url("ssh://git@host/y"), "ssh://***@host/y");
        assert_eq!(url("x://@"), "x://***@");
        // Tokens in the query.
        assert_eq!(url("https://h/api?access_token=abc&page=2#top"), "https://h/api?access_token=***&page=2#top");
        assert_eq!(url("https://b.s3/o?X-Amz-Signature=f00&X-Amz-Credential=AK&x=1"), "https://b.s3/o?X-Amz-Signature=***&X-Amz-Credential=***&x=1");
        assert_eq!(url("s3://bucket/p?endpoint=http%3A%2F%2Fh&region=r"), "s3://bucket/p?endpoint=http%3A%2F%2Fh&region=r");
        assert_eq!(url("/path/to/state.db"), "/path/to/state.db");
        for u in ["postgres://u:s@h/d?password=p", "https://a:b@h/?token=t"] {
            assert_eq!(url(&url(u)), url(u), "idempotent");
        }
    }

    #[test]
    fn every_url_in_a_text_is_redacted() {
        assert_eq!(
            text("fatal: unable to access 'https://u:p@ss@git.example:8443/a/b/': 403"),
            "fatal: unable to access 'https://***@git.example:8443/a/b/': 403"
        );
        assert_eq!(text("https://host/x and ssh://git@host/y"), "https://host/x and ssh://***@host/y");
        assert_eq!(text("no url here"), "no url here");
        assert_eq!(text("a://"), "a://");
        assert_eq!(text("ünï://tök@en/ü"), "ünï://***@en/ü");
        assert_eq!(text("see git+https://t0k@h/r.git//m?ref=v1 now"), "see git+https://***@h/r.git//m?ref=v1 now");
        assert_eq!(text("at postgres://app:pw@db/x?password=p refused"), "at postgres://app:***@db/x?password=*** refused");
    }
}
