//! `/metrics`: what warroom counts about itself, in Prometheus' text format (OpenMetrics).
//!
//! Counters and histograms are updated where things happen (HTTP requests, commands,
//! deliveries, Kubernetes calls, timer firings); gauges about the store and the scheduler are
//! read when `/metrics` is scraped, so they are never stale.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: String,
    /// `ok`, `invalid` (usage help), `refused` (not allowed), `duplicate` (a request acted on
    /// before), `error` (store unavailable).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `slack`, `discord`, `pagerduty`, `console`.
    pub destination: String,
    /// `ok`, `retry`, `failed`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabels {
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What can become of a chat command (`warroom_commands_total`'s `outcome`).
pub const COMMAND_OUTCOMES: [&str; 5] = ["ok", "invalid", "refused", "duplicate", "error"];

/// What can become of an outbox delivery (`warroom_deliveries_total`'s `outcome`):
/// `withdrawn` is an escalation step's page not sent because the incident reached the step's
/// `until` while it waited in the outbox.
pub const DELIVERY_OUTCOMES: [&str; 4] = ["ok", "retry", "failed", "withdrawn"];

/// Every metric warroom exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<RouteLabels>,
    pub commands: Family<CommandLabels, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub kubernetes_calls: Family<OutcomeLabels, Counter>,
    pub timer_lateness: Histogram,
    pub incidents_open: Family<SeverityLabels, Gauge>,
    pub timers_pending: Gauge,
    pub outbox_rows: Family<StateLabels, Gauge>,
    pub scheduler_lag: Gauge<f64, AtomicU64>,
    pub ready: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("warroom");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_duration.clone(),
        );
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Chat commands by name and outcome",
            commands.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Outbox deliveries (calls to Slack, Discord, PagerDuty, the console) by destination and outcome",
            deliveries.clone(),
        );
        let kubernetes_calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "kubernetes_calls",
            "Runbook calls to the Kubernetes API by outcome",
            kubernetes_calls.clone(),
        );
        // Timers fire within milliseconds when healthy; the long tail is minutes (5 ms … ~44 min).
        let timer_lateness = Histogram::new(exponential_buckets(0.005, 2.0, 20));
        registry.register(
            "timer_lateness_seconds",
            "How late timers fired after they were due",
            timer_lateness.clone(),
        );
        let incidents_open = Family::<SeverityLabels, Gauge>::default();
        registry.register(
            "incidents_open",
            "Unresolved incidents by severity",
            incidents_open.clone(),
        );
        let timers_pending = Gauge::default();
        registry.register(
            "timers_pending",
            "Timers planned and not yet fired",
            timers_pending.clone(),
        );
        let outbox_rows = Family::<StateLabels, Gauge>::default();
        registry.register(
            "outbox_rows",
            "Outbox rows waiting (pending), waiting after a failed attempt (retrying), or given up (failed)",
            outbox_rows.clone(),
        );
        let scheduler_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "scheduler_lag_seconds",
            "Seconds since the scheduler loop last completed a pass (healthy: at most its poll interval)",
            scheduler_lag.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when /readyz is ok (store reachable and migrated, scheduler alive)",
            ready.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            commands,
            deliveries,
            kubernetes_calls,
            timer_lateness,
            incidents_open,
            timers_pending,
            outbox_rows,
            scheduler_lag,
            ready,
        }
    }

    // A counter series that first appears at 1 has no earlier sample for `rate()` or
    // `increase()` to compare with: a replica's first failed page would not fire the alert on
    // failed deliveries. The `expect_*` methods export what can happen at 0 before it does
    // (creating a series hands back a read guard, dropped at once).

    /// Every command's outcomes at 0 (and `unknown` commands' `invalid`).
    pub fn expect_commands(&self) {
        for name in crate::core::command::CommandName::ALL {
            for outcome in COMMAND_OUTCOMES {
                drop(self.commands.get_or_create(&CommandLabels {
                    command: name.name().to_string(),
                    outcome: outcome.to_string(),
                }));
            }
        }
        drop(self.commands.get_or_create(&CommandLabels {
            command: "unknown".to_string(),
            outcome: "invalid".to_string(),
        }));
    }

    /// The outcomes of deliveries to `destination` at 0.
    pub fn expect_deliveries(&self, destination: &str) {
        for outcome in DELIVERY_OUTCOMES {
            drop(self.deliveries.get_or_create(&DeliveryLabels {
                destination: destination.to_string(),
                outcome: outcome.to_string(),
            }));
        }
    }

    /// The outcomes of Kubernetes calls at 0.
    pub fn expect_kubernetes_calls(&self) {
        for outcome in ["ok", "error"] {
            drop(self.kubernetes_calls.get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            }));
        }
    }

    pub fn command(&self, command: &str, outcome: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn delivery(&self, destination: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                destination: destination.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn kubernetes_call(&self, ok: bool) {
        self.kubernetes_calls
            .get_or_create(&OutcomeLabels {
                outcome: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    /// Set the store gauges from fresh counts. Severities without open incidents read 0.
    pub fn set_store_counts(&self, counts: &crate::store::HealthCounts) {
        for severity in crate::core::Severity::ALL {
            let name = severity.to_string();
            let open = counts
                .open_by_severity
                .iter()
                .find(|(s, _)| *s == name)
                .map_or(0, |(_, n)| *n);
            self.incidents_open
                .get_or_create(&SeverityLabels { severity: name })
                .set(open);
        }
        self.timers_pending.set(counts.timers_pending);
        for (state, value) in [
            ("pending", counts.outbox_pending),
            ("retrying", counts.outbox_retrying),
            ("failed", counts.outbox_failed),
        ] {
            self.outbox_rows
                .get_or_create(&StateLabels {
                    state: state.to_string(),
                })
                .set(value);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        out
    }
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_with_its_labels() {
        let metrics = Metrics::new();
        metrics.command("declare", "ok");
        metrics.delivery("slack", "retry");
        metrics.kubernetes_call(true);
        metrics.timer_lateness.observe(0.2);
        metrics.set_store_counts(&crate::store::HealthCounts {
            open_by_severity: vec![("P1".into(), 2)],
            timers_pending: 5,
            outbox_pending: 1,
            outbox_retrying: 2,
            outbox_failed: 3,
        });
        let text = metrics.encode();
        for line in [
            "warroom_commands_total{command=\"declare\",outcome=\"ok\"} 1",
            "warroom_deliveries_total{destination=\"slack\",outcome=\"retry\"} 1",
            "warroom_kubernetes_calls_total{outcome=\"ok\"} 1",
            "warroom_incidents_open{severity=\"P1\"} 2",
            "warroom_incidents_open{severity=\"P0\"} 0",
            "warroom_timers_pending 5",
            "warroom_outbox_rows{state=\"retrying\"} 2",
            "warroom_timer_lateness_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn expected_counters_are_exported_at_zero_before_they_happen() {
        let metrics = Metrics::new();
        let text = metrics.encode();
        assert!(!text.contains("warroom_deliveries_total{"), "{text}");
        metrics.expect_commands();
        metrics.expect_deliveries("pagerduty");
        metrics.expect_deliveries("slack");
        metrics.expect_kubernetes_calls();
        let text = metrics.encode();
        for line in [
            "warroom_deliveries_total{destination=\"pagerduty\",outcome=\"failed\"} 0",
            "warroom_deliveries_total{destination=\"slack\",outcome=\"retry\"} 0",
            "warroom_commands_total{command=\"declare\",outcome=\"error\"} 0",
            "warroom_commands_total{command=\"maintenance\",outcome=\"refused\"} 0",
            "warroom_commands_total{command=\"unknown\",outcome=\"invalid\"} 0",
            "warroom_kubernetes_calls_total{outcome=\"error\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!text.contains("destination=\"discord\""), "{text}");
        // Counting goes on from 0.
        metrics.delivery("pagerduty", "failed");
        let text = metrics.encode();
        assert!(
            text.contains(
                "warroom_deliveries_total{destination=\"pagerduty\",outcome=\"failed\"} 1"
            ),
            "{text}"
        );
    }
}
