//! Runbooks end to end: diagnostics, changes behind confirmations and playbooks, through the
//! app and the console, against the fake Kubernetes API server (`support::kube`) with a
//! kube-rs client.

use crate::support::TestDb;
use crate::support::kube::FakeKube;
use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use std::sync::{Arc, Mutex};
use warroom::app::clock::VirtualClock;
use warroom::app::runbook::Runbooks;
use warroom::app::{App, Origin};
use warroom::chat::{Delivered, DeliveryError, Sink};
use warroom::core::message::ButtonAction;
use warroom::core::{Effect, EventKind, Platform, UserRef};
use warroom::render::Renderer;
use warroom::runbook::guard::{Guard, RunbookConfig};
use warroom::runbook::kube::Cluster;
use warroom::runbook::playbook::Playbooks;
use warroom::store::{OutboxItem, Store};

const NS: &str = "stock-analysis-system";
const API: &str = "stock-analysis-api";

/// Renders what is posted, as the console would.
struct TextSink {
    renderer: Renderer,
    posted: Mutex<Vec<String>>,
}

#[async_trait]
impl Sink for TextSink {
    fn destination(&self) -> &'static str {
        "console"
    }
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        if let Effect::Post { message, .. } | Effect::Update { message, .. } = &item.effect {
            let rendered = self.renderer.render(Platform::Console, message).unwrap();
            let mut text = rendered.plain_text();
            if !rendered.buttons.is_empty() {
                let labels: Vec<&str> = rendered.buttons.iter().map(|b| b.label.as_str()).collect();
                text.push_str(&format!("\nbuttons: {}", labels.join(", ")));
            }
            self.posted.lock().unwrap().push(text);
        }
        Ok(Delivered::Done)
    }
}

pub struct Rig {
    pub app: App,
    pub fake: FakeKube,
    pub clock: Arc<VirtualClock>,
    pub store: Arc<dyn Store>,
    sink: TextSink,
    pub channel: String,
    _health: tokio::task::JoinHandle<()>,
}

/// A cluster with the runbook's deployments, and a health endpoint for `probe`.
pub async fn cluster() -> (FakeKube, String, tokio::task::JoinHandle<()>) {
    let fake = FakeKube::start().await;
    fake.add_deployment(NS, API, 3, &[("app", API)]);
    fake.add_deployment(
        NS,
        "stock-analysis-worker",
        3,
        &[("app", "stock-analysis-worker")],
    );
    fake.add_deployment(
        NS,
        "stock-analysis-frontend",
        4,
        &[("app", "stock-analysis-frontend")],
    );
    fake.add_deployment(NS, "postgres", 1, &[("app", "postgres")]);
    fake.add_node("node-a", true);
    fake.add_node("node-b", false);
    fake.add_service_endpoints(NS, API, &["10.0.0.1", "10.0.0.2"], &["10.0.0.3"]);
    fake.add_service_endpoints(NS, "postgres", &["10.0.1.1"], &[]);
    fake.add_event(
        NS,
        "Pod",
        "stock-analysis-api-x",
        "BackOff",
        "Back-off restarting failed container",
        "Warning",
        2,
    );
    fake.add_event(
        NS,
        "Deployment",
        API,
        "ScalingReplicaSet",
        "Scaled up replica set",
        "Normal",
        30,
    );
    for pod in fake.pods(NS) {
        fake.set_pod_metrics(NS, &pod, "250m", "512Mi");
        fake.set_logs(NS, &pod, None, &["GET /health 200", "GET /api/quotes 503"]);
    }
    fake.set_node_metrics("node-a", "1200m", "6Gi");
    let health = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, health).await.unwrap() });
    (fake, url, task)
}

pub fn runbook_config(fake: &FakeKube, health: &str) -> RunbookConfig {
    let mut config = warroom::config::load(None).unwrap().runbooks;
    config.cluster = warroom::runbook::guard::ClusterSource::Url(fake.url.clone());
    config.probes.insert("api".into(), health.parse().unwrap());
    let operators = config
        .roles
        .iter_mut()
        .find(|r| r.name == "operators")
        .unwrap();
    operators.users = vec![user("olivia"), user("bob")];
    config
}

fn user(name: &str) -> UserRef {
    UserRef::parse(name).unwrap()
}

fn origin(channel: &str, who: &str) -> Origin {
    Origin {
        platform: Platform::Console,
        channel: channel.into(),
        actor: user(who),
        request: None,
    }
}

impl Rig {
    pub async fn new(db: &TestDb) -> Rig {
        Rig::with(db, |_| {}).await
    }

    pub async fn with(db: &TestDb, tweak: impl FnOnce(&mut RunbookConfig)) -> Rig {
        Rig::build(db, tweak, None, Playbooks::builtin()).await
    }

