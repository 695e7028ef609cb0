//! Provider source addresses (`hostname/namespace/type`) and platforms
//! (`linux_amd64`), validated and normalised as Terraform does.

use std::fmt;

/// The registry a `namespace/type` source names.
pub const DEFAULT_REGISTRY: &str = "registry.terraform.io";
/// The namespace a bare `type` source names (Terraform's legacy default).
pub const DEFAULT_NAMESPACE: &str = "hashicorp";

/// A provider's source address: `hostname/namespace/type`, every part
/// lower-case. Parsed from `type`, `namespace/type` (the hostname defaults to
/// [`DEFAULT_REGISTRY`]) or `hostname[:port]/namespace/type`; shown (and
/// locked) always in full.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderAddr {
    /// `registry.terraform.io`, `example.com:8443` (a port 443 is dropped).
    pub hostname: String,
    pub namespace: String,
    /// The provider type: `aws`, `opentelekomcloud`.
    pub ptype: String,
}

impl ProviderAddr {
    /// Parses a source string as Terraform's `required_providers` does; the
    /// error says what is wrong (for a help sentence).
    pub fn parse(source: &str) -> Result<ProviderAddr, String> {
        if source.trim() != source || source.is_empty() {
            return Err("a provider source is `namespace/type` or `hostname/namespace/type`, without spaces".into());
        }
        let parts: Vec<&str> = source.split('/').collect();
        let (hostname, namespace, ptype) = match parts.as_slice() {
            [t] => (DEFAULT_REGISTRY.to_string(), DEFAULT_NAMESPACE.to_string(), part(t, "type")?),
            [n, t] => (DEFAULT_REGISTRY.to_string(), part(n, "namespace")?, part(t, "type")?),
            [h, n, t] => (hostname(h)?, part(n, "namespace")?, part(t, "type")?),
            _ => return Err(format!("`{source}` has {} parts; a provider source is `namespace/type` or `hostname/namespace/type`", parts.len())),
        };
        if let Some(rest) = ptype.strip_prefix("terraform-provider-") {
            return Err(format!(
                "the type `{ptype}` starts with `terraform-provider-`, the prefix of repository names, not of provider types: write `{namespace}/{rest}`"
            ));
        }
        Ok(ProviderAddr { hostname, namespace, ptype })
    }

    /// The directories of this provider under a mirror or the install
    /// directory: `hostname/namespace/type`.
    pub fn rel_dir(&self) -> std::path::PathBuf {
        std::path::Path::new(&self.hostname).join(&self.namespace).join(&self.ptype)
    }
}

impl fmt::Display for ProviderAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.hostname, self.namespace, self.ptype)
    }
}

impl std::str::FromStr for ProviderAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProviderAddr::parse(s)
    }
}

/// A namespace or type: letters, digits and dashes (ASCII; case folded to
/// lower case), no leading, trailing or doubled dash, no dots.
fn part(given: &str, what: &str) -> Result<String, String> {
    if given.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if given.contains('.') {
        return Err(format!("the {what} `{given}` contains a dot; dots are allowed only in the hostname"));
    }
    if given.contains("--") {
        return Err(format!("the {what} `{given}` contains two consecutive dashes"));
    }
    if given.len() > 255 || !given.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || given.starts_with('-') || given.ends_with('-') {
        return Err(format!("the {what} `{given}` must contain only letters, digits and dashes, and may not start or end with a dash"));
    }
    Ok(given.to_ascii_lowercase())
}

/// A registry hostname with an optional port: DNS labels of ASCII letters,
/// digits and dashes (internationalised names in their `xn--` form),
/// lower-cased; `:443` is dropped as Terraform does.
fn hostname(given: &str) -> Result<String, String> {
    let (host, port) = match given.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (given, None),
    };
    let bad =
        || format!("`{given}` is not a hostname (letters, digits, dashes and dots, with an optional `:port`; internationalised names in their `xn--` form)");
    if host.is_empty() || host.len() > 253 || host.ends_with('.') {
        return Err(bad());
    }
    for label in host.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad());
        }
    }
    let host = host.to_ascii_lowercase();
    match port {
        None => Ok(host),
        Some(p) => match p.parse::<u16>() {
            Ok(443) if !p.starts_with('0') => Ok(host),
            Ok(n) if n > 0 && !p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit()) => Ok(format!("{host}:{n}")),
            _ => Err(format!("`{given}` has an invalid port `{p}`")),
        },
    }
}

/// An operating system and architecture in Terraform's names
/// (`linux_amd64`, `darwin_arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Platform {
    /// The platform this Plinth runs on.
    pub fn current() -> Platform {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            other => other,
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform { os: os.into(), arch: arch.into() }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.os, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        ProviderAddr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).to_string()
    }

    #[test]
    fn sources_parse_and_normalise_as_terraform_does() {
        assert_eq!(ok("opentelekomcloud/opentelekomcloud"), "registry.terraform.io/opentelekomcloud/opentelekomcloud");
        assert_eq!(ok("HashiCorp/AWS"), "registry.terraform.io/hashicorp/aws");
        assert_eq!(ok("random"), "registry.terraform.io/hashicorp/random");
        assert_eq!(ok("Example.COM/acme/thing-2"), "example.com/acme/thing-2");
        assert_eq!(ok("localhost:8443/ns/t"), "localhost:8443/ns/t");
        assert_eq!(ok("example.com:443/ns/t"), "example.com/ns/t");
        assert_eq!(ok("xn--bcher-kva.example/ns/t"), "xn--bcher-kva.example/ns/t");
        let a = ProviderAddr::parse("workato-devs/workato").unwrap();
        assert_eq!((a.hostname.as_str(), a.namespace.as_str(), a.ptype.as_str()), ("registry.terraform.io", "workato-devs", "workato"));
        assert_eq!(a.rel_dir(), std::path::Path::new("registry.terraform.io/workato-devs/workato"));
    }

    #[test]
    fn invalid_sources_say_why() {
        for (bad, why) in [
            ("", "without spaces"),
            (" a/b", "without spaces"),
            ("a/b/c/d", "4 parts"),
            ("a//b", "namespace is empty"),
            ("a/b.c", "dot"),
            ("a--b/c", "two consecutive dashes"),
            ("-a/b", "start or end with a dash"),
            ("a/b_c", "only letters"),
            ("bücher/x", "only letters"),
            ("hashicorp/terraform-provider-aws", "write `hashicorp/aws`"),
            ("exa_mple.com/a/b", "not a hostname"),
            ("example.com:0/a/b", "invalid port"),
            ("example.com:99999/a/b", "invalid port"),
            ("example.com:/a/b", "invalid port"),
            ("example..com/a/b", "not a hostname"),
        ] {
            let e = ProviderAddr::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_platform_has_terraforms_names() {
        let p = Platform::current().to_string();
        assert!(["linux_amd64", "linux_arm64", "darwin_arm64", "darwin_amd64"].contains(&p.as_str()) || p.contains('_'), "{p}");
    }
}
