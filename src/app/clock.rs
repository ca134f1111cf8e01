//! Time as a dependency: the system clock in production, a virtual clock in the console
//! (`--virtual-clock`, `:advance 31m`) and in tests.

use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<DateTime<Utc>>,
}

impl VirtualClock {
    pub fn starting_at(start: DateTime<Utc>) -> VirtualClock {
        VirtualClock {
            now: Mutex::new(start),
        }
    }

    /// Move forward by `by` (never backwards) and return the new time.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by.max(Duration::zero());
        *now
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward() {
        let start = Utc::now();
        let clock = VirtualClock::starting_at(start);
        assert_eq!(clock.now(), start);
        assert_eq!(
            clock.advance(Duration::minutes(31)),
            start + Duration::minutes(31)
        );
        assert_eq!(
            clock.advance(Duration::minutes(-5)),
            start + Duration::minutes(31)
        );
    }
}