    pub async fn build(
        db: &TestDb,
        tweak: impl FnOnce(&mut RunbookConfig),
        directory: Option<Arc<dyn warroom::app::runbook::Directory>>,
        playbooks: Playbooks,
    ) -> Rig {
        let (fake, health, task) = cluster().await;
        let mut config = runbook_config(&fake, &health);
        tweak(&mut config);
        let store = db.open().await;
        let clock = Arc::new(VirtualClock::starting_at(
            Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap(),
        ));
        let mut policy = warroom::config::load(None).unwrap().policy;
        policy.escalation.clear();
        let runbooks = Runbooks {
            cluster: Some(Cluster::new(fake.client(), config.probes.clone())),
            guard: Guard::new(config),
            playbooks,
            directory,
        };
        let app = App::new(store.clone(), policy, clock.clone(), Duration::seconds(60))
            .with_runbooks(runbooks);
        let reply = app
            .handle_command(&origin("general", "alice"), "declare API returning 503s")
            .await;
        assert!(reply.is_some());
        let channel = store.incidents(false, 5).await.unwrap()[0]
            .channel
            .to_string();
        Rig {
            app,
            fake,
            clock,
            store,
            sink: TextSink {
                renderer: Renderer::load(None).unwrap(),
                posted: Mutex::new(Vec::new()),
            },
            channel,
            _health: task,
        }
    }

    /// Type in the incident channel as `who`; the direct answer as text.
    pub async fn say(&self, who: &str, text: &str) -> String {
        self.say_from(&origin(&self.channel, who), text).await
    }

    /// `text` typed as `origin` says; the answer as plain text.
    pub async fn say_from(&self, origin: &Origin, text: &str) -> String {
        self.plain(self.app.handle_command(origin, text).await)
    }

    /// A button pressed as `origin` says; the answer as plain text.
    pub async fn press_from(&self, origin: &Origin, action: &ButtonAction) -> String {
        self.plain(self.app.handle_button(origin, action).await)
    }

    fn plain(&self, reply: Option<warroom::core::Message>) -> String {
        reply
            .map(|m| {
                self.sink
                    .renderer
                    .render(Platform::Console, &m)
                    .unwrap()
                    .plain_text()
            })
            .unwrap_or_default()
    }

    /// Everything posted so far (delivering the outbox first).
    pub async fn posted(&self) -> String {
        self.app.dispatch_outbox(&self.sink).await.unwrap();
        self.sink.posted.lock().unwrap().join("\n")
    }

    pub async fn events(&self) -> Vec<EventKind> {
        let incident = self.store.incidents(true, 5).await.unwrap()[0].clone();
        self.store
            .timeline(incident.key)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// The state of change request `id` in the store.
    pub async fn request_state(&self, id: i64) -> String {
        self.store
            .runbook_request(id)
            .await
            .unwrap()
            .expect("stored")
            .state
    }

    /// The request number of the last change proposed.
    pub async fn last_request(&self) -> i64 {
        self.events()
            .await
            .iter()
            .rev()
            .find_map(|e| match e {
                EventKind::ChangeProposed { request, .. } => Some(*request),
                _ => None,
            })
            .expect("a change was proposed")
    }
}

fn count(events: &[EventKind], name: &str) -> usize {
    events.iter().filter(|e| e.name() == name).count()
}

pub async fn diagnostics_show_the_cluster(db: &TestDb) {
    let rig = Rig::new(db).await;
    for (command, expect) in [
        ("diag pods deployment=stock-analysis-api", "Running"),
        ("diag events", "BackOff"),
        (
            "diag logs deployment=stock-analysis-api lines=2",
            "GET /api/quotes 503",
        ),
        ("diag top", "512Mi"),
        ("diag top of=nodes", "1200m"),
        (
            "diag rollout_status deployment=stock-analysis-api",
            "successfully rolled out",
        ),
        (
            "diag endpoints service=stock-analysis-api",
            "2 ready (10.0.0.1:8080, 10.0.0.2:8080); 1 not ready",
        ),
        ("diag nodes", "NotReady"),
        ("diag probe target=api", "200 OK"),
    ] {
        let reply = rig.say("carol", command).await;
        assert!(reply.is_empty(), "{command}: {reply}");
        let posted = rig.posted().await;
        assert!(
            posted.contains(expect),
            "{command}: no {expect:?} in\n{posted}"
        );
    }
    // Events newest first.
    let posted = rig.posted().await;
    let backoff = posted.find("BackOff").unwrap();
    let scaled = posted.find("ScalingReplicaSet").unwrap();
    assert!(backoff < scaled, "newest first");
    let events = rig.events().await;
    assert_eq!(count(&events, "runbook_ran"), 9);
    // No metrics server: said plainly.
    rig.fake.disable_metrics();
    rig.say("carol", "diag top").await;
    assert!(rig.posted().await.contains("no metrics API"));
    // Secrets were never asked for.
    assert!(
        rig.fake
            .requests()
            .iter()
            .all(|r| !r.path.contains("secrets"))
    );
}

pub async fn a_scale_waits_for_confirmation_and_can_be_undone(db: &TestDb) {
    let rig = Rig::new(db).await;
    let reply = rig.say("olivia", "scale stock-analysis-api 5").await;
    assert!(reply.is_empty(), "{reply}");
    let posted = rig.posted().await;
    assert!(
        posted
            .contains("stock-analysis-api in stock-analysis-system: 3 → 5 replicas (bounds 3–10)"),
        "{posted}"
    );
    assert!(posted.contains("buttons: Confirm, Cancel"), "{posted}");
    assert_eq!(rig.fake.dry_runs(), 1, "a server-side dry run");
    assert_eq!(
        rig.fake.deployment_replicas(NS, API),
        Some(3),
        "nothing changed yet"
    );
    let id = rig.last_request().await;

    let reply = rig.say("bob", &format!("confirm {id}")).await;
    assert!(reply.is_empty(), "{reply}");
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(5));
    let posted = rig.posted().await;
    assert!(posted.contains("done, confirmed by @bob"), "{posted}");
    assert!(posted.contains("(before: 3 replicas)"), "{posted}");
    assert!(posted.contains("buttons: Undo"), "{posted}");
    // A second confirmation changes nothing.
    let again = rig.say("bob", &format!("confirm {id}")).await;
    assert!(again.contains("already done by @bob"), "{again}");

