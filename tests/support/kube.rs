//! A fake Kubernetes API server over plain HTTP, for warroom's Kubernetes runbook tests.
//!
//! It serves the paths kube-rs requests (`/api/v1/...`, `/apis/{group}/{version}/...`) for
//! the resources warroom reads and writes: pods (list, get, delete, logs), events (core v1
//! and events.k8s.io/v1), nodes, endpoints (and endpoint slices), namespaces, deployments
//! (list, get, patch) with their `scale` subresource, and metrics.k8s.io pod and node
//! metrics, plus legacy discovery (`/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/{group}/{version}`). Answers have the shapes the real API server sends (lists with
//! `apiVersion`/`kind`/`metadata.resourceVersion`/`items`, items without `apiVersion`/`kind`,
//! errors as `Status` objects) so k8s-openapi's types decode them.
//!
//! Semantics kept: label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
//! `k notin (a,b)`) and field selectors (`a.b=v`, `a.b!=v`, on the object's JSON; for
//! events.k8s.io `regarding.*` and `note` too) on every list; `limit`/`continue` paging;
//! a global `resourceVersion` bumped by every write; `metadata.generation` bumped by spec
//! changes; optimistic concurrency (a patch carrying a stale `metadata.resourceVersion`
//! gets 409); `dryRun=All` (query string, or `{"dryRun":["All"]}` in a delete body)
//! answering the would-be object without changing anything. Merge, strategic merge
//! (lists of named objects merged by `name`), JSON patch and apply patch (JSON body, needs
//! `fieldManager`) are understood.
//!
//! Deployments are reconciled at once, as if their controllers were instantaneous: their
//! pods (`{deployment}-{pod-template-hash}-{5 chars}`, Running and Ready, owned through a
//! ReplicaSet `{deployment}-{pod-template-hash}`) are created or removed (newest first) to
//! match `spec.replicas`; a change to `spec.template` (a rollout restart) replaces them all
//! with pods under a new hash; deleting one of them creates a replacement.
//!
//! Secrets are never served: every request for them answers 403 Forbidden (and is recorded).

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The pod template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Who the fake says is asking, in Forbidden messages.
pub const USER: &str = "system:serviceaccount:warroom:warroom";
/// The version `/version` reports.
pub const GIT_VERSION: &str = "v1.33.1";

/// One request as received (faulted and refused ones included).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string, as sent (kube-rs starts it with `&`, and percent-encodes
    /// `=` and `,` in selectors); see [`Request::param`].
    pub query: String,
    /// The body parsed as JSON; a non-JSON body as a string; `Null` when empty.
    pub body: Value,
    /// The `Content-Type` header ("" when absent).
    pub content_type: String,
}

impl Request {
    /// A query parameter, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What the next matching request gets instead of its answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 403, reason `Forbidden` (RBAC-style message).
    Forbidden,
    /// 404, reason `NotFound`.
    NotFound,
    /// 409, reason `Conflict` ("the object has been modified").
    Conflict,
    /// 500, reason `InternalError`.
    ServerError,
    /// No answer until the fake is dropped (then 500).
    Hang,
}

struct FaultRule {
    method: String,
    path_contains: String,
    fault: Fault,
}

struct DeploymentState {
    namespace: String,
    name: String,
    uid: String,
    created: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: Value,
    generation: i64,
    resource_version: u64,
    revision: u64,
}

impl DeploymentState {
    fn replicas(&self) -> i64 {
        self.spec["replicas"].as_i64().unwrap_or(1)
    }

    fn match_labels(&self) -> BTreeMap<String, String> {
        string_map(&self.spec["selector"]["matchLabels"])
    }
}

struct Owner {
    deployment: String,
    replica_set: String,
    hash: String,
}

struct PodState {
    namespace: String,
    name: String,
    uid: String,
    created: String,
    labels: BTreeMap<String, String>,
    phase: String,
    ready: bool,
    restarts: i32,
    containers: Vec<String>,
    images: Vec<String>,
    node: String,
    ip: String,
    owner: Option<Owner>,
    resource_version: u64,
    seq: u64,
}

struct EventState {
    namespace: String,
    name: String,
    uid: String,
    kind: String,
    object_name: String,
    reason: String,
    message: String,
    event_type: String,
    time: DateTime<Utc>,
    resource_version: u64,
}

struct NodeState {
    name: String,
    uid: String,
    created: String,
    ready: bool,
    ip: String,
    resource_version: u64,
}

struct EndpointsState {
    namespace: String,
    service: String,
    uid: String,
    created: String,
    ready: Vec<String>,
    not_ready: Vec<String>,
    resource_version: u64,
}

#[derive(Default)]
struct KubeState {
    requests: Vec<Request>,
    faults: Vec<FaultRule>,
    dry_runs: usize,
    deployments: BTreeMap<(String, String), DeploymentState>,
    pods: BTreeMap<(String, String), PodState>,
    logs: HashMap<(String, String, Option<String>), Vec<String>>,
    events: BTreeMap<(String, String), EventState>,
    nodes: BTreeMap<String, NodeState>,
    pod_metrics: BTreeMap<(String, String), (String, String)>,
    node_metrics: BTreeMap<String, (String, String)>,
    metrics_disabled: bool,
    endpoints: BTreeMap<(String, String), EndpointsState>,
    /// The last resourceVersion handed out.
    resource_version: u64,
    /// For uids, names, IPs.
    seq: u64,
    /// host:port, for `/api`.
    address: String,
}

