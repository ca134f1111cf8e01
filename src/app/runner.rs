//! The long-running loops of `warroom serve`: the timer scheduler and the outbox dispatchers.

use super::App;
use crate::chat::Sink;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The scheduler loop's heartbeat: when it last completed a pass.
#[derive(Debug, Default)]
pub struct Heartbeat {
    last_millis: AtomicI64,
}

impl Heartbeat {
    pub fn beat(&self, at: DateTime<Utc>) {
        self.last_millis
            .store(at.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn last(&self) -> Option<DateTime<Utc>> {
        match self.last_millis.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
}

/// Deliver the outbox rows of one destination as they are written (woken by commits), and at
/// least every `poll` for retries that came due, until the app stops.
pub async fn dispatcher_loop(app: Arc<App>, sink: Arc<dyn Sink>, poll: std::time::Duration) {
    app.metrics.expect_deliveries(sink.destination());
    let mut written = app.outbox_changed.waiter(sink.destination());
    while !app.is_stopping() {
        match app.dispatch_outbox(sink.as_ref()).await {
            Ok(0) => {}
            Ok(delivered) => tracing::info!(
                delivered,
                destination = sink.destination(),
                "outbox delivered"
            ),
            Err(e) => {
                tracing::error!(error = %e, destination = sink.destination(), "outbox pass failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {},
            _ = written.wait() => {},
        }
    }
}

/// How long webhook event ids are kept to recognise redeliveries.
pub const INBOUND_EVENT_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// Fire due timers, then sleep until the next one is due (at most `poll`), or until a new
/// timer is planned, until the app stops. Store errors are logged and retried on the next
/// pass.
pub async fn scheduler_loop(app: Arc<App>, heartbeat: Arc<Heartbeat>, poll: std::time::Duration) {
    let mut last_prune: Option<DateTime<Utc>> = None;
    let mut planned = app.timers_changed.waiter();
    while !app.is_stopping() {
        let now = app.clock.now();
        if last_prune.is_none_or(|at| now - at > chrono::Duration::hours(1)) {
            match app
                .store
                .prune_inbound_events(now - INBOUND_EVENT_RETENTION)
                .await
            {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "old webhook event ids forgotten"),
                Err(e) => tracing::warn!(error = %e, "could not prune webhook event ids"),
            }
            last_prune = Some(now);
        }
        let batch_done = || heartbeat.beat(app.clock.now());
        let passed = match app.run_due_timers_with(&batch_done).await {
            Ok(0) => true,
            Ok(fired) => {
                tracing::info!(fired, "timers fired");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduler pass failed");
                false
            }
        };
        let now = app.clock.now();
        // Only a pass that worked counts as alive: a scheduler failing every pass is stalled.
        if passed {
            heartbeat.beat(now);
        }
        let sleep = match app.store.next_timer_due().await {
            Ok(Some(due)) => (due - now).to_std().unwrap_or_default().min(poll),
            Ok(None) => poll,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the next timer");
                poll
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {},
            _ = planned.wait() => {},
        }
    }
}

/// How long `serve` waits on shutdown for the loops to finish what they hold.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Shut the loops down: ask them to stop, wait up to `grace` for the timer or row in hand and
/// for the work requests started (slow commands, button presses), abort the loops if they are
/// still running, then release this replica's leases on whatever it claimed and did not
/// finish, so another replica takes it at once.
pub async fn shut_down(
    app: &App,
    loops: Vec<tokio::task::JoinHandle<()>>,
    grace: std::time::Duration,
) {
    app.stop();
    app.tasks.close();
    let aborts: Vec<_> = loops.iter().map(|l| l.abort_handle()).collect();
    let mut loops = futures_util::future::join_all(loops);
    let finished = async {
        (&mut loops).await;
        app.tasks.wait().await;
    };
    if tokio::time::timeout(grace, finished).await.is_err() {
        tracing::warn!(
            ?grace,
            "work still running after the grace period; stopping it"
        );
        for abort in aborts {
            abort.abort();
        }
        // Let the aborted loops unwind before their leases are released.
        loops.await;
    }
    match app.store.release_leases(&app.owner).await {
        Ok((0, 0)) => {}
        Ok((timers, rows)) => {
            tracing::info!(timers, rows, "released claimed work for other replicas")
        }
        Err(error) => tracing::warn!(%error, "could not release leases; they expire on their own"),
    }
}