    // Undo proposes the way back, which is confirmed like any change.
    rig.say("olivia", &format!("undo {id}")).await;
    let undo = rig.last_request().await;
    assert_ne!(undo, id);
    assert!(rig.posted().await.contains("5 → 3 replicas"));
    rig.say("olivia", &format!("confirm {undo}")).await;
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(3));

    let events = rig.events().await;
    assert_eq!(count(&events, "change_proposed"), 2);
    assert_eq!(count(&events, "change_applied"), 2);
    let applied = events
        .iter()
        .find_map(|e| match e {
            EventKind::ChangeApplied {
                confirmed_by,
                prior,
                ok,
                ..
            } => Some((confirmed_by.clone(), prior.clone(), *ok)),
            _ => None,
        })
        .unwrap();
    assert_eq!(applied, (user("bob"), "3 replicas".to_string(), true));
}

/// A signed request (`Origin::request`) for a runbook action is acted on once: the same
/// request again proposes nothing new; another request does.
pub async fn a_replayed_runbook_request_proposes_once(db: &TestDb) {
    let rig = Rig::new(db).await;
    let signed = |request: &str| Origin {
        request: Some(request.to_string()),
        ..origin(&rig.channel, "olivia")
    };
    let scale = "scale stock-analysis-api 5";
    let first = rig.say_from(&signed("trigger:1"), scale).await;
    assert!(first.is_empty(), "{first}");
    let id = rig.last_request().await;
    let again = rig.say_from(&signed("trigger:1"), scale).await;
    assert!(again.contains("already handled"), "{again}");
    assert_eq!(rig.last_request().await, id, "no second proposal");
    assert_eq!(rig.fake.dry_runs(), 1);
    // A read is answered however often it comes.
    for _ in 0..2 {
        let pods = rig
            .say_from(
                &signed("trigger:2"),
                "diag pods deployment=stock-analysis-api",
            )
            .await;
        assert!(!pods.contains("already handled"), "{pods}");
    }
    rig.say_from(&signed("trigger:3"), scale).await;
    let second = rig.last_request().await;
    assert_ne!(second, id, "a new request proposes again");

    // A button press sent twice: Undo of an applied change proposes the way back once.
    let confirm = ButtonAction::Confirm { request: second };
    rig.press_from(&signed("trigger:4"), &confirm).await;
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(5));
    let undo = ButtonAction::Undo { request: second };
    let first = rig.press_from(&signed("trigger:5"), &undo).await;
    assert!(!first.contains("already handled"), "{first}");
    let proposed = rig.last_request().await;
    assert_ne!(proposed, second);
    let again = rig.press_from(&signed("trigger:5"), &undo).await;
    assert!(again.contains("already handled"), "{again}");
    assert_eq!(rig.last_request().await, proposed, "one undo proposed");
}

pub async fn changes_are_refused_cancelled_expired_and_bound_to_their_preview(db: &TestDb) {
    let rig = Rig::new(db).await;
    // Bounds, counts, namespaces, names.
    for (command, complaint) in [
        (
            "scale stock-analysis-api 11",
            "outside the bounds of stock-analysis-api (3–10)",
        ),
        ("scale stock-analysis-api 2", "outside the bounds"),
        ("scale stock-analysis-api -1", "between 0 and 1000"),
        ("scale stock-analysis-api 99999999", "between 0 and 1000"),
        ("scale stock-analysis-api five", "whole number"),
        ("scale redis 2", "no replica bounds"),
        ("scale ../kube-system 3", "not a valid deployment"),
        (
            "diag pods namespace=kube-system",
            "not one warroom may touch",
        ),
        (
            "diag pods namespace=../kube-system",
            "not a valid namespace",
        ),
        ("diag pods shell=rm", "no argument `shell`"),
        ("diag frobnicate", "There is no diagnostic `frobnicate`"),
        ("diag scale deployment=x replicas=3", "changes the cluster"),
    ] {
        let reply = rig.say("olivia", command).await;
        assert!(reply.contains(complaint), "{command}: {reply}");
    }
    assert_eq!(rig.fake.dry_runs(), 0);

    // Someone without a role may not ask, nor confirm.
    let reply = rig.say("carol", "restart stock-analysis-api").await;
    assert!(
        reply.contains("no role in runbooks.roles allows it"),
        "{reply}"
    );
    rig.say("olivia", "scale stock-analysis-api 4").await;
    let id = rig.last_request().await;
    let reply = rig.say("carol", &format!("confirm {id}")).await;
    assert!(reply.contains("You cannot confirm"), "{reply}");
    // Cancel.
    rig.say("olivia", &format!("cancel {id}")).await;
    let reply = rig.say("bob", &format!("confirm {id}")).await;
    assert!(reply.contains("already cancelled by @olivia"), "{reply}");
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(3));

    // Expiry.
    rig.say("olivia", "scale stock-analysis-api 4").await;
    let id = rig.last_request().await;
    rig.clock.advance(Duration::minutes(6));
    let reply = rig.say("bob", &format!("confirm {id}")).await;
    assert!(reply.contains("expired"), "{reply}");
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(3));
    // Its expiry timer records the drop.
    rig.app.run_due_timers().await.unwrap();

    // The deployment changed between the preview and the confirmation.
    rig.say("olivia", "scale stock-analysis-api 6").await;
    let id = rig.last_request().await;
    rig.fake.set_replicas_behind_our_back(NS, API, 4);
    rig.say("bob", &format!("confirm {id}")).await;
    assert_eq!(
        rig.fake.deployment_replicas(NS, API),
        Some(4),
        "not silently applied"
    );
    let posted = rig.posted().await;
    assert!(
        posted.contains("now 4 replicas (was 3 replicas)"),
        "{posted}"
    );

    let events = rig.events().await;
    // Refusals by the guard are recorded (bad input is only answered).
    assert_eq!(count(&events, "change_refused"), 4, "{events:?}");
    assert_eq!(
        count(&events, "change_dropped"),
        3,
        "cancelled, expired, state changed"
    );
    assert_eq!(count(&events, "change_applied"), 0);
}

