//! Saved plans: `plan --out FILE` writes what was decided and everything
//! needed to decide it again; `apply FILE` reads it and refuses it when the
//! configuration (`P4004`), the state (`P4005`) or reality (`P4006`) moved
//! since, or when its state is not the one given now (`P5032`).

use crate::diagnostic::Diagnostic;
use crate::plan::Plan;
use crate::redact;
use crate::state::Store;
use crate::value::{Value, VarValue};
use crate::{Failed, Operation, Prepared, Vars, DEFAULT_ENV};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a plan file says it is.
pub const PLAN_FORMAT: &str = "plinth-plan";

/// A saved plan: what was decided and everything needed to decide it again.
#[derive(Serialize, Deserialize)]
pub struct PlanFile {
    pub format: String,
    pub version: u32,
    pub project_dir: PathBuf,
    /// The state address, redacted: a password is never written here.
    pub state: String,
    /// The address had credentials: apply resolves it again (PLINTH_STATE,
    /// the environment's backend) and checks it is the same state.
    #[serde(default)]
    pub state_redacted: bool,
    pub env: String,
    pub destroy: bool,
    pub only: Vec<String>,
    pub prior_serial: i64,
    pub source_hash: String,
    pub fingerprint: String,
    pub vars: IndexMap<String, (serde_json::Value, String)>,
    pub env_lookups: BTreeMap<String, Option<String>>,
    pub refresh: bool,
    /// A `drift --out` plan: only the changes that undo drift.
    #[serde(default)]
    pub remediate: bool,
}

/// Writes a plan file that `plinth apply FILE` applies exactly.
pub fn save_plan(path: &Path, op: &mut Operation, only: &[String], refresh: bool, remediate: bool, plan: &Plan, prepared: &Prepared) -> Result<(), Failed> {
    let address = op.state_address()?;
    let shown = redact::url(&address);
    let dir = op.dir();
    let pf = PlanFile {
        format: PLAN_FORMAT.into(),
        version: 1,
        project_dir: std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf()),
        state_redacted: shown != address,
        state: shown,
        env: plan.env.clone(),
        destroy: plan.destroy,
        only: only.to_vec(),
        prior_serial: plan.prior_serial,
        source_hash: prepared.loaded.project.source_hash(),
        fingerprint: plan.fingerprint(),
        vars: prepared.vars.iter().map(|(k, v)| (k.clone(), (v.value.to_json(), v.origin.clone()))).collect(),
        env_lookups: prepared.host.env_lookups.clone(),
        refresh,
        remediate,
    };
    let text = serde_json::to_string_pretty(&pf).unwrap_or_default();
    write_private(path, text.as_bytes()).map_err(|e| Failed::bare(Diagnostic::new("P4008", "cannot save the plan").help(format!("{}: {e}.", path.display()))))
}

/// Plan files may hold param values: readable by the owner only, written
/// as a new file under an unpredictable name and renamed over `path`, so an
/// existing file's mode (or a link at a guessed name) never decides who can
/// read it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::fsutil::write_atomic(path, bytes, 0o600)
}

impl PlanFile {
    /// Reads a plan file written by `plan --out` (`P4009` otherwise).
    pub fn read(path: &Path) -> Result<PlanFile, Failed> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failed::bare(Diagnostic::new("P4009", "cannot read the plan file").help(format!("{}: {e}.", path.display()))))?;
        serde_json::from_str(&text).ok().filter(|p: &PlanFile| p.format == PLAN_FORMAT && p.version == 1).ok_or_else(|| {
            Failed::bare(Diagnostic::new("P4009", "not a Plinth plan file").help(format!("{} was not written by `plinth plan --out`.", path.display())))
        })
    }

    /// The operation that applies this plan: its project directory, the
    /// state it was made against (unless `address` is given) and its
    /// environment (unless `env` is given). A state address that had
    /// credentials was saved redacted: it is resolved again and must be
    /// the same state (`P5032`).
    pub fn operation(&self, address: Option<String>, env: Option<String>) -> Result<Operation, Failed> {
        let address = match address {
            None if !self.state_redacted => Some(self.state.clone()),
            other => other,
        };
        // The environment the plan was made for (its state and its name).
        let env = match env {
            None if self.env != DEFAULT_ENV => Some(self.env.clone()),
            other => other,
        };
        let mut op = Operation::new(self.project_dir.clone(), address, env);
        if self.state_redacted {
            crate::state::check_saved_address(&self.state, &op.state_address()?).map_err(Failed::bare)?;
        }
        Ok(op)
    }

    /// Before planning again: the state is at the serial the plan was made
    /// against (`P4005`). The files are compared once the project is loaded
    /// with its modules ([`PlanFile::prepare`], `P4004`): the saved hash
    /// covers the modules' files too.
    pub fn check_serial(&self, store: &mut dyn Store) -> Result<(), Failed> {
        let serial = store.snapshot().map_err(Failed::bare)?.serial;
        if serial != self.prior_serial {
            return Err(Failed::bare(Diagnostic::new("P4005", "the state changed since the plan was saved").help(format!(
                "The plan was made against state serial {}, the state is at serial {serial} now (another apply ran). Run `plinth plan --out` again.",
                self.prior_serial
            ))));
        }
        Ok(())
    }

    /// After planning again: the same changes (`P4006`).
    pub fn check_fingerprint(&self, plan: &Plan) -> Result<(), Failed> {
        if plan.fingerprint() == self.fingerprint {
            return Ok(());
        }
        Err(Failed::bare(
            Diagnostic::new("P4006", "the saved plan no longer matches")
                .help("Planning again from the same configuration and state gave different changes (an object changed outside Plinth, or a file read by the configuration changed). Run `plinth plan --out` again."),
        ))
    }

    /// Loads the project for planning again, with the saved param values
    /// and the recorded `env()` answers.
    pub(crate) fn prepare(&self, op: &mut Operation) -> Result<Prepared, Failed> {
        op.replay(self.env_lookups.clone());
        let vars = self.vars.iter().map(|(k, (v, origin))| (k.clone(), VarValue { value: Value::from_json(v), origin: origin.clone(), span: None })).collect();
        let prepared = op.prepare(Vars::Given(vars))?;
        // The same files as when the plan was saved: the root's and every
        // module's (the hash covers both, so it is compared after loading).
        if prepared.loaded.project.source_hash() != self.source_hash {
            return Err(Failed::bare(
                Diagnostic::new("P4004", "the configuration changed since the plan was saved")
                    .help("A saved plan applies exactly what was reviewed; the `*.plinth` files differ now. Run `plinth plan --out` again."),
            ));
        }
        Ok(prepared)
    }
}
