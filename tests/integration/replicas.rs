//! Escalation through the binary: console sessions with a virtual clock against the fake
//! PagerDuty, and two `warroom serve` replicas on PostgreSQL with one killed mid-escalation.

use crate::console::{console, warroom};
use crate::pagerduty::{config_text, routing_key, write_config};
use crate::support::PgSchema;
use crate::support::pagerduty::{FakePagerDuty, Fault};
use std::process::Stdio;
use std::time::Duration;

fn lines_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(needle)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_each_escalation_step_as_the_virtual_clock_moves() {
    let fake = FakePagerDuty::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_text(&fake.url, ""));
    let config = config.to_str().unwrap().to_string();
    let run = move |script: &'static str| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                console(
                    &[
                        "--ephemeral",
                        "--virtual-clock",
                        "--as",
                        "alice",
                        "--config",
                        &config,
                    ],
                    &[],
                    script,
                )
            })
            .await
            .unwrap()
        }
    };

    // A P0: the on-call now, the DevOps lead at +30m, the CTO at +2h.
    let out = run("declare Payments down --sev P0\n:advance 31m\n:advance 2h\n").await;
    assert_eq!(
        lines_with(&out, "Paged through PagerDuty: service:oncall").len(),
        1,
        "{out}"
    );
    assert_eq!(
        lines_with(&out, "escalation step 2: DevOps lead").len(),
        1,
        "{out}"
    );
    assert_eq!(
        lines_with(&out, "Paged through PagerDuty: service:devops_lead").len(),
        1,
        "{out}"
    );
    assert_eq!(
        lines_with(
            &out,
            "has not been acknowledged within its 15m response target"
        )
        .len(),
        1,
        "{out}"
    );
    assert_eq!(lines_with(&out, "escalation step 4: CTO").len(), 1, "{out}");
    let before_advance = out.split("clock advanced by 31m").next().unwrap();
    assert!(
        !before_advance.contains("DevOps lead"),
        "the DevOps lead is paged only after the clock moved"
    );

    // A P2 never pages the CTO.
    let out = run("declare Report export slow --sev P2\n:advance 31m\n:advance 6h\n").await;
    assert_eq!(
        lines_with(&out, "escalation step 3: Engineering manager").len(),
        1,
        "{out}"
    );
    assert!(!out.contains("CTO"), "{out}");

    // An ack before +30m stops it all, in warroom and in PagerDuty.
    let out =
        run("declare Payments down --sev P0\n:channel INC-1\n:advance 10m\nack\n:advance 3h\n")
            .await;
    assert!(
        out.contains("escalation stopped; acknowledging in PagerDuty"),
        "{out}"
    );
    assert!(!out.contains("escalation step 2"), "{out}");
    assert!(!out.contains("response target"), "{out}");

    let triggers = fake.events("trigger");
    let cto = triggers
        .iter()
        .filter(|e| e["routing_key"] == routing_key("cto"))
        .count();
    assert_eq!(cto, 1, "only the first session's P0 reached the CTO");
    assert_eq!(fake.events("acknowledge").len(), 1);
}

