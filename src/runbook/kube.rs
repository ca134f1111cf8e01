//! Runbook actions against the Kubernetes API with kube-rs (no `kubectl`, no shell), and the
//! HTTP health probe. Read-only actions return text; mutating ones have a server-side dry run
//! (`preview`) that also reads the state the confirmation is bound to (`PriorState`).
//! Secrets are never read: no action touches the Secret API.

use super::action::{Action, ActionKind};
use super::guard::{ClusterSource, RunbookConfig};
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Event, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Pods whose logs one `logs` call reads at most.
const MAX_LOG_PODS: usize = 5;
/// Events one `events` call shows by default.
const DEFAULT_EVENTS: usize = 20;
/// Log lines by default.
const DEFAULT_LOG_LINES: i64 = 100;

/// Why an action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("Kubernetes refused (forbidden): {0}")]
    Forbidden(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("Kubernetes API error: {0}")]
    Api(String),
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Other(String),
}

impl From<kube::Error> for RunError {
    fn from(error: kube::Error) -> RunError {
        match error {
            kube::Error::Api(status) => match status.code {
                404 => RunError::NotFound(status.message),
                403 => RunError::Forbidden(status.message),
                409 => RunError::Conflict(status.message),
                code => RunError::Api(format!("{code} {}", status.message)),
            },
            other => RunError::Api(crate::core::text::first_line(&other.to_string(), 300)),
        }
    }
}

/// The state a confirmation is bound to: if it differs at confirmation time, nothing is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PriorState {
    /// A deployment's replica count (scale; undo goes back to it).
    Replicas { replicas: i32 },
    /// A deployment's last restart annotation (restart).
    Restarted { at: Option<String> },
    /// A pod's uid (delete: the same pod, not a replacement with the name).
    Pod { uid: String },
}

impl PriorState {
    pub fn describe(&self) -> String {
        match self {
            PriorState::Replicas { replicas } => format!("{replicas} replicas"),
            PriorState::Restarted { at: Some(at) } => format!("last restarted {at}"),
            PriorState::Restarted { at: None } => "never restarted by rollout restart".into(),
            PriorState::Pod { uid } => format!("pod uid {uid}"),
        }
    }
}

/// What a mutating action would do, from a server-side dry run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    /// "stock-analysis-api in stock-analysis-system: 3 → 5 replicas".
    pub change: String,
    pub prior: PriorState,
}

/// A connection to a cluster.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    probes: BTreeMap<String, url::Url>,
    http: reqwest::Client,
}

