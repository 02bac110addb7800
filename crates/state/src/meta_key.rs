//! Named values a link keeps between cycles (the breaker, the last cycle,
//! the invitation hold, health), each with the one type stored under it.
//! A key is declared once, beside its type, and every reader and writer
//! goes through it: a key cannot be misspelled at one use, nor read as
//! another type than the one written.

use std::fmt;
use std::marker::PhantomData;

/// The name of one meta value and the type stored under it.
pub struct MetaKey<T> {
    name: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T> MetaKey<T> {
    pub const fn new(name: &'static str) -> MetaKey<T> {
        MetaKey {
            name,
            value: PhantomData,
        }
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }
}

// By hand: the derives would ask `T` to be `Clone`/`Copy`/`Debug`.
impl<T> Clone for MetaKey<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for MetaKey<T> {}

impl<T> fmt::Debug for MetaKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MetaKey({})", self.name)
    }
}

/// Why the mass-deletion breaker holds cancellations, while it does.
pub const BREAKER: MetaKey<Option<String>> = MetaKey::new("breaker");
