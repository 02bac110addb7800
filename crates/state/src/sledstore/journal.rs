//! Where a cycle stands: the cursors, the intent journal and the parked
//! records.

use chrono::{DateTime, Utc};

use super::*;

impl Store {
    // --- cursors -----------------------------------------------------------

    pub fn cursor(&self, side: Side) -> Result<Option<Cursor>, StateError> {
        match self.cursors.get(side.key())? {
            Some(v) => Ok(Some(decode(side.key().as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Saves both positions at once, after what they cover is durable.
    pub fn set_cursors(
        &self,
        google: Option<&str>,
        hitolink: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        for (side, value) in [(Side::Google, google), (Side::Hitolink, hitolink)] {
            if let Some(v) = value {
                let c = Cursor {
                    value: v.to_string(),
                    saved_at: at,
                };
                self.cursors.insert(side.key(), encode(&c)?)?;
            }
        }
        self.flush()
    }

    /// `sync --full` and SIGUSR2: the next cycle lists everything.
    pub fn clear_cursors(&self) -> Result<(), StateError> {
        self.cursors.clear()?;
        self.flush()
    }

    // --- intents -------------------------------------------------------

    /// Written and flushed before a remote write.
    pub fn put_intent(&self, intent: &Intent) -> Result<(), StateError> {
        self.intents.insert(intent.key.db_key(), encode(intent)?)?;
        self.flush()
    }

    /// An intent or a parking is open for `key`.
    pub fn is_pending(&self, key: &WorkKey) -> Result<bool, StateError> {
        Ok(self.intents.contains_key(key.db_key())? || self.parked.contains_key(key.db_key())?)
    }

    /// Closes any intent, parking and pending work for `key` (the record
    /// needs nothing).
    pub fn settle(&self, key: &WorkKey) -> Result<(), StateError> {
        self.intents.remove(key.db_key())?;
        self.parked.remove(key.db_key())?;
        self.drop_work(key)?;
        self.flush()
    }

    pub fn intents(&self) -> Result<Vec<Intent>, StateError> {
        self.intents
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    // --- parked ---------------------------------------------------------

    /// Parks (or parks again) a record: attempts grow, and so does the wait
    /// before the next try (1 min doubling, at most 6 h).
    pub fn park(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Parked, StateError> {
        self.park_as(key, reason, now, false)
    }

    /// Parks a cancellation the mass-deletion breaker held back.
    pub fn park_held(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Parked, StateError> {
        self.park_as(
            key,
            &format!("held by the mass-deletion breaker: {reason}"),
            now,
            true,
        )
    }

    /// Parks a record until a known time (a limit that lifts then).
    pub fn park_until(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Parked, StateError> {
        self.park_with(key, reason, now, false, Some(until))
    }

    fn park_as(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
        held: bool,
    ) -> Result<Parked, StateError> {
        self.park_with(key, reason, now, held, None)
    }

    pub fn park_with(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
        held: bool,
        until: Option<DateTime<Utc>>,
    ) -> Result<Parked, StateError> {
        let old: Option<Parked> = match self.parked.get(key.db_key())? {
            Some(v) => Some(decode(key.db_key().as_bytes(), &v)?),
            None => None,
        };
        let p = Parked::after(old, key, reason, now, held, until);
        // Parked work is read afresh when it comes due.
        self.parked.insert(key.db_key(), encode(&p)?)?;
        self.intents.remove(key.db_key())?;
        self.drop_work(key)?;
        self.flush()?;
        Ok(p)
    }

    pub fn parked(&self) -> Result<Vec<Parked>, StateError> {
        self.parked
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }
}