impl Cluster {
    /// Connect as configured; `None` when no cluster is configured (or, with `auto`, none is
    /// found).
    pub async fn connect(config: &RunbookConfig) -> anyhow::Result<Option<Cluster>> {
        crate::tls::init();
        let kube_config = match &config.cluster {
            ClusterSource::None => return Ok(None),
            ClusterSource::Url(url) => kube::Config::new(url.parse()?),
            ClusterSource::InCluster => kube::Config::incluster()?,
            ClusterSource::Kubeconfig => {
                kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                    context: config.context.clone(),
                    ..Default::default()
                })
                .await?
            }
            ClusterSource::Auto => match kube::Config::incluster() {
                Ok(c) => c,
                Err(_) => match kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                    context: config.context.clone(),
                    ..Default::default()
                })
                .await
                {
                    Ok(c) => c,
                    Err(error) => {
                        tracing::info!(%error, "no Kubernetes cluster found; runbook actions are off");
                        return Ok(None);
                    }
                },
            },
        };
        let client = kube::Client::try_from(kube_config)?;
        Ok(Some(Cluster::new(client, config.probes.clone())))
    }

    pub fn new(client: kube::Client, probes: BTreeMap<String, url::Url>) -> Cluster {
        crate::tls::init();
        Cluster {
            client,
            probes,
            http: reqwest::Client::builder()
                .user_agent(concat!("warroom/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    fn namespace(action: &Action) -> &str {
        action.arg("namespace").unwrap_or("default")
    }

    /// Run an action for real (mutating ones only after their confirmation), within
    /// `timeout`. The text is raw: redact and cut it before showing it.
    pub async fn run(
        &self,
        action: &Action,
        timeout: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<String, RunError> {
        match tokio::time::timeout(timeout, self.run_inner(action, now)).await {
            Ok(result) => result,
            Err(_) => Err(RunError::Timeout(timeout)),
        }
    }

    async fn run_inner(&self, action: &Action, now: DateTime<Utc>) -> Result<String, RunError> {
        let ns = Cluster::namespace(action);
        match action.kind {
            ActionKind::Pods => self.pods(ns, action, now).await,
            ActionKind::Events => self.events(ns, action, now).await,
            ActionKind::Logs => self.logs(ns, action).await,
            ActionKind::Top => self.top(ns, action).await,
            ActionKind::RolloutStatus => self.rollout_status(ns, action).await,
            ActionKind::Endpoints => self.endpoints(ns, action).await,
            ActionKind::Nodes => self.nodes().await,
            ActionKind::Probe => self.probe(action).await,
            ActionKind::Scale | ActionKind::Restart | ActionKind::DeletePod => {
                self.mutate(action, false, now).await.map(|p| p.change)
            }
        }
    }

    /// Dry-run a mutating action on the server and read the state it is bound to.
    pub async fn preview(
        &self,
        action: &Action,
        timeout: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Preview, RunError> {
        match tokio::time::timeout(timeout, self.mutate(action, true, now)).await {
            Ok(result) => result,
            Err(_) => Err(RunError::Timeout(timeout)),
        }
    }

    /// The state a mutating action's confirmation is bound to, read now.
    pub async fn prior_state(
        &self,
        action: &Action,
        timeout: std::time::Duration,
    ) -> Result<PriorState, RunError> {
        let read = async {
            let ns = Cluster::namespace(action);
            match action.kind {
                ActionKind::Scale => {
                    let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                    let scale = api
                        .get_scale(action.arg("deployment").unwrap_or_default())
                        .await?;
                    Ok(PriorState::Replicas {
                        replicas: scale.spec.and_then(|s| s.replicas).unwrap_or(0),
                    })
                }
                ActionKind::Restart => {
                    let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                    let d = api
                        .get(action.arg("deployment").unwrap_or_default())
                        .await?;
                    Ok(PriorState::Restarted {
                        at: restarted_at(&d),
                    })
                }
                ActionKind::DeletePod => {
                    let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                    let pod = api.get(action.arg("pod").unwrap_or_default()).await?;
                    Ok(PriorState::Pod {
                        uid: pod.metadata.uid.unwrap_or_default(),
                    })
                }
                other => Err(RunError::Other(format!("{other} changes nothing"))),
            }
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(result) => result,
            Err(_) => Err(RunError::Timeout(timeout)),
        }
    }

    async fn mutate(
        &self,
        action: &Action,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<Preview, RunError> {
        let ns = Cluster::namespace(action);
        let prior = self
            .prior_state(action, std::time::Duration::from_secs(3600))
            .await?;
        let params = if dry_run {
            PatchParams::default().dry_run()
        } else {
            PatchParams::default()
        };
        match action.kind {
            ActionKind::Scale => {
                let name = action.arg("deployment").unwrap_or_default();
                let replicas: i32 = action
                    .arg("replicas")
                    .and_then(|r| r.parse().ok())
                    .ok_or_else(|| RunError::Other("replicas is not a number".into()))?;
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                let scaled = api
                    .patch_scale(
                        name,
                        &params,
                        &Patch::Merge(json!({ "spec": { "replicas": replicas } })),
                    )
                    .await?;
                let to = scaled.spec.and_then(|s| s.replicas).unwrap_or(replicas);
                let PriorState::Replicas { replicas: from } = prior else {
                    unreachable!("a scale's prior state is a replica count")
                };
                Ok(Preview {
                    change: format!("{name} in {ns}: {from} → {to} replicas"),
                    prior,
                })
            }
            ActionKind::Restart => {
                let name = action.arg("deployment").unwrap_or_default();
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let patch = json!({
                    "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } }
                });
                let d = api.patch(name, &params, &Patch::Merge(patch)).await?;
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                Ok(Preview {
                    change: format!(
                        "{name} in {ns}: rollout restart of {replicas} pod{} (restartedAt {at})",
                        if replicas == 1 { "" } else { "s" }
                    ),
                    prior,
                })
            }
            ActionKind::DeletePod => {
                let name = action.arg("pod").unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                let params = DeleteParams {
                    dry_run,
                    ..DeleteParams::default()
                };
                api.delete(name, &params).await?;
                Ok(Preview {
                    change: format!("pod {name} in {ns}: deleted (its controller replaces it)"),
                    prior,
                })
            }
            other => Err(RunError::Other(format!("{other} is not a change"))),
        }
    }

    async fn pods(
        &self,
        ns: &str,
        action: &Action,
        now: DateTime<Utc>,
    ) -> Result<String, RunError> {
        let selector = match (action.arg("deployment"), action.arg("selector")) {
            (Some(deployment), _) => Some(self.deployment_selector(ns, deployment).await?),
            (None, Some(selector)) => Some(selector.to_string()),
            (None, None) => None,
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut params = ListParams::default();
        if let Some(selector) = &selector {
            params = params.labels(selector);
        }
        let pods = api.list(&params).await?;
        if pods.items.is_empty() {
            return Ok(format!(
                "No pods in {ns}{}.",
                selector
                    .map(|s| format!(" matching {s}"))
                    .unwrap_or_default()
            ));
        }
        let mut rows = vec![vec![
            "NAME".to_string(),
            "READY".into(),
            "STATUS".into(),
            "RESTARTS".into(),
            "AGE".into(),
        ]];
        for pod in &pods.items {
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Unknown".into());
            rows.push(vec![
                pod.metadata.name.clone().unwrap_or_default(),
                readiness(pod),
                phase,
                restarts.to_string(),
                age(
                    pod.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| chrono_of(t.0)),
                    now,
                ),
            ]);
        }
        Ok(table(&rows))
    }

    async fn deployment_selector(&self, ns: &str, name: &str) -> Result<String, RunError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let d = api.get(name).await?;
        let labels = d
            .spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default();
        if labels.is_empty() {
            return Err(RunError::Other(format!("{name} has no label selector")));
        }
        Ok(labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","))
    }

    async fn events(
        &self,
        ns: &str,
        action: &Action,
        now: DateTime<Utc>,
    ) -> Result<String, RunError> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let mut params = ListParams::default();
        if let Some((kind, name)) = action.arg("object").and_then(|o| o.split_once('/')) {
            let kind = capitalise(kind);
            params = params.fields(&format!(
                "involvedObject.kind={kind},involvedObject.name={name}"
            ));
        }
        let mut events = api.list(&params).await?.items;
        let when = |e: &Event| {
            e.last_timestamp
                .as_ref()
                .map(|t| chrono_of(t.0))
                .or_else(|| e.event_time.as_ref().map(|t| chrono_of(t.0)))
                .or_else(|| e.first_timestamp.as_ref().map(|t| chrono_of(t.0)))
        };
        events.sort_by_key(|e| std::cmp::Reverse(when(e)));
        let limit = action
            .arg("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(DEFAULT_EVENTS);
        if events.is_empty() {
            return Ok(format!("No recent events in {ns}."));
        }
        let mut rows = vec![vec![
            "LAST SEEN".to_string(),
            "TYPE".into(),
            "REASON".into(),
            "OBJECT".into(),
            "MESSAGE".into(),
        ]];
        for e in events.iter().take(limit) {
            rows.push(vec![
                age(when(e), now),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                format!(
                    "{}/{}",
                    e.involved_object
                        .kind
                        .clone()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    e.involved_object.name.clone().unwrap_or_default()
                ),
                e.message.clone().unwrap_or_default().replace('\n', " "),
            ]);
        }
        let mut out = table(&rows);
        if events.len() > limit {
            let _ = write!(out, "\n({} older events not shown)", events.len() - limit);
        }
        Ok(out)
    }

    async fn logs(&self, ns: &str, action: &Action) -> Result<String, RunError> {
        let deployment = action.arg("deployment").unwrap_or_default();
        let selector = self.deployment_selector(ns, deployment).await?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pods = api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items;
        if pods.is_empty() {
            return Ok(format!("{deployment} has no pods in {ns}."));
        }
        let lines = action
            .arg("lines")
            .and_then(|l| l.parse().ok())
            .unwrap_or(DEFAULT_LOG_LINES);
        let mut out = String::new();
        for pod in pods.iter().take(MAX_LOG_PODS) {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let params = LogParams {
                tail_lines: Some(lines),
                container: action.arg("container").map(String::from),
                ..LogParams::default()
            };
            let _ = writeln!(out, "==> {name} <==");
            match api.logs(&name, &params).await {
                Ok(text) if text.trim().is_empty() => out.push_str("(no log lines)\n"),
                Ok(text) => {
                    out.push_str(text.trim_end());
                    out.push('\n');
                }
                Err(error) => {
                    let _ = writeln!(out, "(cannot read: {})", RunError::from(error));
                }
            }
        }
        if pods.len() > MAX_LOG_PODS {
            let _ = writeln!(out, "({} more pods not shown)", pods.len() - MAX_LOG_PODS);
        }
        Ok(out.trim_end().to_string())
    }

    async fn top(&self, ns: &str, action: &Action) -> Result<String, RunError> {
        let nodes = action.arg("of") == Some("nodes");
        let resource = ApiResource {
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            api_version: "metrics.k8s.io/v1beta1".into(),
            kind: if nodes { "NodeMetrics" } else { "PodMetrics" }.into(),
            plural: if nodes { "nodes" } else { "pods" }.into(),
        };
        let api: Api<DynamicObject> = if nodes {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), ns, &resource)
        };
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Ok("Resource usage is not available: this cluster has no metrics API (metrics.k8s.io; install metrics-server).".into());
            }
            Err(other) => return Err(other.into()),
        };
        let mut rows = vec![vec!["NAME".to_string(), "CPU".into(), "MEMORY".into()]];
        for item in &list.items {
            let name = item.metadata.name.clone().unwrap_or_default();
            let (cpu, memory) = if nodes {
                let usage = &item.data["usage"];
                (
                    usage["cpu"].as_str().unwrap_or("?").to_string(),
                    usage["memory"].as_str().unwrap_or("?").to_string(),
                )
            } else {
                let containers = item.data["containers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let cpu: Vec<String> = containers
                    .iter()
                    .map(|c| c["usage"]["cpu"].as_str().unwrap_or("?").to_string())
                    .collect();
                let memory: Vec<String> = containers
                    .iter()
                    .map(|c| c["usage"]["memory"].as_str().unwrap_or("?").to_string())
                    .collect();
                (cpu.join("+"), memory.join("+"))
            };
            rows.push(vec![name, cpu, memory]);
        }
        if rows.len() == 1 {
            return Ok(format!(
                "No {} metrics yet.",
                if nodes { "node" } else { "pod" }
            ));
        }
        Ok(table(&rows))
    }

    async fn rollout_status(&self, ns: &str, action: &Action) -> Result<String, RunError> {
        let name = action.arg("deployment").unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let d = api.get(name).await?;
        let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        let updated = status.updated_replicas.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let observed =
            status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        let verdict = if observed
            && updated == wanted
            && available == wanted
            && status.replicas.unwrap_or(0) == wanted
        {
            "successfully rolled out"
        } else {
            "rollout in progress"
        };
        Ok(format!(
            "deployment {name} in {ns}: {verdict}; {updated}/{wanted} updated, {ready} ready, {available} available"
        ))
    }

    async fn endpoints(&self, ns: &str, action: &Action) -> Result<String, RunError> {
        let name = action.arg("service").unwrap_or_default();
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let endpoints = api.get(name).await?;
        let mut ready = Vec::new();
        let mut not_ready = Vec::new();
        for subset in endpoints.subsets.unwrap_or_default() {
            let ports: Vec<String> = subset
                .ports
                .unwrap_or_default()
                .iter()
                .map(|p| p.port.to_string())
                .collect();
            let suffix = if ports.is_empty() {
                String::new()
            } else {
                format!(":{}", ports.join(","))
            };
            ready.extend(
                subset
                    .addresses
                    .unwrap_or_default()
                    .iter()
                    .map(|a| format!("{}{suffix}", a.ip)),
            );
            not_ready.extend(
                subset
                    .not_ready_addresses
                    .unwrap_or_default()
                    .iter()
                    .map(|a| format!("{}{suffix}", a.ip)),
            );
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        Ok(format!(
            "service {name} in {ns}: {} ready ({}); {} not ready ({})",
            ready.len(),
            list(&ready),
            not_ready.len(),
            list(&not_ready)
        ))
    }

    async fn nodes(&self) -> Result<String, RunError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let nodes = api.list(&ListParams::default()).await?;
        let mut rows = vec![vec!["NAME".to_string(), "STATUS".into()]];
        for node in &nodes.items {
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status == "True");
            rows.push(vec![
                node.metadata.name.clone().unwrap_or_default(),
                match ready {
                    Some(true) => "Ready",
                    Some(false) => "NotReady",
                    None => "Unknown",
                }
                .into(),
            ]);
        }
        if rows.len() == 1 {
            return Ok("No nodes.".into());
        }
        Ok(table(&rows))
    }

    async fn probe(&self, action: &Action) -> Result<String, RunError> {
        let target = action.arg("target").unwrap_or_default();
        let url = self
            .probes
            .get(target)
            .ok_or_else(|| RunError::Other(format!("no probe named {target}")))?;
        let timeout = action
            .arg("timeout")
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(std::time::Duration::from_secs(5));
        let started = std::time::Instant::now();
        match self.http.get(url.clone()).timeout(timeout).send().await {
            Ok(response) => {
                let status = response.status();
                let took = started.elapsed().as_millis();
                let verdict = if status.is_success() {
                    "healthy"
                } else {
                    "unhealthy"
                };
                Ok(format!("GET {url} → {status} in {took} ms: {verdict}"))
            }
            Err(error) if error.is_timeout() => Ok(format!(
                "GET {url} → no answer within {}: unhealthy",
                humantime::format_duration(timeout)
            )),
            Err(error) => Ok(format!(
                "GET {url} → {}: unhealthy",
                crate::core::text::first_line(&error.to_string(), 300)
            )),
        }
    }
}

