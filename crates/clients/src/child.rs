//! The environment of every child process Plinth starts: exec providers,
//! `git`, kubeconfig `exec` credential plugins, Terraform provider plugins
//! and `gpgv`.
//!
//! Invariants:
//! - Every spawn goes through [`command`]: it clears the inherited
//!   environment and passes an explicit allow-list (what the kind of child
//!   needs: `PATH`, `HOME`, locale, temporary directory, proxies and CA
//!   settings; for git its SSH agent and git's own configuration variables;
//!   for credential plugins the *pointers* to cloud profiles, never keys),
//!   plus what the configuration passes. The one exception is a child a
//!   library spawns itself from Plinth's environment (kube's kubeconfig
//!   credential plugins): it is given [`withheld`], the names to remove,
//!   which leaves it exactly [`environment`] (a variable whose name is not
//!   UTF-8 cannot be named, and no allow-list holds one).
//! - Plinth's own secrets never reach a child: the state keys
//!   (`PLINTH_STATE_KEY`, `_FILE`, `_PREVIOUS`), the state address
//!   (`PLINTH_STATE`, which may hold a password), the `PLINTH_VAR_*` param
//!   values, and cloud credentials in Plinth's environment
//!   (`AWS_SECRET_ACCESS_KEY`…) are not on any allow-list, and the state
//!   variables are removed even when a configuration names them.
//! - `git` is started only by [`crate::git::Git`], which adds its own
//!   hardening (no prompts, no repository redirection, credentials off the
//!   command line) on top of this allow-list.

use std::ffi::{OsStr, OsString};
use std::process::Command;

/// What a child is, which decides what of Plinth's environment it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An `exec` provider program.
    ExecProvider,
    /// The `git` program (the git provider and git module sources).
    Git,
    /// A kubeconfig `exec` credential plugin.
    CredentialPlugin,
    /// A Terraform/OpenTofu provider plugin: the common variables, its
    /// plugin handshake, and what its provider block's `pass_env` names
    /// (given as `extra`); unlike Terraform, no credentials by default.
    TerraformProvider,
    /// `gpgv`, checking a signature ([`crate::gpgv`]): the common
    /// allow-list only (never `GNUPGHOME`: it is given its own home).
    Verifier,
}

/// Every child: the program search path, the home directory, the user,
/// locale and time zone, where temporary files go, proxies and CA bundles.
const COMMON: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TMP",
    "TEMP",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Git: its SSH agent and SSH command, its CA settings and its own
/// configuration (files, and `GIT_CONFIG_*` given in the environment).
const GIT: &[&str] = &[
    "SSH_AUTH_SOCK",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "GIT_SSL_NO_VERIFY",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_COUNT",
    "GIT_EXEC_PATH",
    "XDG_CONFIG_HOME",
];

/// Credential plugins (`aws eks get-token`, `gke-gcloud-auth-plugin`,
/// `kubelogin`): which profile and configuration to use — never the keys
/// themselves; a plugin that needs more gets it from the kubeconfig's `env`.
const CREDENTIAL_PLUGIN: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "CLOUDSDK_CONFIG",
    "CLOUDSDK_CORE_PROJECT",
    "AZURE_CONFIG_DIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
];

/// Plinth's own secrets: never in a child's environment, even when a
/// configuration names them.
const NEVER: &[&str] = &["PLINTH_STATE_KEY", "PLINTH_STATE_KEY_FILE", "PLINTH_STATE_KEY_PREVIOUS", "PLINTH_STATE"];

fn allowed(kind: Kind, name: &str) -> bool {
    if COMMON.contains(&name) || name.starts_with("LC_") {
        return true;
    }
    match kind {
        Kind::ExecProvider | Kind::Verifier => false,
        Kind::Git => GIT.contains(&name) || name.starts_with("GIT_CONFIG_KEY_") || name.starts_with("GIT_CONFIG_VALUE_"),
        Kind::CredentialPlugin => CREDENTIAL_PLUGIN.contains(&name),
        Kind::TerraformProvider => false,
    }
}

/// The environment of a child of `kind`: the allowed part of `inherited`,
/// then `extra` (what the configuration passes), without Plinth's secrets.
pub fn environment<I>(kind: Kind, inherited: I, extra: &[(String, String)]) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut out: Vec<(OsString, OsString)> = inherited.into_iter().filter(|(k, _)| k.to_str().is_some_and(|k| allowed(kind, k))).collect();
    for (k, v) in extra {
        out.retain(|(have, _)| have.as_os_str() != OsStr::new(k));
        out.push((k.into(), v.into()));
    }
    out.retain(|(k, _)| !k.to_str().is_some_and(|k| NEVER.contains(&k)));
    out
}

