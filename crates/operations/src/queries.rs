//! Read-only lookups in an environment's state: outputs (`plinth output`),
//! recorded instances (`plinth state show`), the drift history
//! (`plinth drift --history`), and removing a stale lock (`plinth unlock`).
//!
//! Invariants: nothing here creates a state ([`Operation::open_store`]);
//! what is asked for and not recorded is `P5004` with a "did you mean";
//! results come in one order whatever the backend returns (outputs by name,
//! instances by address).

use crate::diagnostic::{suggestion, Diagnostic};
use crate::state::model::{DriftRecord, InstanceRecord, OutputRecord};
use crate::{Failed, Operation};

/// Every recorded output, by name.
pub fn outputs(op: &mut Operation) -> Result<Vec<(String, OutputRecord)>, Failed> {
    let snap = op.open_store()?.snapshot().map_err(Failed::bare)?;
    let mut outputs: Vec<(String, OutputRecord)> = snap.outputs.into_iter().collect();
    outputs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(outputs)
}

/// One recorded output (`P5004` when there is none of that name).
pub fn output(op: &mut Operation, name: &str) -> Result<OutputRecord, Failed> {
    let mut snap = op.open_store()?.snapshot().map_err(Failed::bare)?;
    if let Some(o) = snap.outputs.shift_remove(name) {
        return Ok(o);
    }
    // "Did you mean" costs an edit distance per name: only on a miss.
    let known = suggestion(name, snap.outputs.keys().map(String::as_str));
    Err(Failed::bare(
        Diagnostic::new("P5004", "no such output").help(format!("The state records no output `{name}`.{known} Outputs are recorded by `plinth apply`.")),
    ))
}

/// The state's serial and the recorded instances a pattern selects (all
/// without one), in the state's order; `P5004` when a pattern selects none.
pub fn instances(op: &mut Operation, pattern: Option<&str>) -> Result<(i64, Vec<InstanceRecord>), Failed> {
    let snap = op.open_store()?.snapshot().map_err(Failed::bare)?;
    let serial = snap.serial;
    let all: Vec<InstanceRecord> = snap.instances.into_values().collect();
    let Some(pattern) = pattern else { return Ok((serial, all)) };
    let (selected, rest): (Vec<InstanceRecord>, Vec<InstanceRecord>) = all.into_iter().partition(|r| crate::plan::glob_match(pattern, &r.address));
    if selected.is_empty() {
        // On a miss only (`rest` is then every instance): an edit distance per address.
        let known = suggestion(pattern, rest.iter().map(|r| r.address.as_str()));
        return Err(Failed::bare(
            Diagnostic::new("P5004", "no such instance in the state").help(format!("`{pattern}` is not recorded.{known} `plinth state list` shows what is.")),
        ));
    }
    Ok((serial, selected))
}

/// The drift checks recorded for this environment, oldest first.
pub fn drift_history(op: &mut Operation) -> Result<Vec<DriftRecord>, Failed> {
    op.open_store()?.drift_history().map_err(Failed::bare)
}

/// Removes the environment's lock whoever holds it; false when there was none.
pub fn unlock(op: &mut Operation) -> Result<bool, Failed> {
    op.open_store()?.unlock(None).map_err(Failed::bare)
}