/// k8s-openapi's timestamps are jiff's; warroom's clock is chrono's.
fn chrono_of(t: k8s_openapi::jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

fn restarted_at(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTARTED_AT)
        .cloned()
}

/// The API kind of a lowercase object kind as people type it (`replicaset` → `ReplicaSet`).
fn capitalise(kind: &str) -> String {
    const KINDS: [&str; 12] = [
        "Pod",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Node",
        "Service",
        "Endpoints",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
    ];
    if let Some(known) = KINDS.iter().find(|k| k.eq_ignore_ascii_case(kind)) {
        return known.to_string();
    }
    let mut chars = kind.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `5m`, `2h`, `3d` since `at`.
fn age(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(at) = at else { return "?".into() };
    let secs = (now - at).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// Columns padded to their widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i + 1 == row.len() {
                        cell.clone()
                    } else {
                        format!("{cell:<width$}", width = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pod's READY column as kubectl shows it: ready containers out of the pod's containers. A pod
/// not yet scheduled has no container statuses, and is 0 of its containers ready, not 0/0.
fn readiness(pod: &Pod) -> String {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let ready = statuses.iter().filter(|c| c.ready).count();
    let containers = pod
        .spec
        .as_ref()
        .map_or(statuses.len(), |spec| spec.containers.len());
    format!("{ready}/{containers}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_ages() {
        let rows = vec![
            vec!["NAME".to_string(), "AGE".to_string()],
            vec!["api-1".to_string(), "5m".to_string()],
        ];
        assert_eq!(table(&rows), "NAME   AGE\napi-1  5m");
        let now = Utc::now();
        assert_eq!(age(Some(now - chrono::Duration::minutes(5)), now), "5m");
        assert_eq!(age(Some(now - chrono::Duration::hours(30)), now), "30h");
        assert_eq!(age(None, now), "?");
        assert_eq!(capitalise("replicaset"), "ReplicaSet");
        assert_eq!(capitalise("pod"), "Pod");
    }

    /// As a real API server answers for a pod not yet scheduled (no container statuses), and
    /// for one running with one of its two containers ready.
    #[test]
    fn readiness_counts_the_pods_containers() {
        let pending: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "api-1" },
            "spec": { "containers": [{ "name": "api", "image": "api:1" }] },
            "status": { "phase": "Pending", "qosClass": "BestEffort" }
        }))
        .unwrap();
        assert_eq!(readiness(&pending), "0/1");
        let running: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "api-2" },
            "spec": { "containers": [
                { "name": "api", "image": "api:1" },
                { "name": "proxy", "image": "proxy:1" }
            ] },
            "status": { "phase": "Running", "containerStatuses": [
                { "name": "api", "image": "api:1", "imageID": "", "ready": true, "restartCount": 0 },
                { "name": "proxy", "image": "proxy:1", "imageID": "", "ready": false, "restartCount": 2 }
            ] }
        }))
        .unwrap();
        assert_eq!(readiness(&running), "1/2");
    }
}