pub struct FakeKube {
    pub url: String,
    state: Arc<Mutex<KubeState>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        // Hung requests answer (500) and end, so their connections close.
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<KubeState>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

fn lock(state: &Mutex<KubeState>) -> MutexGuard<'_, KubeState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeKube {
    pub async fn start() -> FakeKube {
        let state = Arc::new(Mutex::new(KubeState {
            resource_version: 1000,
            ..KubeState::default()
        }));
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let app = Router::new().fallback(handle).with_state(Shared {
            state: state.clone(),
            shutdown: shutdown_rx,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        lock(&state).address = address.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeKube {
            url: format!("http://{address}"),
            state,
            shutdown,
            task,
        }
    }

    fn lock(&self) -> MutexGuard<'_, KubeState> {
        lock(&self.state)
    }

    /// A kube-rs client for the fake, built as warroom builds it
    /// (`Client::try_from(Config::new(url))`: default namespace `default`, retries of
    /// 429/503/504, no read timeout).
    pub fn client(&self) -> kube::Client {
        // Both of rustls's providers are compiled in (reqwest brings one), so kube-rs cannot
        // pick one by itself; warroom's own client setup must do the same.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let config = kube::Config::new(self.url.parse().expect("the fake's URL"));
        kube::Client::try_from(config).expect("a kube client for the fake")
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// How many write requests (POST, PUT, PATCH, DELETE) carried `dryRun=All`.
    pub fn dry_runs(&self) -> usize {
        self.lock().dry_runs
    }

    /// The next request with this method (case-insensitive; `*` for any) whose path contains
    /// `path_contains` gets `fault`. Rules queue up; each is used once.
    pub fn fail_next(&self, method: &str, path_contains: &str, fault: Fault) {
        self.lock().faults.push(FaultRule {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            fault,
        });
    }

    /// A Deployment with `replicas` Running, Ready pods. `labels` are its labels, its
    /// selector's `matchLabels` and its pod template's labels (`app={name}` when empty);
    /// its pod template has one container, named after it.
    pub fn add_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
        labels: &[(&str, &str)],
    ) {
        let mut state = self.lock();
        let mut labels = pairs(labels);
        if labels.is_empty() {
            labels.insert("app".into(), name.into());
        }
        let uid = state.next_uid();
        let resource_version = state.next_rv();
        let spec = json!({
            "replicas": replicas,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "containers": [{
                        "name": name,
                        "image": format!("registry.example.com/{name}:1.0.0"),
                        "imagePullPolicy": "IfNotPresent",
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" },
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        });
        state.deployments.insert(
            (namespace.into(), name.into()),
            DeploymentState {
                namespace: namespace.into(),
                name: name.into(),
                uid,
                created: now(),
                labels,
                annotations: BTreeMap::new(),
                spec,
                generation: 1,
                resource_version,
                revision: 1,
            },
        );
        state.reconcile(namespace, name);
    }

    /// `spec.replicas` of a deployment.
    pub fn deployment_replicas(&self, namespace: &str, name: &str) -> Option<i32> {
        self.lock()
            .deployments
            .get(&(namespace.into(), name.into()))
            .map(|d| d.replicas() as i32)
    }

    /// `spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]`.
    pub fn restarted_at(&self, namespace: &str, name: &str) -> Option<String> {
        self.lock()
            .deployments
            .get(&(namespace.into(), name.into()))
            .and_then(|d| d.spec["template"]["metadata"]["annotations"][RESTARTED_AT].as_str())
            .map(String::from)
    }

    /// `metadata.generation` of a deployment.
    pub fn deployment_generation(&self, namespace: &str, name: &str) -> Option<i64> {
        self.lock()
            .deployments
            .get(&(namespace.into(), name.into()))
            .map(|d| d.generation)
    }

    /// Someone else (an HPA, a colleague) scaled the deployment: spec, generation and
    /// resourceVersion change, pods follow. Not recorded as a request.
    pub fn set_replicas_behind_our_back(&self, namespace: &str, name: &str, replicas: i32) {
        let mut state = self.lock();
        let rv = state.next_rv();
        let Some(d) = state.deployments.get_mut(&(namespace.into(), name.into())) else {
            panic!("no deployment {namespace}/{name}");
        };
        d.spec["replicas"] = json!(replicas);
        d.generation += 1;
        d.resource_version = rv;
        state.reconcile(namespace, name);
    }

    /// A pod of no controller (replacing any of the same name). `containers` empty means
    /// one container, `app`. Phase is `Pending`, `Running`, `Succeeded`, `Failed` or
    /// `Unknown`; `restarts` are the first container's.
    #[allow(clippy::too_many_arguments)]
    pub fn add_pod(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        phase: &str,
        ready: bool,
        restarts: i32,
        containers: &[&str],
    ) {
        let mut state = self.lock();
        let containers: Vec<String> = if containers.is_empty() {
            vec!["app".into()]
        } else {
            containers.iter().map(|c| c.to_string()).collect()
        };
        let images = containers
            .iter()
            .map(|c| format!("registry.example.com/{c}:1.0.0"))
            .collect();
        state.insert_pod(namespace, name, pairs(labels), containers, images, None);
        let pod = state
            .pods
            .get_mut(&(namespace.into(), name.into()))
            .unwrap();
        pod.phase = phase.into();
        pod.ready = ready;
        pod.restarts = restarts;
    }

    /// Names of the pods in a namespace, sorted.
    pub fn pods(&self, namespace: &str) -> Vec<String> {
        self.lock()
            .pods
            .values()
            .filter(|p| p.namespace == namespace)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Log lines of a pod's container (`None`: whichever container is asked for).
    pub fn set_logs(&self, namespace: &str, pod: &str, container: Option<&str>, lines: &[&str]) {
        self.lock().logs.insert(
            (namespace.into(), pod.into(), container.map(String::from)),
            lines.iter().map(|l| l.to_string()).collect(),
        );
    }

    /// A core v1 Event about an object (`Pod`, `Deployment`, `ReplicaSet`, `Node`, ...),
    /// last seen `minutes_ago`; `event_type` is `Normal` or `Warning`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_event(
        &self,
        namespace: &str,
        object_kind: &str,
        object_name: &str,
        reason: &str,
        message: &str,
        event_type: &str,
        minutes_ago: i64,
    ) {
        let mut state = self.lock();
        let uid = state.next_uid();
        let resource_version = state.next_rv();
        let time = Utc::now() - chrono::Duration::minutes(minutes_ago);
        let seq = state.next_seq();
        // As the event recorder names them: object name, then a hex timestamp.
        let name = format!(
            "{object_name}.{:016x}",
            (time.timestamp_nanos_opt().unwrap_or(0) as u64).wrapping_add(seq)
        );
        state.events.insert(
            (namespace.into(), name.clone()),
            EventState {
                namespace: namespace.into(),
                name,
                uid,
                kind: object_kind.into(),
                object_name: object_name.into(),
                reason: reason.into(),
                message: message.into(),
                event_type: event_type.into(),
                time,
                resource_version,
            },
        );
    }

    /// A node whose `Ready` condition is `True` or `False`.
    pub fn add_node(&self, name: &str, ready: bool) {
        let mut state = self.lock();
        let uid = state.next_uid();
        let resource_version = state.next_rv();
        let ip = format!("10.0.0.{}", state.nodes.len() + 10);
        state.nodes.insert(
            name.into(),
            NodeState {
                name: name.into(),
                uid,
                created: now(),
                ready,
                ip,
                resource_version,
            },
        );
    }

    /// What metrics-server reports for a pod (all on its first container).
    pub fn set_pod_metrics(&self, namespace: &str, pod: &str, cpu: &str, memory: &str) {
        self.lock()
            .pod_metrics
            .insert((namespace.into(), pod.into()), (cpu.into(), memory.into()));
    }

    /// What metrics-server reports for a node.
    pub fn set_node_metrics(&self, node: &str, cpu: &str, memory: &str) {
        self.lock()
            .node_metrics
            .insert(node.into(), (cpu.into(), memory.into()));
    }

    /// No metrics-server: everything under `/apis/metrics.k8s.io` answers 404, and `/apis`
    /// does not list the group.
    pub fn disable_metrics(&self) {
        self.lock().metrics_disabled = true;
    }

    /// The Endpoints of a service (and its EndpointSlice). An address that is not an IP is
    /// taken as a pod's name: its IP, with a `targetRef` to it.
    pub fn add_service_endpoints(
        &self,
        namespace: &str,
        service: &str,
        ready_addresses: &[&str],
        not_ready: &[&str],
    ) {
        let mut state = self.lock();
        let uid = state.next_uid();
        let resource_version = state.next_rv();
        state.endpoints.insert(
            (namespace.into(), service.into()),
            EndpointsState {
                namespace: namespace.into(),
                service: service.into(),
                uid,
                created: now(),
                ready: ready_addresses.iter().map(|a| a.to_string()).collect(),
                not_ready: not_ready.iter().map(|a| a.to_string()).collect(),
                resource_version,
            },
        );
    }
}

// ---------------------------------------------------------------------------------------
// State

impl KubeState {
    fn next_rv(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn next_uid(&mut self) -> String {
        let seq = self.next_seq();
        format!("6b1f0c3e-8d2a-4f5b-9c7e-{seq:012x}")
    }

    fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|rule| {
            (rule.method == "*" || rule.method.eq_ignore_ascii_case(method))
                && path.contains(&rule.path_contains)
        })?;
        Some(self.faults.remove(i).fault)
    }

    fn insert_pod(
        &mut self,
        namespace: &str,
        name: &str,
        labels: BTreeMap<String, String>,
        containers: Vec<String>,
        images: Vec<String>,
        owner: Option<Owner>,
    ) {
        let seq = self.next_seq();
        let uid = self.next_uid();
        let resource_version = self.next_rv();
        let node = if self.nodes.is_empty() {
            "node-1".to_string()
        } else {
            let names: Vec<&String> = self.nodes.keys().collect();
            names[seq as usize % names.len()].clone()
        };
        self.pods.insert(
            (namespace.into(), name.into()),
            PodState {
                namespace: namespace.into(),
                name: name.into(),
                uid,
                created: now(),
                labels,
                phase: "Running".into(),
                ready: true,
                restarts: 0,
                containers,
                images,
                node,
                ip: format!("10.244.{}.{}", (seq / 250) % 250, seq % 250 + 1),
                owner,
                resource_version,
                seq,
            },
        );
    }

    fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<PodState> {
        self.pod_metrics
            .remove(&(namespace.to_string(), name.to_string()));
        self.pods.remove(&(namespace.to_string(), name.to_string()))
    }

    /// What the deployment and replica set controllers would do, at once.
    fn reconcile(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let Some(d) = self.deployments.get(&key) else {
            return;
        };
        let hash = template_hash(&d.spec["template"]);
        let replicas = d.replicas().max(0) as usize;
        let mut labels = string_map(&d.spec["template"]["metadata"]["labels"]);
        labels.insert("pod-template-hash".into(), hash.clone());
        let (containers, images): (Vec<String>, Vec<String>) =
            d.spec["template"]["spec"]["containers"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            (
                                c["name"].as_str().unwrap_or("app").to_string(),
                                c["image"].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .unzip()
                })
                .unwrap_or_default();
        let owned = |p: &PodState| {
            p.namespace == namespace && p.owner.as_ref().is_some_and(|o| o.deployment == name)
        };
        let stale: Vec<String> = self
            .pods
            .values()
            .filter(|p| owned(p) && p.owner.as_ref().is_some_and(|o| o.hash != hash))
            .map(|p| p.name.clone())
            .collect();
        let mut changed = !stale.is_empty();
        for pod in stale {
            self.remove_pod(namespace, &pod);
        }
        let mut current: Vec<(u64, String)> = self
            .pods
            .values()
            .filter(|p| owned(p))
            .map(|p| (p.seq, p.name.clone()))
            .collect();
        current.sort();
        while current.len() > replicas {
            let (_, pod) = current.pop().unwrap();
            self.remove_pod(namespace, &pod);
            changed = true;
        }
        while current.len() < replicas {
            let pod = loop {
                let seq = self.next_seq();
                let candidate = format!(
                    "{name}-{hash}-{}",
                    safe_encode(fnv(&format!("{namespace}/{name}/{seq}")), 5)
                );
                if !self
                    .pods
                    .contains_key(&(namespace.to_string(), candidate.clone()))
                {
                    break candidate;
                }
            };
            self.insert_pod(
                namespace,
                &pod,
                labels.clone(),
                containers.clone(),
                images.clone(),
                Some(Owner {
                    deployment: name.into(),
                    replica_set: format!("{name}-{hash}"),
                    hash: hash.clone(),
                }),
            );
            current.push((u64::MAX, pod));
            changed = true;
        }
        if changed {
            // The controllers write the status.
            let rv = self.next_rv();
            self.deployments.get_mut(&key).unwrap().resource_version = rv;
        }
    }

    // -- rendering ----------------------------------------------------------------------

    fn deployment_json(&self, d: &DeploymentState) -> Value {
        let hash = template_hash(&d.spec["template"]);
        let owned: Vec<&PodState> = self
            .pods
            .values()
            .filter(|p| {
                p.namespace == d.namespace
                    && p.owner.as_ref().is_some_and(|o| o.deployment == d.name)
            })
            .collect();
        let replicas = owned.len() as i64;
        let updated = owned
            .iter()
            .filter(|p| p.owner.as_ref().is_some_and(|o| o.hash == hash))
            .count() as i64;
        let ready = owned.iter().filter(|p| pod_is_ready(p)).count() as i64;
        let mut status = Map::new();
        status.insert("observedGeneration".into(), json!(d.generation));
        // The API server leaves zero counts out.
        for (field, n) in [
            ("replicas", replicas),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
            ("unavailableReplicas", replicas - ready),
        ] {
            if n > 0 {
                status.insert(field.into(), json!(n));
            }
        }
        let available = ready >= d.replicas() - 1 || d.replicas() == 0;
        status.insert(
            "conditions".into(),
            json!([
                {
                    "type": "Available",
                    "status": if available { "True" } else { "False" },
                    "lastUpdateTime": d.created,
                    "lastTransitionTime": d.created,
                    "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": d.created,
                    "lastTransitionTime": d.created,
                    "reason": "NewReplicaSetAvailable",
                    "message": format!("ReplicaSet \"{}-{hash}\" has successfully progressed.", d.name),
                },
            ]),
        );
        let mut annotations = d.annotations.clone();
        annotations.insert(
            "deployment.kubernetes.io/revision".into(),
            d.revision.to_string(),
        );
        json!({
            "metadata": {
                "name": d.name,
                "namespace": d.namespace,
                "uid": d.uid,
                "resourceVersion": d.resource_version.to_string(),
                "generation": d.generation,
                "creationTimestamp": d.created,
                "labels": d.labels,
                "annotations": annotations,
            },
            "spec": d.spec,
            "status": status,
        })
    }

    fn scale_json(&self, d: &DeploymentState, spec_replicas: i64) -> Value {
        let actual = self
            .pods
            .values()
            .filter(|p| {
                p.namespace == d.namespace
                    && p.owner.as_ref().is_some_and(|o| o.deployment == d.name)
            })
            .count();
        let selector = d
            .match_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        // `spec.replicas` is `omitempty`; `status.replicas` is not.
        let spec = if spec_replicas == 0 {
            json!({})
        } else {
            json!({ "replicas": spec_replicas })
        };
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": d.name,
                "namespace": d.namespace,
                "uid": d.uid,
                "resourceVersion": d.resource_version.to_string(),
                "creationTimestamp": d.created,
            },
            "spec": spec,
            "status": { "replicas": actual, "selector": selector },
        })
    }

    fn pod_json(&self, p: &PodState) -> Value {
        let running = p.phase == "Running";
        let ready = pod_is_ready(p);
        let statuses: Vec<Value> = p
            .containers
            .iter()
            .zip(&p.images)
            .enumerate()
            .map(|(i, (name, image))| {
                let restarts = if i == 0 { p.restarts } else { 0 };
                let mut s = json!({
                    "name": name,
                    "image": image,
                    "imageID": format!("{image}@sha256:{:064x}", fnv(image) as u128),
                    "ready": ready,
                    "restartCount": restarts,
                    "started": running,
                });
                let (state, last) = match p.phase.as_str() {
                    "Pending" => (
                        json!({ "waiting": { "reason": "ContainerCreating" } }),
                        json!({}),
                    ),
                    "Running" if !ready && restarts > 0 => (
                        json!({ "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": format!("back-off 5m0s restarting failed container={name} pod={}_{}({})", p.name, p.namespace, p.uid),
                        } }),
                        json!({ "terminated": {
                            "exitCode": 1, "reason": "Error",
                            "startedAt": p.created, "finishedAt": p.created,
                        } }),
                    ),
                    "Running" => (
                        json!({ "running": { "startedAt": p.created } }),
                        if restarts > 0 {
                            json!({ "terminated": {
                                "exitCode": 137, "reason": "OOMKilled",
                                "startedAt": p.created, "finishedAt": p.created,
                            } })
                        } else {
                            json!({})
                        },
                    ),
                    "Succeeded" => (
                        json!({ "terminated": {
                            "exitCode": 0, "reason": "Completed",
                            "startedAt": p.created, "finishedAt": p.created,
                        } }),
                        json!({}),
                    ),
                    _ => (
                        json!({ "terminated": {
                            "exitCode": 1, "reason": "Error",
                            "startedAt": p.created, "finishedAt": p.created,
                        } }),
                        json!({}),
                    ),
                };
                s["state"] = state;
                s["lastState"] = last;
                s
            })
            .collect();
        let condition = |kind: &str, ok: bool| {
            json!({
                "type": kind,
                "status": if ok { "True" } else { "False" },
                "lastProbeTime": null,
                "lastTransitionTime": p.created,
            })
        };
        let scheduled = p.phase != "Pending" || !p.node.is_empty();
        let mut status = json!({
            "phase": p.phase,
            "conditions": [
                condition("PodReadyToStartContainers", p.phase != "Pending"),
                condition("Initialized", true),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", scheduled),
            ],
            "hostIP": "10.0.0.10",
            "startTime": p.created,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        });
        if p.phase != "Pending" {
            status["podIP"] = json!(p.ip);
            status["podIPs"] = json!([{ "ip": p.ip }]);
        }
        let mut metadata = json!({
            "name": p.name,
            "namespace": p.namespace,
            "uid": p.uid,
            "resourceVersion": p.resource_version.to_string(),
            "creationTimestamp": p.created,
            "labels": p.labels,
        });
        if let Some(owner) = &p.owner {
            metadata["generateName"] = json!(format!("{}-", owner.replica_set));
            metadata["ownerReferences"] = json!([{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner.replica_set,
                "uid": format!("6b1f0c3e-8d2a-4f5b-9c7e-{}", &format!("{:016x}", fnv(&owner.replica_set))[..12]),
                "controller": true,
                "blockOwnerDeletion": true,
            }]);
        }
        let containers: Vec<Value> = p
            .containers
            .iter()
            .zip(&p.images)
            .map(|(name, image)| json!({ "name": name, "image": image, "imagePullPolicy": "IfNotPresent", "resources": {} }))
            .collect();
        json!({
            "metadata": metadata,
            "spec": {
                "containers": containers,
                "nodeName": p.node,
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default",
                "schedulerName": "default-scheduler",
            },
            "status": status,
        })
    }

    fn event_uid_of(&self, e: &EventState) -> Option<String> {
        let key = (e.namespace.clone(), e.object_name.clone());
        match e.kind.as_str() {
            "Pod" => self.pods.get(&key).map(|p| p.uid.clone()),
            "Deployment" => self.deployments.get(&key).map(|d| d.uid.clone()),
            "Node" => self.nodes.get(&e.object_name).map(|n| n.uid.clone()),
            _ => None,
        }
    }

    fn event_json(&self, e: &EventState) -> Value {
        let (api_version, component) = event_source(&e.kind);
        let mut involved = json!({
            "kind": e.kind,
            "name": e.object_name,
            "apiVersion": api_version,
        });
        if e.kind != "Node" && e.kind != "Namespace" {
            involved["namespace"] = json!(e.namespace);
        }
        if let Some(uid) = self.event_uid_of(e) {
            involved["uid"] = json!(uid);
        }
        let time = e.time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        json!({
            "metadata": {
                "name": e.name,
                "namespace": e.namespace,
                "uid": e.uid,
                "resourceVersion": e.resource_version.to_string(),
                "creationTimestamp": time,
            },
            "involvedObject": involved,
            "reason": e.reason,
            "message": e.message,
            "source": { "component": component },
            "firstTimestamp": time,
            "lastTimestamp": time,
            "count": 1,
            "type": e.event_type,
            "eventTime": e.time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "reportingComponent": component,
            "reportingInstance": "",
        })
    }

    /// The events.k8s.io/v1 form of a core Event.
    fn event_v1_json(core: &Value) -> Value {
        json!({
            "metadata": core["metadata"],
            "eventTime": core["eventTime"],
            "reportingController": core["reportingComponent"],
            "reportingInstance": core["reportingInstance"],
            "action": core["reason"],
            "reason": core["reason"],
            "regarding": core["involvedObject"],
            "note": core["message"],
            "type": core["type"],
            "deprecatedSource": core["source"],
            "deprecatedFirstTimestamp": core["firstTimestamp"],
            "deprecatedLastTimestamp": core["lastTimestamp"],
            "deprecatedCount": core["count"],
        })
    }

    fn node_json(&self, n: &NodeState) -> Value {
        let condition = |kind: &str, status: bool, reason: &str, message: &str| {
            json!({
                "type": kind,
                "status": if status { "True" } else { "False" },
                "lastHeartbeatTime": now(),
                "lastTransitionTime": n.created,
                "reason": reason,
                "message": message,
            })
        };
        let ready = if n.ready {
            condition(
                "Ready",
                true,
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            json!({
                "type": "Ready",
                "status": "False",
                "lastHeartbeatTime": n.created,
                "lastTransitionTime": n.created,
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
            })
        };
        let mut spec = json!({ "podCIDR": "10.244.0.0/24" });
        if !n.ready {
            spec["taints"] = json!([
                { "key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": n.created },
                { "key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": n.created },
            ]);
        }
        let capacity = json!({ "cpu": "4", "memory": "16374584Ki", "pods": "110", "ephemeral-storage": "102626232Ki" });
        json!({
            "metadata": {
                "name": n.name,
                "uid": n.uid,
                "resourceVersion": n.resource_version.to_string(),
                "creationTimestamp": n.created,
                "labels": {
                    "kubernetes.io/hostname": n.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                },
            },
            "spec": spec,
            "status": {
                "conditions": [
                    condition("MemoryPressure", false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ready,
                ],
                "addresses": [
                    { "type": "InternalIP", "address": n.ip },
                    { "type": "Hostname", "address": n.name },
                ],
                "capacity": capacity,
                "allocatable": capacity,
                "nodeInfo": {
                    "machineID": format!("{:032x}", fnv(&n.name) as u128),
                    "systemUUID": n.uid,
                    "bootID": n.uid,
                    "kernelVersion": "6.8.0-1015-aws",
                    "osImage": "Ubuntu 24.04.1 LTS",
                    "containerRuntimeVersion": "containerd://1.7.24",
                    "kubeletVersion": GIT_VERSION,
                    "kubeProxyVersion": GIT_VERSION,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        })
    }

    /// An address: an IP as is; otherwise a pod's name.
    fn endpoint_address(&self, namespace: &str, address: &str) -> Value {
        if address.parse::<std::net::IpAddr>().is_ok() {
            let mut a = json!({ "ip": address });
            if let Some(p) = self
                .pods
                .values()
                .find(|p| p.namespace == namespace && p.ip == address)
            {
                a["nodeName"] = json!(p.node);
                a["targetRef"] =
                    json!({ "kind": "Pod", "namespace": namespace, "name": p.name, "uid": p.uid });
            }
            return a;
        }
        match self.pods.get(&(namespace.to_string(), address.to_string())) {
            Some(p) => json!({
                "ip": p.ip,
                "nodeName": p.node,
                "targetRef": { "kind": "Pod", "namespace": namespace, "name": p.name, "uid": p.uid },
            }),
            None => json!({
                "ip": format!("10.244.250.{}", fnv(address) % 250 + 1),
                "targetRef": { "kind": "Pod", "namespace": namespace, "name": address },
            }),
        }
    }

    fn endpoints_json(&self, e: &EndpointsState) -> Value {
        let mut metadata = json!({
            "name": e.service,
            "namespace": e.namespace,
            "uid": e.uid,
            "resourceVersion": e.resource_version.to_string(),
            "creationTimestamp": e.created,
        });
        metadata["labels"] = json!({ "app": e.service });
        let mut out = json!({ "metadata": metadata });
        if !e.ready.is_empty() || !e.not_ready.is_empty() {
            let mut subset =
                json!({ "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }] });
            if !e.ready.is_empty() {
                subset["addresses"] = json!(
                    e.ready
                        .iter()
                        .map(|a| self.endpoint_address(&e.namespace, a))
                        .collect::<Vec<_>>()
                );
            }
            if !e.not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(
                    e.not_ready
                        .iter()
                        .map(|a| self.endpoint_address(&e.namespace, a))
                        .collect::<Vec<_>>()
                );
            }
            out["subsets"] = json!([subset]);
        }
        out
    }

    fn endpoint_slice_json(&self, e: &EndpointsState) -> Value {
        let endpoint = |address: &str, ready: bool| {
            let a = self.endpoint_address(&e.namespace, address);
            let mut ep = json!({
                "addresses": [a["ip"]],
                "conditions": { "ready": ready, "serving": ready, "terminating": false },
            });
            if !a["targetRef"].is_null() {
                ep["targetRef"] = a["targetRef"].clone();
            }
            if !a["nodeName"].is_null() {
                ep["nodeName"] = a["nodeName"].clone();
            }
            ep
        };
        let endpoints: Vec<Value> = e
            .ready
            .iter()
            .map(|a| endpoint(a, true))
            .chain(e.not_ready.iter().map(|a| endpoint(a, false)))
            .collect();
        json!({
            "metadata": {
                "name": format!("{}-{}", e.service, safe_encode(fnv(&e.service), 5)),
                "namespace": e.namespace,
                "uid": e.uid,
                "resourceVersion": e.resource_version.to_string(),
                "creationTimestamp": e.created,
                "generateName": format!("{}-", e.service),
                "labels": {
                    "kubernetes.io/service-name": e.service,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }],
        })
    }

    fn pod_metrics_json(&self, namespace: &str, pod: &str, cpu: &str, memory: &str) -> Value {
        let p = self.pods.get(&(namespace.to_string(), pod.to_string()));
        let containers: Vec<String> = p
            .map(|p| p.containers.clone())
            .unwrap_or_else(|| vec![pod.to_string()]);
        let labels = p.map(|p| json!(p.labels)).unwrap_or_else(|| json!({}));
        let containers: Vec<Value> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let usage = if i == 0 {
                    json!({ "cpu": cpu, "memory": memory })
                } else {
                    json!({ "cpu": "0", "memory": "0" })
                };
                json!({ "name": c, "usage": usage })
            })
            .collect();
        json!({
            "metadata": {
                "name": pod,
                "namespace": namespace,
                "creationTimestamp": now(),
                "labels": labels,
            },
            "timestamp": now(),
            "window": "30s",
            "containers": containers,
        })
    }

    fn node_metrics_json(&self, node: &str, cpu: &str, memory: &str) -> Value {
        json!({
            "metadata": {
                "name": node,
                "creationTimestamp": now(),
                "labels": self.nodes.get(node).map(|n| self.node_json(n)["metadata"]["labels"].clone()).unwrap_or_else(|| json!({})),
            },
            "timestamp": now(),
            "window": "20s",
            "usage": { "cpu": cpu, "memory": memory },
        })
    }

    fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = ["default", "kube-system", "kube-public", "kube-node-lease"]
            .iter()
            .map(|s| s.to_string())
            .chain(self.deployments.keys().map(|k| k.0.clone()))
            .chain(self.pods.keys().map(|k| k.0.clone()))
            .chain(self.events.keys().map(|k| k.0.clone()))
            .chain(self.endpoints.keys().map(|k| k.0.clone()))
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

fn pod_is_ready(p: &PodState) -> bool {
    p.phase == "Running" && p.ready
}

/// (involvedObject.apiVersion, source component) for a kind.
fn event_source(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Pod" | "Node" => ("v1", "kubelet"),
        "Service" | "Endpoints" => ("v1", "endpoint-controller"),
        "Deployment" => ("apps/v1", "deployment-controller"),
        "ReplicaSet" => ("apps/v1", "replicaset-controller"),
        "StatefulSet" => ("apps/v1", "statefulset-controller"),
        "DaemonSet" => ("apps/v1", "daemonset-controller"),
        "HorizontalPodAutoscaler" => ("autoscaling/v2", "horizontal-pod-autoscaler"),
        "Job" | "CronJob" => ("batch/v1", "job-controller"),
        _ => ("v1", "fake-controller"),
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn now() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn pairs(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Kubernetes' "safe" alphabet for generated names (no vowels, no confusable characters).
fn safe_encode(mut n: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Object keys sorted, so equal templates hash equal however they were built.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String(k.to_string()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn template_hash(template: &Value) -> String {
    safe_encode(fnv(&canonical(template)), 10)
}

// ---------------------------------------------------------------------------------------
// Selectors and lists

enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let rest = rest.trim();
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: found '{rest}', expected: '('"))?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    split_top_level(s)
        .into_iter()
        .map(|term| {
            if let Some(key) = term.strip_prefix('!') {
                return Ok(Requirement::NotExists(key.trim().to_string()));
            }
            if let Some((key, rest)) = term.split_once(" notin ") {
                return Ok(Requirement::NotIn(key.trim().into(), set(rest)?));
            }
            if let Some((key, rest)) = term.split_once(" in ") {
                return Ok(Requirement::In(key.trim().into(), set(rest)?));
            }
            if let Some((key, value)) = term.split_once("!=") {
                return Ok(Requirement::NotEquals(
                    key.trim().into(),
                    value.trim().into(),
                ));
            }
            if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                return Ok(Requirement::Equals(key.trim().into(), value.trim().into()));
            }
            if term.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
                return Err(format!("unable to parse requirement: {term}"));
            }
            Ok(Requirement::Exists(term))
        })
        .collect()
}

fn labels_match(requirements: &[Requirement], labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    requirements.iter().all(|r| match r {
        Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
        Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
        Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
        Requirement::Exists(k) => get(k).is_some(),
        Requirement::NotExists(k) => get(k).is_none(),
    })
}

/// `a.b=v`, `a.b==v`, `a.b!=v` terms: (path, value, equal).
fn parse_field_selector(s: &str) -> Result<Vec<(String, String, bool)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                Ok((k.trim().into(), v.trim().into(), false))
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Ok((k.trim().into(), v.trim().into(), true))
            } else {
                Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ))
            }
        })
        .collect()
}

