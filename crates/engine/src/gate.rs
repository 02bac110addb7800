//! The one gate: what happens to a record, given its decision and how the
//! cycle stands. Pure, so that the first decision of a record and every
//! decision made again after a 409 or 412 meet the same rules in the same
//! order, and so that the rules are unit-tested without a store.

use hitosync_core::reconcile::{Book, Decision, Plan, Quiet, Refusal};

/// Which pass of the cycle a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Every record, decided once: what people see is written now.
    Visible,
    /// The decisions the first pass kept: bookkeeping, and cancellations
    /// the breaker has cleared since.
    Rest,
    /// The cancellations still kept: the breaker knows the cycle's count
    /// now, so each is applied or held.
    Last,
}

/// Whether this is a record's first decision in the cycle, or one made
/// again after the other side moved under a write (409, 412, a booking
/// that made its interview).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    First,
    Again,
}

/// What the mass-deletion breaker says of one more cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Breaker {
    /// It cannot take the cycle past `sync.max_deletions`.
    Clear,
    /// It might, once the records not yet decided are: wait.
    Unsure,
    /// The cycle is past the limit (or one side listed nothing).
    Tripped,
}

/// What Google's invitation limit says of a write that notifies attendees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invitations {
    Open,
    /// Held: the write waits until the next probe.
    Held,
    /// Held, and this write may be the one that finds out whether the limit
    /// has lifted.
    Probe,
}

/// How the cycle stands, as far as one record's fate is concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conditions {
    pub pass: Pass,
    pub attempt: Attempt,
    pub breaker: Breaker,
    pub invitations: Invitations,
}

/// What is written when a record's fate is to be applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Work<'d> {
    Book(&'d Book),
    Write(&'d Plan),
}

/// A record's fate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fate<'d> {
    /// Nothing can be written: an interview is parked with the reason, a
    /// booking is reported.
    Refused(&'d Refusal),
    /// Nothing to write: the agreement is stored if it changed, the work
    /// settled.
    Quiet(&'d Quiet),
    /// Kept with its decision for a later pass of this cycle.
    Later,
    /// A cancellation the breaker holds: parked until
    /// `hitosync sync --allow-mass-delete`.
    Held,
    /// Its write would mail attendees while Google's invitation limit
    /// holds: parked until the next probe.
    WaitForInvitations,
    /// Written now; `probe` when it is the write that tests the invitation
    /// limit.
    Apply { work: Work<'d>, probe: bool },
}

/// The rules, in the order they apply.
pub(crate) fn fate(decision: &Decision, c: Conditions) -> Fate<'_> {
    match decision {
        Decision::Refused(r) => Fate::Refused(r),
        Decision::Quiet(q) => Fate::Quiet(q),
        // A booking writes HITO-Link only, and makes the interview that the
        // rest of the work may refer to: always at once.
        Decision::Book(b) => Fate::Apply {
            work: Work::Book(b),
            probe: false,
        },
        Decision::Write(plan) => {
            if decision.is_destructive() {
                match c.breaker {
                    Breaker::Tripped => return Fate::Held,
                    Breaker::Unsure => return Fate::Later,
                    Breaker::Clear => {}
                }
            }
            let probe = decision.notifies()
                && match c.invitations {
                    Invitations::Open => false,
                    Invitations::Held => return Fate::WaitForInvitations,
                    Invitations::Probe => true,
                };
            // What nobody sees waits behind what people see; a record
            // already being written finishes its bookkeeping at once.
            if c.pass == Pass::Visible && c.attempt == Attempt::First && decision.is_bookkeeping() {
                return Fate::Later;
            }
            Fate::Apply {
                work: Work::Write(plan),
                probe,
            }
        }
    }
}

#[cfg(test)]
mod tests;