pub async fn p0_changes_need_a_second_person(db: &TestDb) {
    let rig = Rig::with(db, |c| c.p0_second_person = true).await;
    rig.say("alice", "sev P0").await;
    rig.say("olivia", "restart stock-analysis-api").await;
    let id = rig.last_request().await;
    let reply = rig.say("olivia", &format!("confirm {id}")).await;
    assert!(reply.contains("a second person must confirm"), "{reply}");
    assert!(rig.fake.restarted_at(NS, API).is_none());
    rig.say("bob", &format!("confirm {id}")).await;
    assert!(
        rig.fake.restarted_at(NS, API).is_some(),
        "restarted like kubectl"
    );
}

/// Chat groups as the Slack directory would answer them.
struct Groups(Vec<(&'static str, &'static str)>);

#[async_trait]
impl warroom::app::runbook::Directory for Groups {
    async fn groups_of(&self, user: &UserRef, groups: &[String]) -> Vec<String> {
        groups
            .iter()
            .filter(|g| {
                self.0
                    .iter()
                    .any(|(u, group)| *u == user.as_str() && *group == g.as_str())
            })
            .cloned()
            .collect()
    }
}

pub async fn a_role_can_name_a_chat_group(db: &TestDb) {
    let directory = Arc::new(Groups(vec![("dave", "S0SRE")]));
    let rig = Rig::build(
        db,
        |c| {
            let operators = c.roles.iter_mut().find(|r| r.name == "operators").unwrap();
            operators.groups = vec!["S0SRE".into()];
        },
        Some(directory),
        Playbooks::builtin(),
    )
    .await;
    let reply = rig.say("erin", "restart stock-analysis-api").await;
    assert!(reply.contains("no role"), "{reply}");
    let reply = rig.say("dave", "restart stock-analysis-api").await;
    assert!(reply.is_empty(), "a member of S0SRE may: {reply}");
    assert_eq!(count(&rig.events().await, "change_proposed"), 1);
}

pub async fn output_is_redacted_and_cut(db: &TestDb) {
    let rig = Rig::new(db).await;
    let pod = rig
        .fake
        .pods(NS)
        .into_iter()
        .find(|p| p.starts_with(API))
        .unwrap();
    let long = "x".repeat(400);
    let mut lines: Vec<&str> = vec![
        "connecting to postgres://app:hunter2@db:5432/quotes",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.secret",
        "config password=s3cr3t loaded",
    ];
    for _ in 0..60 {
        lines.push(&long);
    }
    for other in rig.fake.pods(NS) {
        rig.fake.set_logs(NS, &other, None, &[]);
    }
    rig.fake.set_logs(NS, &pod, None, &lines);
    rig.say("carol", "diag logs deployment=stock-analysis-api lines=100")
        .await;
    let posted = rig.posted().await;
    for secret in ["hunter2", "eyJhbGciOiJIUzI1NiJ9", "s3cr3t"] {
        assert!(!posted.contains(secret), "{secret} leaked:\n{posted}");
    }
    assert!(posted.contains("[redacted]"));
    assert!(
        posted.contains("more characters not shown"),
        "cut with a note"
    );
    let events = rig.events().await;
    let stored = format!("{events:?}");
    assert!(
        !stored.contains("hunter2") && !stored.contains("s3cr3t"),
        "{stored}"
    );
}

pub async fn playbooks_are_listed_checked_and_run(db: &TestDb) {
    let rig = Rig::new(db).await;
    let list = rig.say("carol", "playbooks").await;
    for name in ["api-not-responding", "scale-api", "system-health-check"] {
        assert!(list.contains(name), "{list}");
    }
    assert!(
        list.contains("replicas=5"),
        "parameters with defaults: {list}"
    );
    assert!(list.contains("For P0"), "when it applies: {list}");
    let reply = rig.say("carol", "run nope").await;
    assert!(
        reply.contains("scale-api") && reply.contains("system-health-check"),
        "{reply}"
    );
    let reply = rig.say("olivia", "run scale-api replicas=abc").await;
    assert!(reply.contains("replicas"), "{reply}");
    let reply = rig.say("olivia", "run scale-api replicas=50").await;
    assert!(reply.contains("replicas"), "{reply}");
    let reply = rig
        .say("olivia", "run scale-api namespace=../kube-system")
        .await;
    assert!(!reply.is_empty(), "refused");
    let reply = rig.say("olivia", "run scale-api frob=1").await;
    assert!(reply.contains("frob"), "{reply}");
    assert_eq!(rig.fake.dry_runs(), 0);

    // scale-api: pods, then the scale waits, then the rest runs after the confirmation.
    rig.say("olivia", "run scale-api replicas=6").await;
    let events = rig.events().await;
    assert_eq!(count(&events, "runbook_ran"), 1);
    assert_eq!(count(&events, "change_proposed"), 1);
    let id = rig.last_request().await;
    rig.say("bob", &format!("confirm {id}")).await;
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(6));
    let events = rig.events().await;
    assert_eq!(
        count(&events, "runbook_ran"),
        2,
        "rollout status after the scale"
    );
}

