//! `/healthz` and `/readyz`: the router with `oneshot`, and a real `warroom serve` process.

use crate::console::warroom;
use crate::support::sqlite_store;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;
use warroom::http::{Heartbeat, HttpDeps, router};

async fn get(deps: HttpDeps, path: &str) -> (StatusCode, serde_json::Value) {
    let response = router(deps)
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Router dependencies over `store`, with a heartbeat the test controls.
fn deps(store: Arc<dyn warroom::store::Store>) -> (HttpDeps, Arc<Heartbeat>) {
    let heartbeat = Arc::new(Heartbeat::default());
    let deps = HttpDeps {
        alertmanager: None,
        store,
        scheduler: heartbeat.clone(),
        stall_after: chrono::Duration::seconds(20),
        pagerduty: None,
        slack: None,
        discord: None,
        metrics: Arc::new(warroom::metrics::Metrics::new()),
    };
    (deps, heartbeat)
}

#[tokio::test]
async fn readiness_needs_the_store_and_a_live_scheduler() {
    let (store, _dir) = sqlite_store().await;
    let (deps, heartbeat) = deps(store);

    let (status, body) = get(deps.clone(), "/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    let (status, body) = get(deps.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("has not completed a pass"),
        "{body}"
    );

    heartbeat.beat(chrono::Utc::now());
    let (status, body) = get(deps.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["store"], "sqlite");

    heartbeat.beat(chrono::Utc::now() - chrono::Duration::seconds(60));
    let (status, body) = get(deps.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("scheduler: last pass"),
        "{body}"
    );
}

/// A stalled scheduler shows in `/metrics` too: how far behind it is, and not ready.
#[tokio::test]
async fn metrics_say_how_far_behind_a_stalled_scheduler_is() {
    let (store, _dir) = sqlite_store().await;
    let (deps, heartbeat) = deps(store);
    heartbeat.beat(chrono::Utc::now() - chrono::Duration::seconds(90));
    let response = router(deps)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("warroom_ready 0"), "{text}");
    let lag: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("warroom_scheduler_lag_seconds "))
        .expect("the lag is exported")
        .parse()
        .unwrap();
    assert!((90.0..120.0).contains(&lag), "{lag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_store_is_gone() {
    let Some(schema) = crate::support::PgSchema::create().await else {
        return;
    };
    let (deps, heartbeat) = deps(schema.store().await);
    heartbeat.beat(chrono::Utc::now());
    assert_eq!(get(deps.clone(), "/readyz").await.0, StatusCode::OK);
    // The tables vanish under the running store (a restore gone wrong, a wrong database).
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", schema.schema))
        .await
        .unwrap();
    let (status, body) = get(deps.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["problems"][0].as_str().unwrap().starts_with("store:"),
        "{body}"
    );
    assert_eq!(
        get(deps, "/healthz").await.0,
        StatusCode::OK,
        "the process itself is still up"
    );
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let (store, _dir) = sqlite_store().await;
    let (deps, _) = deps(store);
    let response = router(deps)
        .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// Kills the child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_becomes_ready_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Child(
        warroom()
            .arg("serve")
            .env("WARROOM_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("WARROOM_DATABASE__PATH", dir.path().join("serve.db"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(&url).send().await
            && response.status() == 200
        {
            ready = Some(response.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ready = ready.expect("warroom serve did not become ready within 10 s");
    assert_eq!(ready["store"], "sqlite");
    let health = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text().await.unwrap();
    for line in [
        "warroom_ready 1",
        "warroom_http_requests_total{route=\"/readyz\",status=\"200\"}",
        "warroom_incidents_open{severity=\"P0\"} 0",
        "warroom_outbox_rows{state=\"failed\"} 0",
        "warroom_timers_pending 0",
        "warroom_scheduler_lag_seconds ",
        "# TYPE warroom_http_request_duration_seconds histogram",
        // Counters of what has not happened yet are there at 0, for rate() to start from.
        "warroom_commands_total{command=\"declare\",outcome=\"error\"} 0",
        "warroom_kubernetes_calls_total{outcome=\"error\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }

    let pid = child.0.id().to_string();
    // SIGTERM through the standard `kill` utility: the test needs a signal, not a shell.
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.0.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = exited.expect("warroom serve did not stop within 10 s of SIGTERM");
    assert!(status.success(), "{status}");
}