fn field_value(object: &Value, path: &str) -> String {
    let mut v = object;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fields_match(terms: &[(String, String, bool)], object: &Value) -> bool {
    terms
        .iter()
        .all(|(path, value, equal)| (field_value(object, path) == *value) == *equal)
}

// ---------------------------------------------------------------------------------------
// Responses

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

fn status_response(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    json_response(StatusCode::from_u16(code).unwrap(), body)
}

fn no_such_path() -> Response {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn bad_request(message: &str) -> Response {
    status_response(400, "BadRequest", message, None)
}

/// What a request is about, parsed from its path.
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

impl Target {
    fn parse(path: &str) -> Option<Target> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, rest) = if rest.len() >= 3 && rest[0] == "namespaces" {
            (Some(rest[1].to_string()), &rest[2..])
        } else {
            (None, rest)
        };
        if rest.is_empty() || rest.len() > 3 {
            return None;
        }
        Some(Target {
            group: group.into(),
            version: version.into(),
            namespace,
            resource: rest[0].into(),
            name: rest.get(1).map(|s| s.to_string()),
            sub: rest.get(2).map(|s| s.to_string()),
        })
    }

    /// The same target, under another resource name (for messages).
    fn renamed(&self, resource: &str) -> Target {
        Target {
            group: self.group.clone(),
            version: self.version.clone(),
            namespace: self.namespace.clone(),
            resource: resource.into(),
            name: self.name.clone(),
            sub: self.sub.clone(),
        }
    }

    /// `pods`, `deployments.apps`.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self, name: &str) -> Value {
        let mut d = json!({ "name": name, "kind": self.resource });
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }

    fn not_found(&self, name: &str) -> Response {
        status_response(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", self.qualified()),
            Some(self.details(name)),
        )
    }

    fn forbidden(&self, method: &str, watch: bool) -> Response {
        let verb = match (method, &self.name) {
            ("GET", Some(_)) => "get",
            ("GET", None) if watch => "watch",
            ("GET", None) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", Some(_)) => "delete",
            ("DELETE", None) => "deletecollection",
            _ => "get",
        };
        let resource = match &self.sub {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        };
        let scope = match &self.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".into(),
        };
        let subject = match &self.name {
            Some(name) => format!("{} \"{name}\"", self.qualified()),
            None => self.qualified(),
        };
        status_response(
            403,
            "Forbidden",
            &format!(
                "{subject} is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
                self.group
            ),
            Some(self.details(self.name.as_deref().unwrap_or(""))),
        )
    }

    fn conflict(&self, name: &str) -> Response {
        status_response(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                self.qualified()
            ),
            Some(self.details(name)),
        )
    }

    /// 422 for one invalid field; `kind` as in `Deployment.apps`, `Scale.autoscaling`.
    fn invalid(&self, kind: &str, name: &str, field: &str, detail: &str) -> Response {
        let mut details = self.details(name);
        details["kind"] = json!(kind.split('.').next().unwrap_or(kind));
        details["causes"] =
            json!([{ "reason": "FieldValueInvalid", "message": detail, "field": field }]);
        status_response(
            422,
            "Invalid",
            &format!("{kind} \"{name}\" is invalid: {field}: {detail}"),
            Some(details),
        )
    }
}