pub async fn without_a_cluster_runbooks_say_so(db: &TestDb) {
    let store = db.open().await;
    let clock = Arc::new(VirtualClock::starting_at(Utc::now()));
    let config = warroom::config::load(None).unwrap();
    let app = App::new(
        store.clone(),
        config.policy.clone(),
        clock,
        Duration::seconds(60),
    )
    .with_runbooks(Runbooks {
        guard: Guard::new(config.runbooks.clone()),
        cluster: None,
        playbooks: Playbooks::builtin(),
        directory: None,
    });
    app.handle_command(&origin("general", "alice"), "declare Disk full")
        .await;
    let channel = store.incidents(false, 5).await.unwrap()[0]
        .channel
        .to_string();
    let renderer = Renderer::load(None).unwrap();
    for command in [
        "diag pods",
        "scale stock-analysis-api 4",
        "run system-health-check",
    ] {
        let reply = app
            .handle_command(&origin(&channel, "alice"), command)
            .await
            .unwrap();
        let text = renderer
            .render(Platform::Console, &reply)
            .unwrap()
            .plain_text();
        assert!(
            text.contains("No Kubernetes cluster is configured"),
            "{command}: {text}"
        );
    }
}

/// Kubernetes errors and hangs while applying, requests decided from another incident's
/// channel, the P0 rule across a severity change, and a namespace given on the command.
pub async fn failures_while_applying_are_reported_truthfully(db: &TestDb) {
    use crate::support::kube::Fault;
    let rig = Rig::with(db, |c| {
        c.p0_second_person = true;
        c.timeout = std::time::Duration::from_secs(1);
    })
    .await;
    // Forbidden when applying: said, and nothing changed.
    rig.say(
        "olivia",
        "scale stock-analysis-api 4 namespace=stock-analysis-system",
    )
    .await;
    let id = rig.last_request().await;
    rig.fake.fail_next("PATCH", "/scale", Fault::Forbidden);
    rig.say("bob", &format!("confirm {id}")).await;
    let posted = rig.posted().await;
    assert!(posted.contains("forbidden"), "{posted}");
    assert!(
        posted.contains("the cluster shows nothing changed"),
        "{posted}"
    );
    // A hang: the answer never comes, the state is read again, and the truth is told.
    rig.say("olivia", "scale stock-analysis-api 4").await;
    let id = rig.last_request().await;
    rig.fake.fail_next("PATCH", "/scale", Fault::Hang);
    rig.say("bob", &format!("confirm {id}")).await;
    assert!(rig.posted().await.contains("no answer within 1s"));
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(3));
    // Not found, on a diagnostic.
    rig.say("carol", "diag rollout_status deployment=nope")
        .await;
    assert!(rig.posted().await.contains("not found"));
    // Another namespace on the command line is checked like any other.
    let reply = rig
        .say("olivia", "restart stock-analysis-api namespace=kube-system")
        .await;
    assert!(reply.contains("not one warroom may touch"), "{reply}");

    // A P0 change asked for, then the severity lowered: still two people.
    rig.say("alice", "sev P0").await;
    rig.say("olivia", "scale stock-analysis-api 5").await;
    let id = rig.last_request().await;
    rig.say("alice", "sev P1").await;
    let reply = rig.say("olivia", &format!("confirm {id}")).await;
    assert!(reply.contains("a second person must confirm"), "{reply}");

    // Decided only in its own incident's channel.
    rig.app
        .handle_command(&origin("general", "alice"), "declare Search down")
        .await;
    let other = rig
        .store
        .incidents(false, 5)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.title == "Search down")
        .unwrap();
    let reply = rig
        .app
        .handle_command(
            &origin(other.channel.as_str(), "bob"),
            &format!("confirm {id}"),
        )
        .await
        .unwrap();
    let text = serde_json::to_string(&reply).unwrap();
    assert!(text.contains("belongs to INC-1"), "{text}");
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(3));
}

/// A change nobody confirms expires on its own, and the channel is told.
pub async fn an_unconfirmed_change_expires_on_its_own(db: &TestDb) {
    let rig = Rig::new(db).await;
    rig.say("olivia", "run scale-api").await;
    let id = rig.last_request().await;
    rig.clock.advance(Duration::minutes(4));
    rig.app.run_due_timers().await.unwrap();
    assert!(
        !rig.posted().await.contains("expired unconfirmed"),
        "not yet"
    );
    rig.clock.advance(Duration::minutes(2));
    rig.app.run_due_timers().await.unwrap();
    let posted = rig.posted().await;
    assert!(posted.contains(&format!("change #{id}")), "{posted}");
    assert!(
        posted
            .contains("expired unconfirmed; nothing was changed. Playbook scale-api stopped here"),
        "{posted}"
    );
    let reply = rig.say("bob", &format!("confirm {id}")).await;
    assert!(reply.contains("already expired"), "{reply}");
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(3));
    let events = rig.events().await;
    assert_eq!(count(&events, "change_dropped"), 1, "recorded once");
    // Firing again changes nothing.
    assert_eq!(rig.app.run_due_timers().await.unwrap(), 0);
}

