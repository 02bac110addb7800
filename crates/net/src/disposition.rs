//! What a failed call means for the one who made it. Each connector's error
//! type answers this by one exhaustive `match` in its own crate, so that a
//! new error variant cannot fall silently into somebody's wildcard; the
//! engine acts on the answer, never on the variant.

/// The fate a failure asks for, from the narrowest to the widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// The target moved under the call (412, or 409 on an insert): read it
    /// again and decide again.
    ReadAgain,
    /// The target is not there (404, 410 on one item): the record's side is
    /// gone.
    Gone,
    /// This record only, and it may work later (5xx or the rate limit after
    /// every retry): park it with backoff.
    RetryLater,
    /// This record only, refused as it stands (422, 400, an answer that
    /// does not decode): park it until someone changes it.
    Rejected,
    /// A limit on what the account may do that lifts by itself in hours
    /// (Google's invitation limit): writes that notify wait, the rest go on.
    HoldNotifications,
    /// The feed's position is no longer valid (410 on a sync token or a
    /// cursor): read the side again from the start.
    StartOver,
    /// The side cannot be used now (credentials, setup, a server that holds
    /// the client off or sends too much): the cycle ends and the next one
    /// tries again.
    EndCycle,
    /// The cycle's stop token fired (shutdown or the deadline): not a
    /// failure; the work left waits in the store.
    Stopped,
}

impl Disposition {
    /// Ends the cycle rather than one record.
    pub fn ends_cycle(self) -> bool {
        match self {
            Disposition::EndCycle | Disposition::Stopped | Disposition::StartOver => true,
            Disposition::ReadAgain
            | Disposition::Gone
            | Disposition::RetryLater
            | Disposition::Rejected
            | Disposition::HoldNotifications => false,
        }
    }
}

/// An error that knows its [`Disposition`].
pub trait Disposed {
    fn disposition(&self) -> Disposition;
}