/// A list answer: filtered, paged.
fn list_response(
    kind: &str,
    api_version: &str,
    resource_version: u64,
    items: Vec<Value>,
    params: &Params,
) -> Response {
    let mut items = items;
    if let Some(selector) = params.get("labelSelector") {
        match parse_label_selector(&selector) {
            Ok(requirements) => {
                items.retain(|item| labels_match(&requirements, &item["metadata"]["labels"]))
            }
            Err(e) => return bad_request(&e),
        }
    }
    if let Some(selector) = params.get("fieldSelector") {
        match parse_field_selector(&selector) {
            Ok(terms) => items.retain(|item| fields_match(&terms, item)),
            Err(e) => return bad_request(&e),
        }
    }
    page(kind, api_version, resource_version, items, params)
}

fn page(
    kind: &str,
    api_version: &str,
    resource_version: u64,
    items: Vec<Value>,
    params: &Params,
) -> Response {
    let offset: usize = params
        .get("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
        .min(items.len());
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let end = offset.saturating_add(limit).min(items.len());
    let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
    if end < items.len() {
        metadata["continue"] = json!(end.to_string());
        metadata["remainingItemCount"] = json!(items.len() - end);
    }
    ok(json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "items": items[offset..end],
    }))
}

// ---------------------------------------------------------------------------------------
// Patches

