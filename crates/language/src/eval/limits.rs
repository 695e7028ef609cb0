//! Total-work limits and cancellation of evaluation and rendering.
//!
//! Per-call limits (`range` length, format widths, nesting depth) bound one
//! call; the budget here bounds a whole run, so that nested `for`
//! expressions, functions producing large values inside loops, or templates
//! looping over large inputs end with a coded diagnostic within seconds and
//! bounded memory instead of running for hours.
//!
//! Invariants:
//! - The budget is process-wide and disarmed by default: library users and
//!   unit tests (which share one process) are never charged. The `plinth`
//!   binary arms it once ([`arm`]) before it loads a project.
//! - A unit of work is one element produced (a `for` iteration, an element of
//!   a list or object built, an element or 64 bytes of a function result, one
//!   template loop iteration). [`MAX_WORK`] units cost well under a second
//!   per million and, at the size of a value, a few hundred MB at most.
//! - The interrupt flag is set from the SIGINT/SIGTERM handler
//!   (`exec::Interrupt`) and read by the same checks: evaluation and
//!   rendering stop at the next charged step with `P2143`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Units of work a run may spend evaluating expressions and templates.
pub const MAX_WORK: u64 = 5_000_000;

static ARMED: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SPENT: AtomicU64 = AtomicU64::new(0);

/// Why a charged step stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The run spent [`MAX_WORK`] units.
    Exhausted,
    /// SIGINT or SIGTERM arrived.
    Interrupted,
}

/// Turns the budget on for this process (the CLI does, once).
pub fn arm() {
    SPENT.store(0, Ordering::Relaxed);
    ARMED.store(true, Ordering::SeqCst);
}

/// Records that the user asked the run to stop.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Charges `units` of work; Err once the budget is spent or the run was
/// interrupted.
#[inline]
pub fn charge(units: u64) -> Result<(), Stop> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err(Stop::Interrupted);
    }
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let before = SPENT.fetch_add(units, Ordering::Relaxed);
    if before.saturating_add(units) > MAX_WORK {
        return Err(Stop::Exhausted);
    }
    Ok(())
}

/// Units charged for a value just produced: its elements, or its length in
/// 64-byte steps for a string.
pub fn size_of(v: &crate::value::Value) -> u64 {
    use crate::value::Value;
    match v {
        Value::List(items) => items.len() as u64,
        Value::Map(m) => m.len() as u64,
        Value::String(s) => (s.len() / 64) as u64,
        Value::Sensitive(inner) => size_of(inner),
        _ => 0,
    }
}

/// The diagnostic for a stopped step, pointing at `span` when there is one.
pub fn diagnostic(stop: Stop, span: Option<crate::diagnostic::Span>) -> crate::diagnostic::Diagnostic {
    use crate::diagnostic::Diagnostic;
    let d = match stop {
        Stop::Exhausted => Diagnostic::new("P2142", "evaluation does too much work").help(format!(
            "Evaluating the configuration produced more than {MAX_WORK} values (for-expression iterations, list and object elements, function results); \
             nested `for` expressions over large collections multiply. Iterate over smaller collections or split the work."
        )),
        Stop::Interrupted => Diagnostic::new("P2143", "interrupted").help("Evaluation stopped on SIGINT/SIGTERM before anything was changed."),
    };
    match span {
        Some(s) => d.label(s, if stop == Stop::Exhausted { "the budget ran out here" } else { "stopped here" }),
        None => d,
    }
}
