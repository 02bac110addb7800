//! The mass-deletion breaker of one cycle: how many cancellations the
//! cycle's decisions make, and whether one more may be written now.
//!
//! Each record is decided once, in order, and most cancellations are
//! written where they stand: a cancellation is cleared as soon as the
//! cycle cannot pass `sync.max_deletions` whatever the records still to be
//! decided turn out to be. Only when it might (a large cycle) does it wait
//! in the work set until the last pass, when the count is known. So no
//! cancellation of a cycle that trips is ever written, and a record is
//! decided once however many the cycle holds.

use crate::gate::Breaker;

#[derive(Debug)]
pub(crate) struct MassDeletion {
    max: usize,
    /// `hitosync sync --allow-mass-delete`: counted and said, never held.
    allowed: bool,
    tripped: Option<String>,
    /// Cancellations decided this cycle, each record once.
    counted: usize,
    /// Records of the first pass not taken up yet.
    undecided: usize,
    /// Bookkeeping kept for the rest pass: a 412 there may still turn one
    /// into a cancellation.
    kept_bookkeeping: usize,
}

impl MassDeletion {
    /// `empty_side`: one side listed nothing where records are mapped,
    /// which trips the breaker before anything is decided.
    pub(crate) fn new(max: u32, allowed: bool, empty_side: Option<String>) -> MassDeletion {
        MassDeletion {
            max: max as usize,
            allowed,
            tripped: empty_side,
            counted: 0,
            undecided: 0,
            kept_bookkeeping: 0,
        }
    }

    /// How many records the first pass will take up.
    pub(crate) fn set_undecided(&mut self, n: usize) {
        self.undecided = n;
    }

    /// A record of the first pass is taken up.
    pub(crate) fn take_up(&mut self) {
        self.undecided = self.undecided.saturating_sub(1);
    }

    /// A bookkeeping decision is kept for the rest pass.
    pub(crate) fn keep_bookkeeping(&mut self) {
        self.kept_bookkeeping += 1;
    }

    /// A kept bookkeeping decision is taken up in the rest pass.
    pub(crate) fn take_up_bookkeeping(&mut self) {
        self.kept_bookkeeping = self.kept_bookkeeping.saturating_sub(1);
    }

    /// A record's decision cancels something; `first` unless this record
    /// was counted already (a decision made again, or kept for later).
    pub(crate) fn count(&mut self, first: bool) {
        if !first {
            return;
        }
        self.counted += 1;
        if self.counted > self.max && self.tripped.is_none() {
            self.tripped = Some(format!(
                "{} cancellations in one cycle, more than sync.max_deletions = {}",
                self.counted, self.max
            ));
        }
    }

    /// What the breaker says of a cancellation already counted.
    pub(crate) fn verdict(&self) -> Breaker {
        if self.allowed {
            Breaker::Clear
        } else if self.tripped.is_some() {
            Breaker::Tripped
        } else if self.counted + self.undecided + self.kept_bookkeeping <= self.max {
            Breaker::Clear
        } else {
            Breaker::Unsure
        }
    }

    /// Why the breaker tripped this cycle, if it did (also when
    /// `--allow-mass-delete` let the cancellations through).
    pub(crate) fn tripped(&self) -> Option<&str> {
        self.tripped.as_deref()
    }

    /// Whether it holds cancellations back.
    pub(crate) fn holds(&self) -> bool {
        self.tripped.is_some() && !self.allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_cycle_clears_each_cancellation_where_it_stands() {
        let mut b = {
            let mut b = MassDeletion::new(3, false, None);
            b.set_undecided(3);
            b
        };
        for _ in 0..3 {
            b.take_up();
            b.count(true);
            assert_eq!(b.verdict(), Breaker::Clear);
        }
        assert!(!b.holds());
    }

    #[test]
    fn a_large_cycle_waits_until_the_count_is_known() {
        let mut b = {
            let mut b = MassDeletion::new(2, false, None);
            b.set_undecided(10);
            b
        };
        b.take_up();
        b.count(true);
        assert_eq!(
            b.verdict(),
            Breaker::Unsure,
            "nine records may still cancel"
        );
        for _ in 0..9 {
            b.take_up();
        }
        assert_eq!(b.verdict(), Breaker::Clear, "one cancellation in all");
    }

    #[test]
    fn past_the_limit_it_trips_and_holds() {
        let mut b = {
            let mut b = MassDeletion::new(1, false, None);
            b.set_undecided(2);
            b
        };
        b.take_up();
        b.count(true);
        b.take_up();
        b.count(true);
        assert_eq!(b.verdict(), Breaker::Tripped);
        assert!(b.holds());
        assert!(b.tripped().unwrap().contains("sync.max_deletions = 1"));
    }

    #[test]
    fn a_record_decided_again_is_counted_once() {
        let mut b = {
            let mut b = MassDeletion::new(1, false, None);
            b.set_undecided(1);
            b
        };
        b.take_up();
        b.count(true);
        b.count(false);
        assert_eq!(b.verdict(), Breaker::Clear);
    }

    #[test]
    fn kept_bookkeeping_may_still_cancel() {
        let mut b = {
            let mut b = MassDeletion::new(1, false, None);
            b.set_undecided(2);
            b
        };
        b.take_up();
        b.keep_bookkeeping();
        b.take_up();
        b.count(true);
        assert_eq!(b.verdict(), Breaker::Unsure);
        b.take_up_bookkeeping();
        assert_eq!(b.verdict(), Breaker::Clear);
    }

    #[test]
    fn an_empty_side_trips_before_anything_is_decided_unless_allowed() {
        let b = MassDeletion::new(20, false, Some("empty".into()));
        assert_eq!(b.verdict(), Breaker::Tripped);
        let b = MassDeletion::new(20, true, Some("empty".into()));
        assert_eq!(b.verdict(), Breaker::Clear);
        assert!(!b.holds());
        assert_eq!(b.tripped(), Some("empty"));
    }
}