/// JSON merge patch (RFC 7386); `strategic` also merges lists of named objects by name
/// and skips `$` directives.
fn merge_patch(target: &mut Value, patch: &Value, strategic: bool) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if strategic && k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v, strategic);
                }
            }
        }
        Value::Array(items) if strategic && named_list(target) && named_list(patch) => {
            let t = target.as_array_mut().unwrap();
            for item in items {
                match t.iter().position(|x| x["name"] == item["name"]) {
                    Some(i) => merge_patch(&mut t[i], item, true),
                    None => t.push(item.clone()),
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn named_list(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|a| a.iter().all(|x| x["name"].is_string()))
}

fn pointer_tokens(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn json_patch_add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut tokens = pointer_tokens(path)?;
    let Some(last) = tokens.pop() else {
        *doc = value;
        return Ok(());
    };
    let parent = doc
        .pointer_mut(&parent_pointer(&tokens))
        .ok_or_else(|| format!("add operation does not apply: doc is missing path: {path:?}"))?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid index {last:?}"))?;
            if i > a.len() {
                return Err(format!("index {i} out of range"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!(
            "add operation does not apply: doc is missing path: {path:?}"
        )),
    }
}

fn json_patch_remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let mut tokens = pointer_tokens(path)?;
    let last = tokens.pop().ok_or("cannot remove the whole document")?;
    let missing = || format!("remove operation does not apply: doc is missing path: {path:?}");
    match doc
        .pointer_mut(&parent_pointer(&tokens))
        .ok_or_else(missing)?
    {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

fn parent_pointer(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// JSON patch (RFC 6902).
fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("missing path")?;
        match op["op"].as_str().unwrap_or("") {
            "add" => json_patch_add(doc, path, op["value"].clone())?,
            "remove" => {
                json_patch_remove(doc, path)?;
            }
            "replace" => {
                json_patch_remove(doc, path).map_err(|_| {
                    format!("replace operation does not apply: doc is missing key: {path}")
                })?;
                json_patch_add(doc, path, op["value"].clone())?;
            }
            "test" => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("missing from")?;
                let value = doc.pointer(from).cloned().ok_or("copy: missing from")?;
                json_patch_add(doc, path, value)?;
            }
            "move" => {
                let from = op["from"].as_str().ok_or("missing from")?;
                let value = json_patch_remove(doc, from)?;
                json_patch_add(doc, path, value)?;
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

/// The object `current` with the request's patch applied, or the refusal.
#[allow(clippy::result_large_err)]
fn apply_patch(current: &Value, request: &Incoming) -> Result<Value, Response> {
    let content_type = request
        .content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut doc = current.clone();
    match content_type.as_str() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            if !request.body.is_object() {
                return Err(bad_request(
                    "error decoding patch: the patch is not a JSON object",
                ));
            }
            merge_patch(
                &mut doc,
                &request.body,
                content_type == "application/strategic-merge-patch+json",
            );
        }
        "application/apply-patch+yaml" => {
            if request
                .params
                .get("fieldManager")
                .is_none_or(|f| f.is_empty())
            {
                return Err(status_response(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    None,
                ));
            }
            if !request.body.is_object() {
                return Err(bad_request(
                    "error decoding YAML: the body is not an object",
                ));
            }
            merge_patch(&mut doc, &request.body, true);
        }
        "application/json-patch+json" => {
            if let Err(e) = json_patch(&mut doc, &request.body) {
                return Err(status_response(422, "Invalid", &e, None));
            }
        }
        _ => {
            return Err(status_response(
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
                ),
                None,
            ));
        }
    }
    Ok(doc)
}

// ---------------------------------------------------------------------------------------
// Serving

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

struct Incoming {
    method: String,
    path: String,
    params: Params,
    content_type: String,
    body: Value,
}

impl Incoming {
    fn dry_run(&self) -> bool {
        self.params.get("dryRun").as_deref() == Some("All")
            || self.body["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"))
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri.query().unwrap_or("").to_string();
    let body_value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let incoming = Incoming {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        params: Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: body_value,
    };
    let fault = {
        let mut state = lock(&shared.state);
        state.requests.push(Request {
            method: incoming.method.clone(),
            path: incoming.path.clone(),
            query,
            body: incoming.body.clone(),
            content_type: incoming.content_type.clone(),
        });
        if matches!(
            incoming.method.as_str(),
            "POST" | "PUT" | "PATCH" | "DELETE"
        ) && incoming.dry_run()
        {
            state.dry_runs += 1;
        }
        state.take_fault(&incoming.method, &incoming.path)
    };
    if let Some(fault) = fault {
        return apply_fault(fault, &incoming, shared.shutdown.clone()).await;
    }
    let mut state = lock(&shared.state);
    serve(&mut state, &incoming)
}

async fn apply_fault(
    fault: Fault,
    incoming: &Incoming,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let target = Target::parse(&incoming.path).unwrap_or(Target {
        group: String::new(),
        version: "v1".into(),
        namespace: None,
        resource: incoming.path.trim_matches('/').to_string(),
        name: None,
        sub: None,
    });
    let name = target.name.clone().unwrap_or_default();
    match fault {
        Fault::Forbidden => {
            target.forbidden(&incoming.method, incoming.params.get("watch").is_some())
        }
        Fault::NotFound => target.not_found(&name),
        Fault::Conflict => target.conflict(&name),
        Fault::ServerError => status_response(
            500,
            "InternalError",
            "Internal error occurred: injected fault",
            Some(json!({ "causes": [{ "message": "injected fault" }] })),
        ),
        Fault::Hang => {
            let _ = shutdown.wait_for(|down| *down).await;
            // Not 503/504: kube-rs would retry those.
            status_response(500, "InternalError", "the fake API server shut down", None)
        }
    }
}

fn method_not_allowed() -> Response {
    status_response(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

fn serve(state: &mut KubeState, request: &Incoming) -> Response {
    if let Some(response) = discovery(state, request) {
        return response;
    }
    let Some(target) = Target::parse(&request.path) else {
        return no_such_path();
    };
    let method = request.method.as_str();
    let params = &request.params;
    if target.group.is_empty() && target.resource == "secrets" {
        return target.forbidden(method, params.get("watch").is_some());
    }
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return bad_request("the fake API server does not serve watches");
    }
    let ns = target.namespace.as_deref();
    let name = target.name.as_deref();
    let sub = target.sub.as_deref();
    let rv = state.resource_version;
    match (
        target.group.as_str(),
        target.version.as_str(),
        target.resource.as_str(),
    ) {
        ("", "v1", "pods") => match (method, name, sub) {
            ("GET", None, None) => {
                let items = state
                    .pods
                    .values()
                    .filter(|p| ns.is_none_or(|ns| p.namespace == ns))
                    .map(|p| state.pod_json(p))
                    .collect();
                list_response("PodList", "v1", rv, items, params)
            }
            ("GET", Some(name), None) if ns.is_some() => {
                match state.pods.get(&(ns.unwrap().into(), name.into())) {
                    Some(p) => ok(typed(state.pod_json(p), "v1", "Pod")),
                    None => target.not_found(name),
                }
            }
            ("DELETE", Some(_), None) if ns.is_some() => delete_pod(state, &target, request),
            ("GET", Some(name), Some("log")) if ns.is_some() => {
                pod_logs(state, &target, name, params)
            }
            (_, _, None | Some("log")) if name.is_none() || ns.is_some() => method_not_allowed(),
            _ => no_such_path(),
        },
        ("", "v1", "events") | ("events.k8s.io", "v1", "events") => {
            let v1 = target.group == "events.k8s.io";
            let (kind, api_version, item_kind) = if v1 {
                ("EventList", "events.k8s.io/v1", "Event")
            } else {
                ("EventList", "v1", "Event")
            };
            let render = |core: Value| {
                if v1 {
                    KubeState::event_v1_json(&core)
                } else {
                    core
                }
            };
            match (method, name, sub) {
                ("GET", None, None) => {
                    // Field selectors apply to the core form; events.k8s.io names map onto it.
                    let mut params = Params(params.0.clone());
                    if let Some((_, selector)) =
                        params.0.iter_mut().find(|(k, _)| k == "fieldSelector")
                    {
                        *selector = events_v1_field_selector(selector);
                    }
                    let mut items: Vec<Value> = state
                        .events
                        .values()
                        .filter(|e| ns.is_none_or(|ns| e.namespace == ns))
                        .map(|e| state.event_json(e))
                        .collect();
                    if let Some(selector) = params.get("fieldSelector") {
                        match parse_field_selector(&selector) {
                            Ok(terms) => items.retain(|item| fields_match(&terms, item)),
                            Err(e) => return bad_request(&e),
                        }
                        params.0.retain(|(k, _)| k != "fieldSelector");
                    }
                    let items = items.into_iter().map(render).collect();
                    list_response(kind, api_version, rv, items, &params)
                }
                ("GET", Some(name), None) if ns.is_some() => {
                    match state.events.get(&(ns.unwrap().into(), name.into())) {
                        Some(e) => ok(typed(render(state.event_json(e)), api_version, item_kind)),
                        None => target.not_found(name),
                    }
                }
                (_, _, None) => method_not_allowed(),
                _ => no_such_path(),
            }
        }
        ("", "v1", "nodes") if ns.is_none() => match (method, name, sub) {
            ("GET", None, None) => {
                let items = state.nodes.values().map(|n| state.node_json(n)).collect();
                list_response("NodeList", "v1", rv, items, params)
            }
            ("GET", Some(name), None) => match state.nodes.get(name) {
                Some(n) => ok(typed(state.node_json(n), "v1", "Node")),
                None => target.not_found(name),
            },
            (_, _, None) => method_not_allowed(),
            _ => no_such_path(),
        },
        ("", "v1", "namespaces") if ns.is_none() => match (method, name, sub) {
            ("GET", None, None) => {
                let items = state
                    .namespaces()
                    .iter()
                    .map(|n| namespace_json(n))
                    .collect();
                list_response("NamespaceList", "v1", rv, items, params)
            }
            ("GET", Some(name), None) => {
                if state.namespaces().iter().any(|n| n == name) {
                    ok(typed(namespace_json(name), "v1", "Namespace"))
                } else {
                    target.not_found(name)
                }
            }
            (_, _, None) => method_not_allowed(),
            _ => no_such_path(),
        },
        ("", "v1", "endpoints") => match (method, name, sub) {
            ("GET", None, None) => {
                let items = state
                    .endpoints
                    .values()
                    .filter(|e| ns.is_none_or(|ns| e.namespace == ns))
                    .map(|e| state.endpoints_json(e))
                    .collect();
                list_response("EndpointsList", "v1", rv, items, params)
            }
            ("GET", Some(name), None) if ns.is_some() => {
                match state.endpoints.get(&(ns.unwrap().into(), name.into())) {
                    Some(e) => ok(typed(state.endpoints_json(e), "v1", "Endpoints")),
                    None => target.not_found(name),
                }
            }
            (_, _, None) => method_not_allowed(),
            _ => no_such_path(),
        },
        ("discovery.k8s.io", "v1", "endpointslices") => match (method, name, sub) {
            ("GET", None, None) => {
                let items = state
                    .endpoints
                    .values()
                    .filter(|e| ns.is_none_or(|ns| e.namespace == ns))
                    .map(|e| state.endpoint_slice_json(e))
                    .collect();
                list_response(
                    "EndpointSliceList",
                    "discovery.k8s.io/v1",
                    rv,
                    items,
                    params,
                )
            }
            (_, _, None) => method_not_allowed(),
            _ => no_such_path(),
        },
        ("apps", "v1", "deployments") => match (method, name, sub) {
            ("GET", None, None) => {
                let items = state
                    .deployments
                    .values()
                    .filter(|d| ns.is_none_or(|ns| d.namespace == ns))
                    .map(|d| state.deployment_json(d))
                    .collect();
                list_response("DeploymentList", "apps/v1", rv, items, params)
            }
            ("GET", Some(name), None) if ns.is_some() => {
                match state.deployments.get(&(ns.unwrap().into(), name.into())) {
                    Some(d) => ok(typed(state.deployment_json(d), "apps/v1", "Deployment")),
                    None => target.not_found(name),
                }
            }
            ("GET", Some(name), Some("scale")) if ns.is_some() => {
                match state.deployments.get(&(ns.unwrap().into(), name.into())) {
                    Some(d) => ok(state.scale_json(d, d.replicas())),
                    None => target.not_found(name),
                }
            }
            ("PATCH", Some(_), None | Some("scale")) if ns.is_some() => {
                patch_deployment(state, &target, request)
            }
            (_, _, None | Some("scale")) => method_not_allowed(),
            _ => no_such_path(),
        },
        ("metrics.k8s.io", "v1beta1", "pods") => match (method, name, sub) {
            ("GET", None, None) => {
                let items = state
                    .pod_metrics
                    .iter()
                    .filter(|((pod_ns, _), _)| ns.is_none_or(|ns| pod_ns == ns))
                    .map(|((pod_ns, pod), (cpu, memory))| {
                        state.pod_metrics_json(pod_ns, pod, cpu, memory)
                    })
                    .collect();
                list_response(
                    "PodMetricsList",
                    "metrics.k8s.io/v1beta1",
                    rv,
                    items,
                    params,
                )
            }
            ("GET", Some(name), None) if ns.is_some() => {
                let ns = ns.unwrap();
                match state.pod_metrics.get(&(ns.into(), name.into())) {
                    Some((cpu, memory)) => ok(typed(
                        state.pod_metrics_json(ns, name, cpu, memory),
                        "metrics.k8s.io/v1beta1",
                        "PodMetrics",
                    )),
                    None => target.renamed("podmetrics").not_found(name),
                }
            }
            (_, _, None) => method_not_allowed(),
            _ => no_such_path(),
        },
        ("metrics.k8s.io", "v1beta1", "nodes") if ns.is_none() => match (method, name, sub) {
            ("GET", None, None) => {
                let items = state
                    .node_metrics
                    .iter()
                    .map(|(node, (cpu, memory))| state.node_metrics_json(node, cpu, memory))
                    .collect();
                list_response(
                    "NodeMetricsList",
                    "metrics.k8s.io/v1beta1",
                    rv,
                    items,
                    params,
                )
            }
            ("GET", Some(name), None) => match state.node_metrics.get(name) {
                Some((cpu, memory)) => ok(typed(
                    state.node_metrics_json(name, cpu, memory),
                    "metrics.k8s.io/v1beta1",
                    "NodeMetrics",
                )),
                None => target.renamed("nodemetrics").not_found(name),
            },
            (_, _, None) => method_not_allowed(),
            _ => no_such_path(),
        },
        _ => no_such_path(),
    }
}

/// An events.k8s.io/v1 field selector in terms of the core Event's fields.
fn events_v1_field_selector(selector: &str) -> String {
    selector
        .split(',')
        .map(|term| {
            let key_end = term.find(['=', '!']).unwrap_or(term.len());
            let (key, rest) = term.split_at(key_end);
            let key = key.trim();
            let key = if let Some(field) = key.strip_prefix("regarding.") {
                format!("involvedObject.{field}")
            } else if let Some(field) = key.strip_prefix("deprecatedSource.") {
                format!("source.{field}")
            } else {
                match key {
                    "note" => "message".to_string(),
                    "reportingController" => "reportingComponent".to_string(),
                    other => other.to_string(),
                }
            };
            format!("{key}{rest}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A single object carries its apiVersion and kind (list items do not).
fn typed(mut object: Value, api_version: &str, kind: &str) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(kind));
    out.insert("apiVersion".into(), json!(api_version));
    if let Value::Object(m) = &mut object {
        out.append(m);
    }
    Value::Object(out)
}

fn namespace_json(name: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "uid": format!("6b1f0c3e-8d2a-4f5b-9c7e-{}", &format!("{:016x}", fnv(name))[..12]),
            "resourceVersion": "1",
            "labels": { "kubernetes.io/metadata.name": name },
        },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Active" },
    })
}

fn delete_pod(state: &mut KubeState, target: &Target, request: &Incoming) -> Response {
    let ns = target.namespace.clone().unwrap();
    let name = target.name.clone().unwrap();
    let key = (ns.clone(), name.clone());
    let Some(p) = state.pods.get(&key) else {
        return target.not_found(&name);
    };
    let preconditions = &request.body["preconditions"];
    let uid_precondition = preconditions["uid"].as_str().filter(|uid| *uid != p.uid);
    if let Some(uid) = uid_precondition {
        return status_response(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on Pod \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                p.uid
            ),
            Some(target.details(&name)),
        );
    }
    if preconditions["resourceVersion"]
        .as_str()
        .is_some_and(|rv| rv != p.resource_version.to_string())
    {
        return target.conflict(&name);
    }
    let grace = request.body["gracePeriodSeconds"].as_i64().unwrap_or(30);
    let mut object = typed(state.pod_json(p), "v1", "Pod");
    object["metadata"]["deletionTimestamp"] = json!(now());
    object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    if request.dry_run() {
        return ok(object);
    }
    let rv = state.next_rv();
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    let removed = state.remove_pod(&ns, &name).unwrap();
    if let Some(owner) = removed.owner {
        // The ReplicaSet replaces it.
        state.reconcile(&ns, &owner.deployment);
    }
    ok(object)
}

fn pod_logs(state: &KubeState, target: &Target, name: &str, params: &Params) -> Response {
    let ns = target.namespace.clone().unwrap();
    let Some(p) = state.pods.get(&(ns.clone(), name.to_string())) else {
        return target.not_found(name);
    };
    let container = match params.get("container") {
        Some(c) if !c.is_empty() => {
            if !p.containers.contains(&c) {
                return bad_request(&format!("container {c} is not valid for pod {name}"));
            }
            c
        }
        _ if p.containers.len() == 1 => p.containers[0].clone(),
        _ => {
            return bad_request(&format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                p.containers.join(" ")
            ));
        }
    };
    if p.phase == "Pending" {
        return bad_request(&format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        ));
    }
    let lines = state
        .logs
        .get(&(ns.clone(), name.to_string(), Some(container)))
        .or_else(|| state.logs.get(&(ns, name.to_string(), None)))
        .cloned()
        .unwrap_or_default();
    let skip = match params.get("tailLines").and_then(|t| t.parse::<i64>().ok()) {
        Some(n) if n >= 0 => lines.len().saturating_sub(n as usize),
        _ => 0,
    };
    let mut text: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
    if let Some(limit) = params
        .get("limitBytes")
        .and_then(|l| l.parse::<usize>().ok())
    {
        let mut end = limit.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

fn patch_deployment(state: &mut KubeState, target: &Target, request: &Incoming) -> Response {
    let ns = target.namespace.clone().unwrap();
    let name = target.name.clone().unwrap();
    let key = (ns.clone(), name.clone());
    let scale = target.sub.as_deref() == Some("scale");
    let Some(d) = state.deployments.get(&key) else {
        return target.not_found(&name);
    };
    let current = if scale {
        state.scale_json(d, d.replicas())
    } else {
        typed(state.deployment_json(d), "apps/v1", "Deployment")
    };
    let patched = match apply_patch(&current, request) {
        Ok(patched) => patched,
        Err(response) => return response,
    };
    // Optimistic concurrency: a resourceVersion in the patch must be the current one.
    if patched["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
        return target.conflict(&name);
    }
    let kind = if scale {
        "Scale.autoscaling"
    } else {
        "Deployment.apps"
    };
    let replicas = &patched["spec"]["replicas"];
    let replicas = match replicas {
        Value::Null if scale => 0,
        // Defaulted, as the API server does.
        Value::Null => 1,
        v => match v.as_i64() {
            Some(n) if i32::try_from(n).is_ok() => n,
            _ => {
                return bad_request(&format!(
                    "json: cannot unmarshal {v} into Go struct field of type int32"
                ));
            }
        },
    };
    if replicas < 0 {
        return target.invalid(
            kind,
            &name,
            "spec.replicas",
            &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        );
    }
    let mut new_spec = d.spec.clone();
    let mut new_labels = d.labels.clone();
    let mut new_annotations = d.annotations.clone();
    if scale {
        new_spec["replicas"] = json!(replicas);
    } else {
        new_spec = patched["spec"].clone();
        new_spec["replicas"] = json!(replicas);
        if new_spec["selector"] != d.spec["selector"] {
            return target.invalid(
                kind,
                &name,
                "spec.selector",
                &format!(
                    "Invalid value: {}: field is immutable",
                    new_spec["selector"]
                ),
            );
        }
        let template_labels = &new_spec["template"]["metadata"]["labels"];
        let selector_ok = d
            .match_labels()
            .iter()
            .all(|(k, v)| template_labels[k].as_str() == Some(v));
        if !selector_ok {
            return target.invalid(
                kind,
                &name,
                "spec.template.metadata.labels",
                &format!(
                    "Invalid value: {template_labels}: `selector` does not match template `labels`"
                ),
            );
        }
        let annotations = &new_spec["template"]["metadata"]["annotations"];
        if !(annotations.is_null()
            || annotations
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string)))
        {
            return bad_request(
                "json: cannot unmarshal into Go struct field ObjectMeta.spec.template.metadata.annotations of type string",
            );
        }
        new_labels = string_map(&patched["metadata"]["labels"]);
        new_annotations = string_map(&patched["metadata"]["annotations"]);
        new_annotations.remove("deployment.kubernetes.io/revision");
    }
    let spec_changed = canonical(&new_spec) != canonical(&d.spec);
    let template_changed = canonical(&new_spec["template"]) != canonical(&d.spec["template"]);
    let meta_changed = new_labels != d.labels || new_annotations != d.annotations;
    let would_be = DeploymentState {
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        uid: d.uid.clone(),
        created: d.created.clone(),
        labels: new_labels,
        annotations: new_annotations,
        spec: new_spec,
        generation: d.generation + i64::from(spec_changed),
        resource_version: d.resource_version,
        revision: d.revision + u64::from(template_changed),
    };
    if request.dry_run() {
        return if scale {
            ok(state.scale_json(&would_be, replicas))
        } else {
            ok(typed(
                state.deployment_json(&would_be),
                "apps/v1",
                "Deployment",
            ))
        };
    }
    let mut would_be = would_be;
    if spec_changed || meta_changed {
        would_be.resource_version = state.next_rv();
    }
    state.deployments.insert(key, would_be);
    state.reconcile(&ns, &name);
    let d = &state.deployments[&(ns, name)];
    if scale {
        ok(state.scale_json(d, d.replicas()))
    } else {
        ok(typed(state.deployment_json(d), "apps/v1", "Deployment"))
    }
}

