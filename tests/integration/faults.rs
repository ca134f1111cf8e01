//! Faults under load against a real `warroom serve` process: PostgreSQL going away and coming
//! back while PagerDuty webhooks keep arriving. (Failing and slow Slack, Discord, PagerDuty and
//! Kubernetes fakes are in those modules; a replica killed mid-escalation is in `replicas`.)

use crate::pagerduty::{SECRET, config_text, write_config};
use crate::support::PgSchema;
use crate::support::pagerduty::FakePagerDuty;
use crate::support::proxy::Proxy;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The signed webhook PagerDuty sends when incident `n` is triggered.
fn triggered(n: usize) -> String {
    serde_json::json!({ "event": {
        "id": format!("EVT{n}"), "event_type": "incident.triggered", "resource_type": "incident",
        "occurred_at": "2026-11-28T10:00:00Z",
        "agent": { "summary": "Monitoring", "type": "service_reference" },
        "data": { "id": format!("PLOAD{n}"), "type": "incident", "title": format!("Load incident {n}"),
                  "urgency": "high" }
    }})
    .to_string()
}

/// PostgreSQL is "restarted" (every connection reset, new ones refused for 3 s) while 60
/// webhooks arrive, each sent again until accepted, as PagerDuty does. Readiness fails during
/// the outage and recovers after it; afterwards every incident exists exactly once, with all
/// its timers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_nothing() {
    const INCIDENTS: usize = 60;
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let target: std::net::SocketAddr = {
        let url = url::Url::parse(&schema.url).unwrap();
        let host = url.host_str().unwrap_or("127.0.0.1");
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{}", url.port().unwrap_or(5432))
            .parse()
            .unwrap()
    };
    let proxy = Proxy::start(target).await;
    let mut through_proxy = url::Url::parse(&schema.url).unwrap();
    through_proxy.set_host(Some("127.0.0.1")).unwrap();
    through_proxy.set_port(Some(proxy.port)).unwrap();

    let pd = FakePagerDuty::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &(config_text(&pd.url, "")
            + "\n[scheduler]\npoll_interval = \"200ms\"\n\n[database]\npool_size = 4\n"),
    );
    let env = vec![
        ("WARROOM_CONFIG".to_string(), config.display().to_string()),
        (
            "WARROOM_DATABASE__URL".to_string(),
            through_proxy.to_string(),
        ),
        (
            "WARROOM_DATABASE__SCHEMA".to_string(),
            schema.schema.clone(),
        ),
    ];
    let (_serve, port) = crate::replicas::start_serve(&env).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // The load: each webhook is sent until warroom answers 2xx (PagerDuty retries 5xx and
    // timeouts), four at a time.
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for worker in 0..4 {
        let (client, base, accepted, refused) = (
            client.clone(),
            base.clone(),
            accepted.clone(),
            refused.clone(),
        );
        senders.push(tokio::spawn(async move {
            for n in (worker..INCIDENTS).step_by(4) {
                let body = triggered(n);
                let signature = warroom::pagerduty::sign(SECRET, body.as_bytes());
                loop {
                    let sent = client
                        .post(format!("{base}/pagerduty/webhook"))
                        .header("content-type", "application/json")
                        .header("x-pagerduty-signature", &signature)
                        .body(body.clone())
                        .send()
                        .await;
                    if sent.as_ref().is_ok_and(|r| r.status().is_success()) {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    refused.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // Once a third is in, PostgreSQL goes away for 3 s.
    while accepted.load(Ordering::SeqCst) < INCIDENTS / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.cut();
    let mut saw_not_ready = false;
    for _ in 0..30 {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 503) {
            saw_not_ready = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.restore();
    assert!(saw_not_ready, "/readyz failed while the database was away");
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "some deliveries met the outage and were retried"
    );
    let mut ready_again = false;
    for _ in 0..100 {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            ready_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready_again,
        "/readyz recovered after the database came back"
    );

    // Every incident exactly once, each with the same timers as the others.
    let store = schema.store().await;
    let incidents = store.incidents(true, 1_000).await.unwrap();
    let ids: BTreeSet<String> = incidents
        .iter()
        .filter_map(|i| i.pagerduty_incident_id.clone())
        .collect();
    assert_eq!(incidents.len(), INCIDENTS, "each opened once");
    assert_eq!(ids.len(), INCIDENTS);
    let far = chrono::Utc::now() + chrono::Duration::days(400);
    let timers = store
        .claim_due_timers(far, "checker", far + chrono::Duration::minutes(1), 100_000)
        .await
        .unwrap();
    // Each incident's timers due later (those due at once may or may not have fired by
    // now), kinds counted, so a missing second timer of a kind shows.
    let later = chrono::Utc::now() + chrono::Duration::minutes(5);
    let mut kinds: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for timer in timers.iter().filter(|t| t.due_at > later) {
        kinds
            .entry(timer.incident.0)
            .or_default()
            .push(timer.kind.as_str());
    }
    for list in kinds.values_mut() {
        list.sort();
    }
    assert_eq!(kinds.len(), INCIDENTS, "every incident has its timers");
    let first = kinds.values().next().unwrap().clone();
    assert!(!first.is_empty());
    assert!(kinds.values().all(|k| *k == first), "{kinds:?}");
    schema.cleanup().await;
}
