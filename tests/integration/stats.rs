//! `stats` over a generated history: incidents declared, escalated, acknowledged, breached
//! and resolved under a controlled clock, on both stores.

use crate::support::TestDb;
use chrono::{Duration, TimeZone, Utc};
use std::sync::Arc;
use warroom::app::clock::{Clock, VirtualClock};
use warroom::app::{App, Origin};
use warroom::core::{Platform, UserRef};
use warroom::render::{RenderedBlock, Renderer};

struct History {
    app: App,
    clock: Arc<VirtualClock>,
}

impl History {
    async fn say(&self, channel: &str, text: &str) -> Option<String> {
        let origin = Origin {
            platform: Platform::Console,
            channel: channel.into(),
            actor: UserRef::parse("alice").unwrap(),
            request: None,
        };
        let reply = self.app.handle_command(&origin, text).await?;
        let rendered = Renderer::load(None)
            .unwrap()
            .render(Platform::Console, &reply)
            .unwrap();
        Some(
            rendered
                .blocks
                .iter()
                .map(|b| match b {
                    RenderedBlock::Text(t) => t.clone(),
                    RenderedBlock::Fields(f) => format!("{f:?}"),
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    /// Declare, fire what is due (the first escalation step), and return the channel.
    async fn declare(&self, text: &str) -> String {
        self.say("general", text).await;
        self.app.run_due_timers().await.unwrap();
        let newest = &self.app.store.incidents(false, 1).await.unwrap()[0];
        newest.channel.to_string()
    }

    async fn at(&self, minutes_from_start: i64, start: chrono::DateTime<Utc>) {
        let now = self.clock.now();
        self.clock
            .advance(start + Duration::minutes(minutes_from_start) - now);
        self.app.run_due_timers().await.unwrap();
    }
}

pub async fn stats_sum_up_a_generated_history(db: &TestDb) {
    // The default policy: targets 15m / 1h / 4h / 24h; steps on-call at once, DevOps lead at
    // 30m, engineering manager at 1h (every severity), CTO at 2h (P0 only), until acknowledged.
    let policy = warroom::config::load(None).unwrap().policy;
    let clock = Arc::new(VirtualClock::starting_at(
        Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0).unwrap(),
    ));
    let h = History {
        app: App::new(
            db.open().await,
            policy,
            clock.clone(),
            Duration::seconds(60),
        ),
        clock: clock.clone(),
    };
    // Forty days before the others: outside a 30-day window, inside a 60-day one.
    h.declare("declare Old report glitch --sev P3").await;
    clock.advance(Duration::days(40));
    h.app.run_due_timers().await.unwrap();
    let start = clock.now();

    let a = h.declare("declare Database down --sev P0").await;
    h.at(10, start).await;
    h.say(&a, "ack").await;
    h.at(10, start).await;
    let b = h.declare("declare Checkout slow --sev P1").await;
    h.at(55, start).await;
    h.say(&b, "ack").await;
    h.at(80, start).await;
    h.say(&a, "resolve bad migration").await;
    let _c = h.declare("declare Search degraded --sev P2").await;
    h.at(80 + 4 * 60 + 1, start).await;
    h.say(&b, "resolve").await;

    let month = h.say("general", "stats").await.unwrap();
    assert!(month.contains("last 30 days"), "{month}");
    for line in [
        "Incidents: 3 (P0 1, P1 1, P2 1, P3 0); 1 still open",
        // 10m and 45m.
        "Time to acknowledge: mean 27m, p90 45m (2 acknowledged)",
        // 80m, and 321m - 10m = 311m.
        "Time to resolve: mean 3h 15m, p90 5h 11m (2 resolved)",
        "Response targets missed: 1 (P0 0, P1 0, P2 1, P3 0)",
        "Escalations reached: On-call engineer 3, DevOps lead 2, Engineering manager 1, CTO 0",
    ] {
        assert!(month.contains(line), "{line:?} not in:\n{month}");
    }

    let two_months = h.say("general", "stats --days 60").await.unwrap();
    for line in [
        "Incidents: 4 (P0 1, P1 1, P2 1, P3 1); 2 still open",
        "Response targets missed: 2 (P0 0, P1 0, P2 1, P3 1)",
        "Escalations reached: On-call engineer 4, DevOps lead 3, Engineering manager 2, CTO 0",
    ] {
        assert!(two_months.contains(line), "{line:?} not in:\n{two_months}");
    }

    clock.advance(Duration::days(2));
    let quiet = h.say("general", "stats --days 1").await.unwrap();
    assert!(quiet.contains("last day"), "{quiet}");
    assert!(
        quiet.contains("No incidents were declared in that time."),
        "{quiet}"
    );
    let refused = h.say("general", "stats --days 400").await.unwrap();
    assert!(refused.contains("from 1 to 365"), "{refused}");
    assert!(refused.contains("stats [--days N]"), "{refused}");
}

on_both_stores!(stats_sum_up_a_generated_history);
