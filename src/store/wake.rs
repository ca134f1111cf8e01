//! Wake-ups for the loops that wait on the store's work: the scheduler (a timer was planned)
//! and each destination's outbox dispatcher (a row was written for it).
//!
//! tokio's `Notify` does not fit several dispatchers: `notify_one` wakes one waiter, so with
//! Slack and PagerDuty both configured a page could wait for the PagerDuty dispatcher's next
//! poll while the Slack one took the wake-up; `notify_waiters` misses a dispatcher that is
//! busy with a pass when the row is written. A [`Signal`] remembers, per waiter, that it was
//! raised, and each destination has its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A wake-up that every [`Waiter`] sees: one raised while a waiter is busy is there when it
/// next waits. Raises while nobody waits coalesce into one wake-up per waiter.
#[derive(Debug)]
pub struct Signal(watch::Sender<u64>);

impl Default for Signal {
    fn default() -> Signal {
        Signal(watch::channel(0).0)
    }
}

impl Signal {
    pub fn raise(&self) {
        self.0
            .send_modify(|raised| *raised = raised.wrapping_add(1));
    }

    /// A waiter that sees the raises from now on.
    pub fn waiter(&self) -> Waiter {
        Waiter(self.0.subscribe())
    }
}

/// One loop's view of a [`Signal`].
#[derive(Debug)]
pub struct Waiter(watch::Receiver<u64>);

impl Waiter {
    /// Returns once the signal has been raised since this waiter last returned (at once if it
    /// already has been).
    pub async fn wait(&mut self) {
        if self.0.changed().await.is_err() {
            // The signal is gone, so nothing raises it again: only the caller's poll wakes it.
            std::future::pending::<()>().await;
        }
    }
}

/// The outbox dispatchers' signals, one per destination (`slack`, `pagerduty`, …).
#[derive(Debug, Default)]
pub struct OutboxSignals(Mutex<HashMap<String, Arc<Signal>>>);

impl OutboxSignals {
    fn signal(&self, destination: &str) -> Arc<Signal> {
        let mut signals = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        signals.entry(destination.to_string()).or_default().clone()
    }

    pub fn waiter(&self, destination: &str) -> Waiter {
        self.signal(destination).waiter()
    }

    /// Rows were written for `destination`.
    pub fn raise(&self, destination: &str) {
        self.signal(destination).raise();
    }

    /// Rows may have been written for any destination (a lost LISTEN connection, a
    /// notification from a replica that does not say for whom, shutting down).
    pub fn raise_all(&self) {
        let signals = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for signal in signals.values() {
            signal.raise();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn woken(waiter: &mut Waiter) -> bool {
        tokio::time::timeout(Duration::from_millis(50), waiter.wait())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn every_destination_is_woken_for_its_own_rows_even_when_busy() {
        let signals = OutboxSignals::default();
        let mut slack = signals.waiter("slack");
        let mut pagerduty = signals.waiter("pagerduty");
        assert!(!woken(&mut slack).await, "nothing raised yet");
        // Raised while neither waits (both busy with a pass): each finds it when it waits.
        signals.raise("slack");
        signals.raise("pagerduty");
        assert!(woken(&mut slack).await);
        assert!(woken(&mut pagerduty).await);
        // Once seen, a raise is not seen again; one destination's rows do not wake another.
        signals.raise("pagerduty");
        assert!(!woken(&mut slack).await);
        assert!(woken(&mut pagerduty).await);
        signals.raise_all();
        assert!(woken(&mut slack).await);
        assert!(woken(&mut pagerduty).await);
    }

    #[tokio::test]
    async fn several_waiters_of_one_signal_are_each_woken() {
        let signal = Signal::default();
        let (mut a, mut b) = (signal.waiter(), signal.waiter());
        signal.raise();
        signal.raise();
        assert!(woken(&mut a).await);
        assert!(woken(&mut b).await);
        assert!(
            !woken(&mut a).await,
            "two raises while away are one wake-up"
        );
    }
}