/// A replica stops between expiring a change and recording its notice: the expiry timer,
/// still pending, posts the notice when it is claimed again, once. A confirmation that came
/// too late is refused and leaves the expiry to the timer, so it is recorded once.
pub async fn an_expiry_cut_short_still_tells_the_channel_once(db: &TestDb) {
    let rig = Rig::new(db).await;
    rig.say("olivia", "run scale-api").await;
    let cut = rig.last_request().await;
    rig.clock.advance(Duration::minutes(6));
    // What the stopped replica got done: the state, not the notice.
    assert!(
        rig.store
            .transition_runbook_request(
                cut,
                "pending",
                "expired",
                None,
                warroom::app::clock::Clock::now(&*rig.clock)
            )
            .await
            .unwrap()
    );
    assert_eq!(rig.app.run_due_timers().await.unwrap(), 1);
    let posted = rig.posted().await;
    assert!(
        posted.contains(&format!("change #{cut} (")) && posted.contains("expired unconfirmed"),
        "{posted}"
    );
    assert_eq!(count(&rig.events().await, "change_dropped"), 1);

    rig.say("olivia", "run scale-api").await;
    let late = rig.last_request().await;
    rig.clock.advance(Duration::seconds(301));
    let reply = rig.say("bob", &format!("confirm {late}")).await;
    assert!(reply.contains("expired at"), "{reply}");
    assert_eq!(
        count(&rig.events().await, "change_dropped"),
        1,
        "the late confirmation records nothing itself"
    );
    assert_eq!(
        rig.request_state(late).await,
        "pending",
        "nor expires the request: its timer does"
    );
    rig.app.run_due_timers().await.unwrap();
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(count(&rig.events().await, "change_dropped"), 2);
    let posted = rig.posted().await;
    assert_eq!(posted.matches("expired unconfirmed").count(), 2, "{posted}");
    assert!(posted.contains(&format!("change #{late} (")), "{posted}");
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(3));
}

/// A replica stops between storing a proposed change and recording its proposal (so nobody
/// saw it): the request does not stay pending for ever. Its expiry timer, written with it,
/// closes it when due and says so in the channel, once.
pub async fn a_proposal_cut_short_still_expires(db: &TestDb) {
    let rig = Rig::new(db).await;
    // What the stopped replica stored: a proposal like one shown (its body taken from one).
    rig.say("olivia", "scale stock-analysis-api 4").await;
    let shown = rig.last_request().await;
    rig.say("olivia", &format!("cancel {shown}")).await;
    let body = rig
        .store
        .runbook_request(shown)
        .await
        .unwrap()
        .unwrap()
        .body;
    let incident = rig.store.incidents(false, 5).await.unwrap()[0].clone();
    let now = warroom::app::clock::Clock::now(&*rig.clock);
    let id = rig
        .store
        .insert_runbook_request(incident.key, &body, now + Duration::minutes(5), now)
        .await
        .unwrap();
    rig.clock.advance(Duration::minutes(4));
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(
        rig.request_state(id).await,
        "pending",
        "not before it is due"
    );
    rig.clock.advance(Duration::minutes(2));
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(rig.request_state(id).await, "expired");
    let posted = rig.posted().await;
    assert!(
        posted.contains(&format!("change #{id} (scale")) && posted.contains("expired unconfirmed"),
        "{posted}"
    );
    rig.clock.advance(Duration::hours(1));
    rig.app.run_due_timers().await.unwrap();
    let dropped = rig
        .events()
        .await
        .into_iter()
        .filter(|e| matches!(e, EventKind::ChangeDropped { request, .. } if *request == id))
        .count();
    assert_eq!(dropped, 1, "told once");
}

/// A replica stops between taking a confirmation (the request "running") and recording it
/// with its settle timer: the change's expiry timer finds it running and plans the settling,
/// which finds what the cluster shows and tells the channel, once.
pub async fn a_confirmation_cut_short_is_still_settled(db: &TestDb) {
    let rig = Rig::new(db).await;
    rig.say("olivia", "scale stock-analysis-api 4").await;
    let id = rig.last_request().await;
    let now = warroom::app::clock::Clock::now(&*rig.clock);
    assert!(
        rig.store
            .transition_runbook_request(id, "pending", "running", Some("bob"), now)
            .await
            .unwrap()
    );
    rig.clock.advance(Duration::minutes(6));
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(
        rig.request_state(id).await,
        "running",
        "the expiry leaves a running change to be settled"
    );
    assert!(!rig.posted().await.contains("interrupted"));
    rig.clock.advance(Duration::minutes(10));
    assert_eq!(rig.app.run_due_timers().await.unwrap(), 1);
    assert_eq!(rig.request_state(id).await, "failed", "nothing landed");
    let posted = rig.posted().await;
    assert!(
        posted.contains("was interrupted while being applied")
            && posted.contains("the cluster shows nothing changed"),
        "{posted}"
    );
    rig.clock.advance(Duration::hours(1));
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(count(&rig.events().await, "change_applied"), 1);
    assert_eq!(
        rig.posted().await.matches("was interrupted").count(),
        1,
        "settled once"
    );
    assert_eq!(rig.fake.deployment_replicas(NS, API), Some(3));
}