// ---------------------------------------------------------------------------------------
// Discovery

/// (name, singularName, namespaced, kind, verbs) of an API resource.
type ResourceInfo = (
    &'static str,
    &'static str,
    bool,
    &'static str,
    &'static [&'static str],
);

const CORE_RESOURCES: &[ResourceInfo] = &[
    ("pods", "pod", true, "Pod", &["delete", "get", "list"]),
    ("pods/log", "", true, "Pod", &["get"]),
    ("events", "event", true, "Event", &["get", "list"]),
    ("nodes", "node", false, "Node", &["get", "list"]),
    (
        "endpoints",
        "endpoints",
        true,
        "Endpoints",
        &["get", "list"],
    ),
    (
        "namespaces",
        "namespace",
        false,
        "Namespace",
        &["get", "list"],
    ),
    ("secrets", "secret", true, "Secret", &["get", "list"]),
];
const APPS_RESOURCES: &[ResourceInfo] = &[
    (
        "deployments",
        "deployment",
        true,
        "Deployment",
        &["get", "list", "patch"],
    ),
    ("deployments/scale", "", true, "Scale", &["get", "patch"]),
];
const EVENTS_RESOURCES: &[ResourceInfo] = &[("events", "event", true, "Event", &["get", "list"])];
const DISCOVERY_RESOURCES: &[ResourceInfo] = &[(
    "endpointslices",
    "endpointslice",
    true,
    "EndpointSlice",
    &["list"],
)];
const METRICS_RESOURCES: &[ResourceInfo] = &[
    ("pods", "", true, "PodMetrics", &["get", "list"]),
    ("nodes", "", false, "NodeMetrics", &["get", "list"]),
];