/// Kills the child when dropped.
pub struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `warroom serve` with `env` on a free port; wait until `/readyz` says ready.
pub async fn start_serve(env: &[(String, String)]) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Child(
        warroom()
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WARROOM_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    for _ in 0..100 {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("warroom serve on port {port} did not become ready");
}

async fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    for _ in 0..seconds * 10 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {seconds} s waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_escalation_leaves_the_other_to_finish_it_exactly_once() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let fake = FakePagerDuty::start().await;
    let dir = tempfile::tempdir().unwrap();
    let steps = r#"
[scheduler]
poll_interval = "200ms"
lease = "5s"

[[escalation.steps]]
name = "On-call engineer"
after = "0s"
page = ["service:oncall"]

[[escalation.steps]]
name = "DevOps lead"
after = "3s"
page = ["service:devops_lead"]

[[escalation.steps]]
name = "Engineering manager"
after = "6s"
page = ["service:engineering_manager"]
"#;
    let text = config_text(&fake.url, steps);
    let config = write_config(dir.path(), &text);
    let mut env = schema.env();
    env.push(("WARROOM_CONFIG".into(), config.display().to_string()));
    // Lease owners are named <HOSTNAME>-<pid>-<random>: the test finds the holder by pid.
    env.push(("HOSTNAME".into(), "replica".into()));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(start_serve(&env).await);
    }

    // Declare from a console on the same database and configuration: it is one more process
    // that may take timers and outbox rows, and exactly-once must hold for all of them.
    let console_env = env.clone();
    let out = tokio::task::spawn_blocking(move || {
        console(
            &["--as", "alice"],
            &console_env,
            "declare Payments down --sev P0\n",
        )
    })
    .await
    .unwrap();
    assert!(out.contains("Declared INC-1"), "{out}");

    let key_of = |service: &str| routing_key(service);
    let accepted = |service: &str| {
        fake.accepted("trigger")
            .iter()
            .filter(|e| e["routing_key"] == key_of(service))
            .count()
    };
    let sent = |service: &str| {
        fake.events("trigger")
            .iter()
            .filter(|e| e["routing_key"] == key_of(service))
            .count()
    };
    wait_for("the first page", 10, || accepted("oncall") >= 1).await;
    // PagerDuty hangs on the next call (the DevOps lead's page); kill the replica making it.
    fake.fail_next([Fault::Hang(Duration::from_secs(3))]);
    wait_for("the DevOps lead's page to be in flight", 10, || {
        sent("devops_lead") >= 1
    })
    .await;
    let (db, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let owner: String = db
        .query_one(
            &format!("SELECT lease_owner FROM {}.outbox WHERE platform = 'pagerduty' AND state = 'pending' AND lease_owner IS NOT NULL", schema.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let pid: u32 = owner
        .split('-')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("owner names a pid");
    let position = replicas
        .iter()
        .position(|(c, _)| c.0.id() == pid)
        .expect("a serve replica holds the lease");
    let (mut killed, _) = replicas.remove(position);
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();

    // Its lease expires; the survivor sends the page once, and finishes the escalation.
    wait_for("the last page", 30, || accepted("engineering_manager") >= 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sent("devops_lead"),
        2,
        "the killed replica's attempt, then the survivor's"
    );
    for service in ["oncall", "devops_lead", "engineering_manager"] {
        assert_eq!(
            accepted(service),
            1,
            "{service} was paged {} times",
            accepted(service)
        );
    }
    drop(replicas);
    schema.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_due_while_nothing_runs_fires_once_when_serve_starts() {
    let fake = FakePagerDuty::start().await;
    let dir = tempfile::tempdir().unwrap();
    let steps = r#"
[scheduler]
poll_interval = "200ms"

[[escalation.steps]]
name = "On-call engineer"
after = "0s"
page = ["service:oncall"]

[[escalation.steps]]
name = "DevOps lead"
after = "2s"
page = ["service:devops_lead"]
"#;
    let config = write_config(dir.path(), &config_text(&fake.url, steps));
    let db = dir.path().join("warroom.db");
    let env: Vec<(String, String)> = vec![
        ("WARROOM_CONFIG".into(), config.display().to_string()),
        ("WARROOM_DATABASE__PATH".into(), db.display().to_string()),
    ];
    // The console declares (and pages the on-call), then exits: nothing runs for 3 s.
    let console_env = env.clone();
    let out = tokio::task::spawn_blocking(move || {
        console(
            &["--as", "alice"],
            &console_env,
            "declare Payments down --sev P0\n",
        )
    })
    .await
    .unwrap();
    assert!(
        out.contains("Paged through PagerDuty: service:oncall"),
        "{out}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        fake.events("trigger")
            .iter()
            .all(|e| e["routing_key"] != routing_key("devops_lead"))
    );

    let triggered = |service: &str| {
        fake.events("trigger")
            .iter()
            .filter(|e| e["routing_key"] == routing_key(service))
            .count()
    };
    for start in 0..2 {
        let (child, _) = start_serve(&env).await;
        if start == 0 {
            wait_for("the overdue step", 10, || triggered("devops_lead") >= 1).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(child);
    }
    assert_eq!(triggered("oncall"), 1);
    assert_eq!(
        triggered("devops_lead"),
        1,
        "fired once, not again on the second start"
    );
}
