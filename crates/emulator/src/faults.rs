//! Faults a test aims at calls: "the next insert fails", "the next 3 writes
//! are applied and then their answers are lost". Both emulators keep one
//! `FaultPlan` of their own fault type.
//!
//! A fault fires either *before* the call is applied (nothing changes; the
//! classic transient error) or *after* it (the state machine applied the
//! write, then the answer is replaced by the fault). The second kind is what
//! makes a client's retry meet its own earlier write: an insert that answers
//! 409, a booking whose `Idempotency-Key` replays the first answer.

use serde::{Deserialize, Serialize};

/// When a fault fires relative to applying the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The call fails and changes nothing.
    #[default]
    Before,
    /// The call is applied, then its answer fails.
    After,
}

/// Which calls a fault is aimed at: every call (`any`), every write
/// (`writes`), or one call by the name the counters use.
pub const ANY: &str = "any";
pub const WRITES: &str = "writes";

#[derive(Debug, Clone)]
struct Aimed<F> {
    on: String,
    phase: Phase,
    fault: F,
    remaining: usize,
}

/// The faults waiting for calls, in the order they were injected.
#[derive(Debug, Clone)]
pub struct FaultPlan<F> {
    aimed: Vec<Aimed<F>>,
    /// The call names this emulator knows, and which of them are writes.
    calls: &'static [(&'static str, bool)],
}

/// A fault that cannot be aimed as asked (a target naming no call of this
/// emulator, a latency after the answer): a typo in a test must fail loudly
/// rather than aim a fault at nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFault(pub String);

impl std::fmt::Display for BadFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadFault {}

impl<F: Copy> FaultPlan<F> {
    pub fn new(calls: &'static [(&'static str, bool)]) -> FaultPlan<F> {
        FaultPlan {
            aimed: Vec::new(),
            calls,
        }
    }

    /// Queues `count` firings of `fault` for calls matching `on`.
    pub fn push(&mut self, on: &str, phase: Phase, fault: F, count: usize) -> Result<(), BadFault> {
        if on != ANY && on != WRITES && !self.calls.iter().any(|(c, _)| *c == on) {
            let known: Vec<&str> = self.calls.iter().map(|(c, _)| *c).collect();
            return Err(BadFault(format!(
                "no call named {on:?}: aim at \"any\", \"writes\" or one of {known:?}"
            )));
        }
        if count > 0 {
            self.aimed.push(Aimed {
                on: on.to_string(),
                phase,
                fault,
                remaining: count,
            });
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.aimed.clear();
    }

    /// Whether `call` is one of this emulator's writes.
    pub fn is_write(&self, call: &str) -> bool {
        self.calls.iter().any(|(c, w)| *c == call && *w)
    }

    /// The first fault injected that waits for this call in this phase, if
    /// any; it is used up by firing.
    pub fn take(&mut self, call: &str, phase: Phase) -> Option<F> {
        let is_write = self.is_write(call);
        let i = self.aimed.iter().position(|a| {
            a.phase == phase
                && (a.on == ANY || a.on == call || (a.on == WRITES && is_write))
                && (phase == Phase::Before || is_write)
        })?;
        let a = &mut self.aimed[i];
        a.remaining -= 1;
        let fault = a.fault;
        if a.remaining == 0 {
            self.aimed.remove(i);
        }
        Some(fault)
    }

    /// Faults still waiting, for the admin API.
    pub fn pending(&self) -> usize {
        self.aimed.iter().map(|a| a.remaining).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLS: &[(&str, bool)] = &[("list", false), ("insert", true), ("patch", true)];

    #[test]
    fn faults_fire_in_order_for_the_calls_they_aim_at() {
        let mut p: FaultPlan<u8> = FaultPlan::new(CALLS);
        p.push("insert", Phase::After, 1, 2).unwrap();
        p.push(ANY, Phase::Before, 2, 1).unwrap();
        p.push(WRITES, Phase::After, 3, 1).unwrap();
        assert_eq!(
            p.take("list", Phase::After),
            None,
            "reads are never applied"
        );
        assert_eq!(p.take("list", Phase::Before), Some(2));
        assert_eq!(p.take("list", Phase::Before), None);
        assert_eq!(p.take("patch", Phase::After), Some(3));
        assert_eq!(p.take("insert", Phase::After), Some(1));
        assert_eq!(p.take("insert", Phase::After), Some(1));
        assert_eq!(p.take("insert", Phase::After), None);
        assert_eq!(p.pending(), 0);
        assert!(p.push("insret", Phase::After, 1, 1).is_err());
    }
}