/// The names of `inherited` a child of `kind` must not get when it starts
/// from Plinth's whole environment and `extra` is set on top: what
/// [`environment`] leaves out, and Plinth's secrets always (even when
/// `extra` names them). For libraries that spawn the child themselves and
/// can only remove variables (kube's `ExecConfig::drop_env`).
pub fn withheld<I>(kind: Kind, inherited: I, extra: &[String]) -> Vec<String>
where
    I: IntoIterator<Item = OsString>,
{
    let mut out: Vec<String> = inherited
        .into_iter()
        .filter_map(|k| k.into_string().ok())
        .filter(|k| !allowed(kind, k) && !extra.contains(k) && !NEVER.contains(&k.as_str()))
        .collect();
    out.extend(NEVER.iter().map(|k| k.to_string()));
    out.sort();
    out.dedup();
    out
}

/// A command for `program` whose environment is exactly [`environment`]
/// of Plinth's own. The one way Plinth starts a child process.
pub fn command(program: impl AsRef<OsStr>, kind: Kind, extra: &[(String, String)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(environment(kind, std::env::vars_os(), extra));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(kind: Kind, extra: &[(String, String)]) -> Vec<(String, String)> {
        let inherited = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C"),
            ("PLINTH_STATE_KEY", "k"),
            ("PLINTH_STATE_KEY_FILE", "/k"),
            ("PLINTH_STATE_KEY_PREVIOUS", "p"),
            ("PLINTH_STATE", "postgres://u:pw@h/db"),
            ("PLINTH_VAR_token", "t"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_PROFILE", "prod"),
            ("SSH_AUTH_SOCK", "/sock"),
            ("GIT_CONFIG_KEY_0", "x"),
        ];
        environment(kind, inherited.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))), extra)
            .into_iter()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
            .collect()
    }

    #[test]
    fn children_get_the_allow_list_and_never_plinths_secrets() {
        for kind in [Kind::ExecProvider, Kind::Git, Kind::CredentialPlugin, Kind::TerraformProvider, Kind::Verifier] {
            let names: Vec<String> =
                env_of(kind, &[("PLINTH_STATE_KEY".into(), "k".into()), ("MINE".into(), "1".into())]).into_iter().map(|(k, _)| k).collect();
            for gone in [
                "PLINTH_STATE_KEY",
                "PLINTH_STATE_KEY_FILE",
                "PLINTH_STATE_KEY_PREVIOUS",
                "PLINTH_STATE",
                "PLINTH_VAR_token",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_ACCESS_KEY_ID",
            ] {
                assert!(!names.iter().any(|n| n == gone), "{kind:?} got {gone}");
            }
            for kept in ["PATH", "HOME", "LC_ALL", "MINE"] {
                assert!(names.iter().any(|n| n == kept), "{kind:?} lacks {kept}");
            }
            assert_eq!(names.iter().any(|n| n == "SSH_AUTH_SOCK" || n == "GIT_CONFIG_KEY_0"), kind == Kind::Git, "{kind:?}");
            assert_eq!(names.iter().any(|n| n == "AWS_PROFILE"), kind == Kind::CredentialPlugin, "{kind:?}");
        }
    }

    #[test]
    fn withheld_names_leave_exactly_the_environment() {
        let inherited = ["PATH", "HOME", "LC_ALL", "PLINTH_STATE_KEY", "PLINTH_VAR_token", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "REGION"];
        let extra = vec!["REGION".to_string(), "PLINTH_STATE".to_string()];
        let gone = withheld(Kind::CredentialPlugin, inherited.iter().map(OsString::from), &extra);
        let left: Vec<&str> = inherited.iter().copied().filter(|k| !gone.iter().any(|g| g == k)).collect();
        assert_eq!(left, ["PATH", "HOME", "LC_ALL", "AWS_PROFILE", "REGION"]);
        // Plinth's secrets are removed even when not inherited or when `extra` sets them.
        for secret in NEVER {
            assert!(gone.iter().any(|g| g == secret), "{secret}");
        }
        let env = environment(
            Kind::CredentialPlugin,
            inherited.iter().map(|k| (OsString::from(k), OsString::from("v"))),
            &[("REGION".into(), "eu".into()), ("PLINTH_STATE".into(), "x".into())],
        );
        let names: Vec<String> = env.into_iter().map(|(k, _)| k.into_string().unwrap()).collect();
        assert_eq!(names, ["PATH", "HOME", "LC_ALL", "AWS_PROFILE", "REGION"]);
    }
}