fn groups(state: &KubeState) -> Vec<(&'static str, &'static str, &'static [ResourceInfo])> {
    let mut groups = vec![
        ("apps", "v1", APPS_RESOURCES),
        ("events.k8s.io", "v1", EVENTS_RESOURCES),
        ("discovery.k8s.io", "v1", DISCOVERY_RESOURCES),
    ];
    if !state.metrics_disabled {
        groups.push(("metrics.k8s.io", "v1beta1", METRICS_RESOURCES));
    }
    groups
}

fn resource_list(group_version: &str, resources: &[ResourceInfo]) -> Value {
    let resources: Vec<Value> = resources
        .iter()
        .map(|(name, singular, namespaced, kind, verbs)| {
            json!({
                "name": name,
                "singularName": singular,
                "namespaced": namespaced,
                "kind": kind,
                "verbs": verbs,
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn api_group(name: &str, version: &str) -> Value {
    let gv = json!({ "groupVersion": format!("{name}/{version}"), "version": version });
    json!({ "name": name, "versions": [gv], "preferredVersion": gv })
}

/// `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`;
/// `None` for other paths. Metrics paths answer 404 when metrics are disabled.
fn discovery(state: &KubeState, request: &Incoming) -> Option<Response> {
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    if state.metrics_disabled && segments.get(1) == Some(&"metrics.k8s.io") && segments[0] == "apis"
    {
        return Some(no_such_path());
    }
    if request.method != "GET" {
        return None;
    }
    let response = match segments.as_slice() {
        ["version"] => ok(json!({
            "major": "1",
            "minor": "33",
            "gitVersion": GIT_VERSION,
            "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
            "gitTreeState": "clean",
            "buildDate": "2025-05-15T08:19:08Z",
            "goVersion": "go1.24.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        })),
        ["api"] => ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": state.address }],
        })),
        ["api", "v1"] => ok(resource_list("v1", CORE_RESOURCES)),
        ["apis"] => ok(json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": groups(state).iter().map(|(g, v, _)| api_group(g, v)).collect::<Vec<_>>(),
        })),
        ["apis", group] => {
            let (g, v, _) = groups(state).into_iter().find(|(g, _, _)| g == group)?;
            let mut body = api_group(g, v);
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            ok(body)
        }
        ["apis", group, version] => {
            let (g, v, resources) = groups(state)
                .into_iter()
                .find(|(g, v, _)| g == group && v == version)?;
            ok(resource_list(&format!("{g}/{v}"), resources))
        }
        _ => return None,
    };
    Some(response)
}