/// The process applying a change stops half-way (here: the apply hangs and is abandoned):
/// the settle timer planned with the confirmation finds it still running and settles it from
/// what the cluster shows.
pub async fn a_change_abandoned_mid_apply_is_settled_by_its_timer(db: &TestDb) {
    use crate::support::kube::Fault;
    let rig = Rig::with(db, |c| c.timeout = std::time::Duration::from_secs(20)).await;
    rig.say("olivia", "scale stock-analysis-api 4").await;
    let id = rig.last_request().await;
    rig.fake.fail_next("PATCH", "/scale", Fault::Hang);
    {
        let text = format!("confirm {id}");
        let confirm = rig.say("bob", &text);
        tokio::pin!(confirm);
        loop {
            tokio::select! {
                _ = &mut confirm => panic!("the apply should hang"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                    if count(&rig.events().await, "change_confirmed") == 1 {
                        break;
                    }
                }
            }
        }
        // Dropped here: the process "stops" while the PATCH hangs.
    }
    assert_eq!(rig.request_state(id).await, "running");
    rig.clock.advance(Duration::minutes(2));
    assert_eq!(rig.app.run_due_timers().await.unwrap(), 1);
    assert_eq!(rig.request_state(id).await, "failed", "nothing landed");
    let posted = rig.posted().await;
    assert!(
        posted.contains("was interrupted while being applied"),
        "{posted}"
    );
    assert!(
        posted.contains("the cluster shows nothing changed"),
        "{posted}"
    );
    assert_eq!(count(&rig.events().await, "change_applied"), 1);
    assert_eq!(rig.app.run_due_timers().await.unwrap(), 0);
}

/// A change made by a playbook step is held to the step's own timeout.
pub async fn a_playbook_change_keeps_its_step_timeout(db: &TestDb) {
    use crate::support::kube::Fault;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("quick-scale.yaml"),
        "name: quick-scale\ndescription: Scale the API quickly.\nsteps:\n  - name: Scale\n    action: scale\n    args: { deployment: stock-analysis-api, replicas: \"4\" }\n    confirm: true\n    timeout: 1s\n",
    )
    .unwrap();
    let rig = Rig::build(db, |_| {}, None, Playbooks::load_dir(dir.path()).unwrap()).await;
    rig.say("olivia", "run quick-scale").await;
    let id = rig.last_request().await;
    rig.fake.fail_next("PATCH", "/scale", Fault::Hang);
    let started = std::time::Instant::now();
    rig.say("bob", &format!("confirm {id}")).await;
    assert!(rig.posted().await.contains("no answer within 1s"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "not the 30 s default"
    );
}

/// A pod deleted through a playbook (the only way to reach delete_pod), bound to the pod's uid.
pub async fn a_pod_is_deleted_after_confirmation(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("evict-pod.yaml"),
        r#"name: evict-pod
description: Delete one pod so that its deployment replaces it.
parameters:
  - name: pod
    type: string
    pattern: "[a-z0-9.-]+"
steps:
  - name: Delete the pod
    action: delete_pod
    args: { namespace: stock-analysis-system, pod: "{{pod}}" }
    confirm: true
"#,
    )
    .unwrap();
    let playbooks = Playbooks::load_dir(dir.path()).expect("lints clean");
    let rig = Rig::build(db, |_| {}, None, playbooks).await;
    let pod = rig
        .fake
        .pods(NS)
        .into_iter()
        .find(|p| p.starts_with(API))
        .unwrap();
    let reply = rig.say("olivia", &format!("run evict-pod pod={pod}")).await;
    assert!(reply.is_empty(), "{reply}");
    assert!(
        rig.fake.pods(NS).contains(&pod),
        "a dry run deletes nothing"
    );
    let id = rig.last_request().await;
    rig.say("bob", &format!("confirm {id}")).await;
    assert!(!rig.fake.pods(NS).contains(&pod), "deleted");
    assert!(
        rig.posted()
            .await
            .contains("deleted (its controller replaces it)")
    );
}

/// deploy/kubernetes/rbac.yaml grants exactly what the actions use: every request warroom made
/// in these flows is allowed by it, and every verb it grants was used.
pub async fn the_shipped_rbac_is_exactly_what_the_actions_use(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("evict-pod.yaml"),
        "name: evict-pod\ndescription: Delete a pod.\nparameters:\n  - name: pod\n    type: string\nsteps:\n  - name: Delete\n    action: delete_pod\n    args: { pod: \"{{pod}}\" }\n    confirm: true\n",
    )
    .unwrap();
    let rig = Rig::build(db, |_| {}, None, Playbooks::load_dir(dir.path()).unwrap()).await;
    for command in [
        "diag pods deployment=stock-analysis-api",
        "diag events",
        "diag logs deployment=stock-analysis-api",
        "diag top",
        "diag top of=nodes",
        "diag rollout_status deployment=stock-analysis-api",
        "diag endpoints service=stock-analysis-api",
        "diag nodes",
        "scale stock-analysis-api 4",
        "restart stock-analysis-api",
    ] {
        assert_eq!(rig.say("olivia", command).await, "", "{command}");
    }
    let pod = rig
        .fake
        .pods(NS)
        .into_iter()
        .find(|p| p.starts_with(API))
        .unwrap();
    rig.say("olivia", &format!("run evict-pod pod={pod}")).await;
    for id in 1..=3 {
        rig.say("bob", &format!("confirm {id}")).await;
    }
    // (group, resource, verb) of each request.
    let used: std::collections::BTreeSet<(String, String, String)> = rig
        .fake
        .requests()
        .iter()
        .map(|r| {
            let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
            let (group, rest) = match parts.as_slice() {
                ["api", "v1", rest @ ..] => ("", rest.to_vec()),
                ["apis", group, _version, rest @ ..] => (*group, rest.to_vec()),
                _ => panic!("unexpected path {}", r.path),
            };
            let (resource, named) = match rest.as_slice() {
                ["namespaces", _, resource] => (resource.to_string(), false),
                ["namespaces", _, resource, _name] => (resource.to_string(), true),
                ["namespaces", _, resource, _name, sub] => (format!("{resource}/{sub}"), true),
                [resource] => (resource.to_string(), false),
                other => panic!("unexpected path {other:?}"),
            };
            let verb = match (r.method.as_str(), named) {
                ("GET", true) => "get",
                ("GET", false) => "list",
                ("PATCH", _) => "patch",
                ("DELETE", _) => "delete",
                (m, _) => panic!("unexpected method {m}"),
            };
            (group.to_string(), resource, verb.to_string())
        })
        .collect();
    let rbac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/rbac.yaml"
    ))
    .unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for document in serde_norway::Deserializer::from_str(&rbac) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        if !matches!(value["kind"].as_str(), Some("Role" | "ClusterRole")) {
            continue;
        }
        for rule in value["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        granted.insert((
                            group.as_str().unwrap().to_string(),
                            resource.as_str().unwrap().to_string(),
                            verb.as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(used, granted, "used vs granted");
}

on_both_stores!(
    a_change_abandoned_mid_apply_is_settled_by_its_timer,
    a_confirmation_cut_short_is_still_settled,
    a_proposal_cut_short_still_expires,
    an_unconfirmed_change_expires_on_its_own,
    an_expiry_cut_short_still_tells_the_channel_once,
    diagnostics_show_the_cluster,
    a_scale_waits_for_confirmation_and_can_be_undone,
    a_replayed_runbook_request_proposes_once,
    changes_are_refused_cancelled_expired_and_bound_to_their_preview,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p0_changes_need_a_second_person_sqlite() {
    p0_changes_need_a_second_person(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_can_name_a_chat_group_sqlite() {
    a_role_can_name_a_chat_group(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_while_applying_are_reported_truthfully_sqlite() {
    failures_while_applying_are_reported_truthfully(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_change_keeps_its_step_timeout_sqlite() {
    a_playbook_change_keeps_its_step_timeout(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_is_deleted_after_confirmation_sqlite() {
    a_pod_is_deleted_after_confirmation(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_rbac_is_exactly_what_the_actions_use_sqlite() {
    the_shipped_rbac_is_exactly_what_the_actions_use(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_redacted_and_cut_sqlite() {
    output_is_redacted_and_cut(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbooks_are_listed_checked_and_run_sqlite() {
    playbooks_are_listed_checked_and_run(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cluster_runbooks_say_so_sqlite() {
    without_a_cluster_runbooks_say_so(&TestDb::sqlite()).await;
}

/// Every shipped playbook, end to end in the console binary against the fake cluster: the
/// read-only steps post their output, each change is confirmed, and the playbook carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_playbook_runs_in_the_console() {
    let (fake, health, _task) = cluster().await;
    let playbooks = Playbooks::builtin();
    let read_only = [
        "pods",
        "events",
        "logs",
        "top",
        "rollout_status",
        "endpoints",
        "nodes",
        "probe",
    ]
    .map(|a| format!("\"{a}\""))
    .join(", ");
    let config = format!(
        r#"
[runbooks]
cluster = "{}"

[runbooks.probes]
api = "{health}"

[[runbooks.roles]]
name = "everyone"
everyone = true
actions = [{read_only}]

[[runbooks.roles]]
name = "operators"
users = ["olivia"]
actions = [{read_only}, "scale", "restart", "delete_pod"]
"#,
        fake.url
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warroom.toml");
    std::fs::write(&path, config).unwrap();

    let mut script = String::from("declare API returning 503s\n:channel INC-1\n");
    let (mut request, mut changes, mut diagnostics) = (0, 0, 0);
    for playbook in playbooks.all() {
        script.push_str(&format!("run {}\n", playbook.name));
        for step in &playbook.steps {
            if step.confirm || step.action.mutating() {
                request += 1;
                changes += 1;
                script.push_str(&format!("confirm {request}\n"));
            } else {
                diagnostics += 1;
            }
        }
    }
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warroom"))
            .args([
                "--config",
                path.to_str().unwrap(),
                "console",
                "--ephemeral",
                "--as",
                "olivia",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("stopped at step"), "{stdout}");
    assert!(!stdout.contains("it failed"), "{stdout}");
    assert_eq!(stdout.matches("🔧 INC-1").count(), diagnostics, "{stdout}");
    assert_eq!(
        stdout.matches("✅ INC-1 change #").count(),
        changes,
        "{stdout}"
    );
    assert!(changes >= 5, "the shipped playbooks make changes");
    assert!(fake.restarted_at(NS, API).is_some());
    assert_eq!(
        fake.deployment_replicas(NS, "stock-analysis-worker"),
        Some(8)
    );
}
