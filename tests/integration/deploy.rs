//! The deployment files checked without a Docker engine or a cluster: `deploy/kubernetes/`
//! parses strictly as Kubernetes objects and agrees with the `Dockerfile`, with warroom's
//! command line and configuration loader, and `deploy/prometheus/` alerts on metrics warroom
//! exports. Each check returns its problems; `checks_fail_on_broken_copies` breaks an
//! in-memory copy of the files for each one and expects the check to say so.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warroom::metrics::{HttpLabels, Metrics, RouteLabels, SeverityLabels, StateLabels};

const KUBERNETES: &str = "deploy/kubernetes";
const KUSTOMIZATION: &str = "kustomization.yaml";
const SECRET_EXAMPLE: &str = "secret.example.yaml";
const DOCKERFILE: &str = "Dockerfile";
const WARROOM_ALERTS: &str = "deploy/prometheus/warroom-alerts.yaml";
const SERVICE_ALERTS: &str = "deploy/prometheus/alert-rules.yaml";
/// The ConfigMap key holding warroom's configuration file.
const CONFIG_KEY: &str = "warroom.toml";
/// Environment variables that are warroom configuration (`WARROOM_<SECTION>__<KEY>`).
const ENV_PREFIX: &str = "WARROOM_";
/// `WARROOM_` variables that are not configuration but read by the binary (src/cli.rs).
const NON_CONFIG_VARIABLES: [&str; 2] = ["WARROOM_CONFIG", "WARROOM_LOG"];
const ROUTING_KEY_PREFIX: &str = "WARROOM_PAGERDUTY__ROUTING_KEYS__";

type Problems = Vec<String>;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// The documents of a (multi-document) YAML file, as JSON values; empty documents are skipped.
fn yaml_documents(file: &str, text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"))
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// One YAML document of a file in `deploy/kubernetes/`.
#[derive(Clone, Debug)]
struct Manifest {
    file: String,
    /// Its position among the file's documents, from 0.
    document: usize,
    value: Value,
}

impl Manifest {
    fn api_version_and_kind(&self) -> (&str, &str) {
        let field = |name| self.value.get(name).and_then(Value::as_str).unwrap_or("");
        (field("apiVersion"), field("kind"))
    }

    fn is<T: Resource>(&self) -> bool {
        self.api_version_and_kind() == (T::API_VERSION, T::KIND)
    }
}

/// Every deployment file, read once from disk. Checks take this; the broken-copy test edits a
/// clone in memory, so the files on disk are never touched.
#[derive(Clone, Debug)]
struct DeployFiles {
    kustomization: Value,
    /// The documents of the files kustomization.yaml lists (those that exist), then those of
    /// secret.example.yaml.
    manifests: Vec<Manifest>,
    /// secret.example.yaml as text: its commented-out keys document the optional secrets.
    secret_example_text: String,
    dockerfile: String,
    warroom_alerts: String,
    service_alerts: String,
}

impl DeployFiles {
    fn load() -> DeployFiles {
        let kustomization_file = format!("{KUBERNETES}/{KUSTOMIZATION}");
        let kustomization = yaml_documents(&kustomization_file, &read(&kustomization_file))
            .pop()
            .expect("kustomization.yaml has a document");
        let mut files: Vec<String> = kustomization_resources(&kustomization)
            .into_iter()
            // A missing file is reported by the kustomization check, not here.
            .filter(|file| repo_path(&format!("{KUBERNETES}/{file}")).is_file())
            .collect();
        files.push(SECRET_EXAMPLE.to_string());
        let manifests = files
            .iter()
            .flat_map(|file| {
                let path = format!("{KUBERNETES}/{file}");
                yaml_documents(&path, &read(&path))
                    .into_iter()
                    .enumerate()
                    .map(|(document, value)| Manifest {
                        file: file.clone(),
                        document,
                        value,
                    })
            })
            .collect();
        DeployFiles {
            kustomization,
            manifests,
            secret_example_text: read(&format!("{KUBERNETES}/{SECRET_EXAMPLE}")),
            dockerfile: read(DOCKERFILE),
            warroom_alerts: read(WARROOM_ALERTS),
            service_alerts: read(SERVICE_ALERTS),
        }
    }

    /// Every object of type `T`, typed.
    fn objects<T: Resource + DeserializeOwned>(&self) -> Vec<T> {
        self.manifests
            .iter()
            .filter(|manifest| manifest.is::<T>())
            .map(|manifest| {
                serde_json::from_value(manifest.value.clone()).unwrap_or_else(|e| {
                    panic!("a {} in {} does not parse: {e}", T::KIND, manifest.file)
                })
            })
            .collect()
    }

    /// The one object of type `T`.
    fn only<T: Resource + DeserializeOwned>(&self) -> T {
        let mut objects = self.objects::<T>();
        assert_eq!(
            objects.len(),
            1,
            "expected exactly one {} in {KUBERNETES}, found {}",
            T::KIND,
            objects.len()
        );
        objects.remove(0)
    }

    /// kustomization.yaml's resources, to break in a copy.
    fn resources_mut(&mut self) -> &mut Vec<Value> {
        self.kustomization["resources"]
            .as_array_mut()
            .expect("kustomization.yaml lists resources")
    }

    /// The first document of kind `kind`, to break in a copy.
    fn document_mut(&mut self, kind: &str) -> &mut Value {
        &mut self
            .manifests
            .iter_mut()
            .find(|manifest| manifest.api_version_and_kind().1 == kind)
            .unwrap_or_else(|| panic!("no {kind} in {KUBERNETES}"))
            .value
    }

    /// Set the value at a JSON pointer of the first document of kind `kind`.
    fn set(&mut self, kind: &str, pointer: &str, value: Value) {
        *self
            .document_mut(kind)
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{kind} has no {pointer}")) = value;
    }

    /// Set the value at a JSON pointer under the Deployment's first container.
    fn set_container(&mut self, pointer: &str, value: Value) {
        self.set(
            "Deployment",
            &format!("/spec/template/spec/containers/0{pointer}"),
            value,
        );
    }

    /// Move the field at JSON pointer `from` to `to` (whose parent must exist) in the first
    /// document of kind `kind`: a misspelled or misplaced field.
    fn move_field(&mut self, kind: &str, from: &str, to: &str) {
        let (parent, key) = from.rsplit_once('/').expect("a pointer with a key");
        let value = self
            .document_mut(kind)
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .and_then(|object| object.remove(key))
            .unwrap_or_else(|| panic!("{kind} has no {from}"));
        self.insert(kind, to, value);
    }

    /// Add the field at JSON pointer `pointer` (whose parent must exist) to the first document
    /// of kind `kind`.
    fn insert(&mut self, kind: &str, pointer: &str, value: Value) {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a key");
        self.document_mut(kind)
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{kind} has no object at {parent}"))
            .insert(key.to_string(), value);
    }

    fn config_toml(&self) -> String {
        self.only::<ConfigMap>()
            .data
            .and_then(|mut data| data.remove(CONFIG_KEY))
            .unwrap_or_default()
    }

    /// Replace the first `from` by `to` in the ConfigMap's warroom.toml.
    fn replace_in_config_toml(&mut self, from: &str, to: &str) {
        let mut toml = self.config_toml();
        replace(&mut toml, from, to);
        self.set("ConfigMap", &format!("/data/{CONFIG_KEY}"), json!(toml));
    }
}

/// Replace the first `from` by `to` in `text`, which must contain it: a broken copy that is
/// not broken would only show up as a check that "missed" it.
fn replace(text: &mut String, from: &str, to: &str) {
    assert!(text.contains(from), "{from:?} not found");
    *text = text.replacen(from, to, 1);
}

fn kustomization_resources(kustomization: &Value) -> Vec<String> {
    kustomization["resources"]
        .as_array()
        .map(|resources| {
            resources
                .iter()
                .map(|resource| resource.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_no_problems(what: &str, problems: Problems) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---- 1. manifests parse strictly ----------------------------------------------------------

type RoundTrip = fn(&Value) -> Result<Value, String>;

/// Deserialize into the typed object and serialize it back.
fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn kind<T: Resource + DeserializeOwned + Serialize>() -> (&'static str, &'static str, RoundTrip) {
    (T::API_VERSION, T::KIND, round_trip::<T>)
}

/// The kinds deploy/kubernetes may contain. Add a kind here when a manifest needs it.
fn known_kinds() -> [(&'static str, &'static str, RoundTrip); 11] {
    [
        kind::<Namespace>(),
        kind::<ConfigMap>(),
        kind::<Secret>(),
        kind::<Service>(),
        kind::<ServiceAccount>(),
        kind::<Deployment>(),
        kind::<PodDisruptionBudget>(),
        kind::<Role>(),
        kind::<RoleBinding>(),
        kind::<ClusterRole>(),
        kind::<ClusterRoleBinding>(),
    ]
}

/// Where `original` and `round_tripped` differ, as JSON pointers.
fn differences(path: &str, original: &Value, round_tripped: &Value, out: &mut Problems) {
    match (original, round_tripped) {
        (Value::Object(before), Value::Object(after)) => {
            for (key, value) in before {
                let path = format!("{path}/{key}");
                match after.get(key) {
                    Some(other) => differences(&path, value, other, out),
                    None => out.push(format!(
                        "{path} is dropped by the typed object: misspelled or misplaced field?"
                    )),
                }
            }
            for key in after.keys().filter(|key| !before.contains_key(*key)) {
                out.push(format!("{path}/{key} is added by the typed object"));
            }
        }
        (Value::Array(before), Value::Array(after)) if before.len() == after.len() => {
            for (i, (value, other)) in before.iter().zip(after).enumerate() {
                differences(&format!("{path}/{i}"), value, other, out);
            }
        }
        _ if original != round_tripped => {
            out.push(format!(
                "{path} is {original} but reads back as {round_tripped}"
            ));
        }
        _ => {}
    }
}

fn manifest_problems(files: &DeployFiles) -> Problems {
    let kinds = known_kinds();
    let mut problems = Problems::new();
    for manifest in &files.manifests {
        let (api_version, kind) = manifest.api_version_and_kind();
        let name = manifest.value["metadata"]["name"].as_str().unwrap_or("?");
        let at = format!(
            "{} (document {}: {api_version} {kind} {name})",
            manifest.file, manifest.document
        );
        let Some((_, _, round_trip)) = kinds.iter().find(|(known_version, known_kind, _)| {
            (*known_version, *known_kind) == (api_version, kind)
        }) else {
            problems.push(format!(
                "{at}: unknown apiVersion/kind; known: {}",
                kinds
                    .iter()
                    .map(|(version, kind, _)| format!("{version} {kind}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        };
        match round_trip(&manifest.value) {
            Err(e) => problems.push(format!("{at}: does not parse as a {kind}: {e}")),
            Ok(round_tripped) => {
                let mut paths = Problems::new();
                differences("", &manifest.value, &round_tripped, &mut paths);
                problems.extend(paths.into_iter().map(|path| format!("{at}: {path}")));
            }
        }
    }
    problems
}

fn kustomization_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    let kustomization = &files.kustomization;
    if kustomization["kind"] != "Kustomization" {
        problems.push(format!(
            "{KUSTOMIZATION}: kind is {}, not Kustomization",
            kustomization["kind"]
        ));
    }
    let resources = kustomization_resources(kustomization);
    if resources.is_empty() {
        problems.push(format!("{KUSTOMIZATION} lists no resources"));
    }
    for resource in &resources {
        if !repo_path(&format!("{KUBERNETES}/{resource}")).is_file() {
            problems.push(format!(
                "{KUSTOMIZATION} lists {resource:?}, which is not a file in {KUBERNETES}"
            ));
        }
        if resource == SECRET_EXAMPLE {
            problems.push(format!(
                "{KUSTOMIZATION} lists {SECRET_EXAMPLE}: `kubectl apply -k` would install its placeholder values"
            ));
        }
    }
    let folder = std::fs::read_dir(repo_path(KUBERNETES)).expect("deploy/kubernetes is a folder");
    for entry in folder {
        let name = entry.expect("a folder entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".yaml")
            && name != KUSTOMIZATION
            && name != SECRET_EXAMPLE
            && !resources.iter().any(|resource| *resource == name)
        {
            problems.push(format!(
                "{KUBERNETES}/{name} is not listed in {KUSTOMIZATION}'s resources, so `kubectl apply -k` leaves it out"
            ));
        }
    }
    problems
}

/// Every document of every manifest kustomization.yaml lists (and of secret.example.yaml)
/// deserializes into its k8s-openapi type and serializes back to exactly what the file says.
/// k8s-openapi ignores unknown fields, so a misspelled or misplaced field (which the API server
/// would also drop, or reject) shows up as a dropped path.
#[test]
fn manifests_parse_strictly_as_their_kubernetes_types() {
    let files = DeployFiles::load();
    assert!(
        files.manifests.len() > 1,
        "no manifests found in {KUBERNETES}"
    );
    assert_no_problems(
        "manifests that do not read back as their Kubernetes type",
        manifest_problems(&files),
    );
}

/// kustomization.yaml lists files that exist, every manifest but the example Secret, and not
/// the example Secret.
#[test]
fn kustomization_lists_every_manifest_but_the_example_secret() {
    assert_no_problems(
        "kustomization.yaml is inconsistent with deploy/kubernetes",
        kustomization_problems(&DeployFiles::load()),
    );
}

// ---- the Dockerfile ---------------------------------------------------------------------

/// The instructions of the Dockerfile's final stage (what the image runs with): upper-case
/// instruction and its arguments, continuation lines joined, comments dropped.
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let mut instructions: Vec<(String, String)> = Vec::new();
    let mut pending = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                pending.push_str(start);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (instruction, arguments) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((&pending, ""));
                let instruction = instruction.to_ascii_uppercase();
                if instruction == "FROM" {
                    instructions.clear();
                }
                instructions.push((instruction, arguments.trim().to_string()));
                pending.clear();
            }
        }
    }
    instructions
}

/// The arguments of the final stage's last `instruction`.
fn dockerfile_instruction(dockerfile: &str, instruction: &str) -> Option<String> {
    final_stage(dockerfile)
        .into_iter()
        .rev()
        .find(|(name, _)| name == instruction)
        .map(|(_, arguments)| arguments)
}

/// The final stage's `ENV` variables (`KEY=VALUE …` or `KEY VALUE`).
fn dockerfile_env(dockerfile: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (_, arguments) in final_stage(dockerfile)
        .into_iter()
        .filter(|(name, _)| name == "ENV")
    {
        if arguments
            .split_whitespace()
            .next()
            .is_some_and(|word| word.contains('='))
        {
            for pair in arguments.split_whitespace() {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                env.insert(key.to_string(), value.trim_matches('"').to_string());
            }
        } else if let Some((key, value)) = arguments.split_once(char::is_whitespace) {
            env.insert(key.to_string(), value.trim().trim_matches('"').to_string());
        }
    }
    env
}

/// An exec-form (`["a", "b"]`) `ENTRYPOINT` or `CMD`.
fn dockerfile_exec_form(dockerfile: &str, instruction: &str) -> Result<Vec<String>, String> {
    let arguments = dockerfile_instruction(dockerfile, instruction)
        .ok_or_else(|| format!("the Dockerfile's final stage has no {instruction}"))?;
    serde_json::from_str(&arguments).map_err(|e| {
        format!("the Dockerfile's {instruction} {arguments} is not the exec form [\"…\"]: {e}")
    })
}

/// The Dockerfile's `USER uid:gid`, numeric.
fn dockerfile_user(dockerfile: &str) -> Result<(i64, i64), String> {
    let user = dockerfile_instruction(dockerfile, "USER")
        .ok_or("the Dockerfile's final stage has no USER")?;
    let numbers = user
        .split_once(':')
        .and_then(|(uid, gid)| Some((uid.parse().ok()?, gid.parse().ok()?)));
    numbers.ok_or_else(|| format!("the Dockerfile's USER {user} is not numeric uid:gid"))
}

// ---- 2. the Deployment ------------------------------------------------------------------

/// The warroom container of the Deployment.
fn warroom_container(deployment: &Deployment) -> Container {
    pod_spec(deployment)
        .containers
        .into_iter()
        .find(|container| container.name == "warroom")
        .expect("the Deployment has a container named warroom")
}

fn pod_spec(deployment: &Deployment) -> PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.clone())
        .expect("the Deployment has a pod template spec")
}

fn pod_template_metadata(deployment: &Deployment) -> ObjectMeta {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.metadata.clone())
        .unwrap_or_default()
}

/// `["warroom"] + args` of the Deployment's container.
fn deployment_argv(files: &DeployFiles) -> Vec<String> {
    let container = warroom_container(&files.only::<Deployment>());
    std::iter::once("warroom".to_string())
        .chain(container.args.unwrap_or_default())
        .collect()
}

fn parse_listen(what: &str, listen: &str) -> Result<SocketAddr, String> {
    listen
        .parse()
        .map_err(|e| format!("{what} {listen:?} is not an address:port: {e}"))
}

/// The effective `[server] listen` of the ConfigMap's warroom.toml.
fn config_map_listen(files: &DeployFiles) -> Result<SocketAddr, String> {
    let listen = effective_config(files, &["server", "listen"])
        .and_then(|listen| listen.as_str().map(String::from))
        .ok_or("the ConfigMap's warroom.toml has no [server] listen")?;
    parse_listen("the ConfigMap's [server] listen", &listen)
}

/// Replicas, and the Deployment's, the PodDisruptionBudget's and the Service's selectors.
fn replica_and_selector_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    let deployment = files.only::<Deployment>();
    let spec = deployment.spec.clone().expect("the Deployment has a spec");
    let template_labels = pod_template_metadata(&deployment)
        .labels
        .unwrap_or_default();
    if spec.replicas != Some(3) {
        problems.push(format!(
            "the Deployment has replicas {:?}, not 3",
            spec.replicas
        ));
    }
    let pdb = files.only::<PodDisruptionBudget>().spec.unwrap_or_default();
    let service = files.only::<Service>().spec.unwrap_or_default();
    for (who, selector) in [
        ("the Deployment's", Some(&spec.selector)),
        ("the PodDisruptionBudget's", pdb.selector.as_ref()),
    ] {
        if selector.is_some_and(|selector| selector.match_expressions.is_some()) {
            problems.push(format!(
                "{who} selector has matchExpressions, which this test does not compare: use matchLabels"
            ));
        }
    }
    for (who, labels) in [
        (
            "the Deployment's selector.matchLabels",
            spec.selector.match_labels.clone(),
        ),
        (
            "the PodDisruptionBudget's selector.matchLabels",
            pdb.selector.as_ref().and_then(|s| s.match_labels.clone()),
        ),
        ("the Service's selector", service.selector),
    ] {
        let labels = labels.unwrap_or_default();
        if labels.is_empty()
            || labels
                .iter()
                .any(|(key, value)| template_labels.get(key) != Some(value))
        {
            problems.push(format!(
                "{who} {labels:?} does not select the pod template's labels {template_labels:?}"
            ));
        }
    }
    // The disruption budget keeps at least two of the three replicas, and lets a drain evict.
    let replicas = spec.replicas.unwrap_or(1);
    let kept = match (&pdb.max_unavailable, &pdb.min_available) {
        (Some(IntOrString::Int(max_unavailable)), None) if *max_unavailable >= 1 => {
            replicas - max_unavailable
        }
        (None, Some(IntOrString::Int(min_available))) if *min_available < replicas => {
            *min_available
        }
        (max_unavailable, min_available) => {
            problems.push(format!(
                "the PodDisruptionBudget's maxUnavailable {max_unavailable:?} / minAvailable {min_available:?} is not one integer that lets a drain evict a pod"
            ));
            return problems;
        }
    };
    if kept < 2 {
        problems.push(format!(
            "the PodDisruptionBudget keeps {kept} of {replicas} pods during a drain, not at least 2"
        ));
    }
    problems
}

/// The ConfigMap's listen port is what the container, the Service, the probes, the scrape
/// annotation and the Dockerfile must all name.
fn port_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    let listen = match config_map_listen(files) {
        Ok(listen) => listen,
        Err(problem) => return vec![problem],
    };
    let port = i32::from(listen.port());
    if !listen.ip().is_unspecified() {
        problems.push(format!(
            "the ConfigMap's [server] listen {listen} is not on every interface (0.0.0.0): the Service cannot reach it"
        ));
    }
    let deployment = files.only::<Deployment>();
    let container = warroom_container(&deployment);
    let container_ports = container.ports.clone().unwrap_or_default();
    if !container_ports.iter().any(|p| p.container_port == port) {
        problems.push(format!(
            "the container's ports {:?} do not include the ConfigMap's listen port {port}",
            container_ports
                .iter()
                .map(|p| p.container_port)
                .collect::<Vec<_>>()
        ));
    }
    // A port by name or number, as the container port it names.
    let resolve = |port: &IntOrString| -> Option<i32> {
        container_ports
            .iter()
            .find(|p| match port {
                IntOrString::Int(number) => p.container_port == *number,
                IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
            })
            .map(|p| p.container_port)
    };
    let service = files.only::<Service>().spec.unwrap_or_default();
    for service_port in service.ports.unwrap_or_default() {
        let target = service_port
            .target_port
            .unwrap_or(IntOrString::Int(service_port.port));
        if resolve(&target) != Some(port) {
            problems.push(format!(
                "the Service's targetPort {target:?} is not the container port {port}"
            ));
        }
    }
    for (probe_name, probe, path) in [
        ("startupProbe", &container.startup_probe, "/healthz"),
        ("livenessProbe", &container.liveness_probe, "/healthz"),
        ("readinessProbe", &container.readiness_probe, "/readyz"),
    ] {
        let Some(http_get) = probe.as_ref().and_then(|probe| probe.http_get.as_ref()) else {
            problems.push(format!("the container has no {probe_name}.httpGet"));
            continue;
        };
        if http_get.path.as_deref() != Some(path) {
            problems.push(format!(
                "the {probe_name} probes {:?}, not {path}",
                http_get.path
            ));
        }
        if resolve(&http_get.port) != Some(port) {
            problems.push(format!(
                "the {probe_name}'s port {:?} is not the container port {port}",
                http_get.port
            ));
        }
    }
    let annotation = pod_template_metadata(&deployment)
        .annotations
        .and_then(|annotations| annotations.get("prometheus.io/port").cloned());
    if annotation != Some(port.to_string()) {
        problems.push(format!(
            "the pod template's prometheus.io/port annotation {annotation:?} is not {port}"
        ));
    }
    let exposed = dockerfile_instruction(&files.dockerfile, "EXPOSE").unwrap_or_default();
    if !exposed
        .split_whitespace()
        .any(|word| word.trim_end_matches("/tcp") == port.to_string())
    {
        problems.push(format!(
            "the Dockerfile's EXPOSE {exposed:?} does not include the listen port {port}"
        ));
    }
    // The image's variable beats the configuration file: it is what the pod listens on.
    let variable = "WARROOM_SERVER__LISTEN";
    match dockerfile_env(&files.dockerfile).get(variable) {
        None => problems.push(format!(
            "the Dockerfile's final stage sets no ENV {variable} (warroom.example.toml binds 127.0.0.1)"
        )),
        Some(image_listen) => match parse_listen(&format!("the Dockerfile's {variable}"), image_listen) {
            Ok(image_listen) if image_listen == listen => {}
            Ok(image_listen) => problems.push(format!(
                "the Dockerfile's ENV {variable}={image_listen} overrides the ConfigMap's [server] listen {listen}: they differ"
            )),
            Err(problem) => problems.push(problem),
        },
    }
    problems
}

/// Resources, the non-root user (the image's), and the service account.
fn pod_security_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    let deployment = files.only::<Deployment>();
    let pod = pod_spec(&deployment);
    let container = warroom_container(&deployment);
    let resources = container.resources.unwrap_or_default();
    for (what, quantities) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for resource in ["cpu", "memory"] {
            if quantities.as_ref().and_then(|q| q.get(resource)).is_none() {
                problems.push(format!(
                    "the container's resources.{what} has no {resource}"
                ));
            }
        }
    }
    // The container's securityContext overrides the pod's.
    let pod_security = pod.security_context.unwrap_or_default();
    let container_security = container.security_context.unwrap_or_default();
    let run_as_non_root = container_security
        .run_as_non_root
        .or(pod_security.run_as_non_root);
    if run_as_non_root != Some(true) {
        problems.push(format!("runAsNonRoot is {run_as_non_root:?}, not true"));
    }
    match dockerfile_user(&files.dockerfile) {
        Ok((uid, gid)) => {
            let user = container_security.run_as_user.or(pod_security.run_as_user);
            let group = container_security
                .run_as_group
                .or(pod_security.run_as_group);
            if (user, group) != (Some(uid), Some(gid)) {
                problems.push(format!(
                    "runAsUser/runAsGroup {user:?}/{group:?} are not the Dockerfile's USER {uid}:{gid}"
                ));
            }
        }
        Err(problem) => problems.push(problem),
    }
    let account = pod.service_account_name.unwrap_or_default();
    let accounts: Vec<String> = files
        .objects::<ServiceAccount>()
        .into_iter()
        .filter_map(|account| account.metadata.name)
        .collect();
    if !accounts.contains(&account) {
        problems.push(format!(
            "the Deployment's serviceAccountName {account:?} is not a ServiceAccount in rbac.yaml ({accounts:?})"
        ));
    }
    problems
}

/// The ConfigMap's warroom.toml is mounted where the container's `--config` looks.
fn config_mount_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    let config_map = files.only::<ConfigMap>();
    let config_map_name = config_map.metadata.name.unwrap_or_default();
    if !config_map
        .data
        .is_some_and(|data| data.contains_key(CONFIG_KEY))
    {
        problems.push(format!("the ConfigMap has no key {CONFIG_KEY}"));
    }
    let deployment = files.only::<Deployment>();
    let mounts = warroom_container(&deployment)
        .volume_mounts
        .unwrap_or_default();
    let mut mounted: Vec<String> = Vec::new();
    for volume in pod_spec(&deployment).volumes.unwrap_or_default() {
        let Some(source) = volume
            .config_map
            .filter(|source| source.name == config_map_name)
        else {
            continue;
        };
        // With `items`, the key is mounted under the path its item gives.
        let file = match source.items {
            Some(items) => match items.into_iter().find(|item| item.key == CONFIG_KEY) {
                Some(item) => item.path,
                None => continue,
            },
            None => CONFIG_KEY.to_string(),
        };
        for mount in mounts.iter().filter(|mount| mount.name == volume.name) {
            match &mount.sub_path {
                Some(sub_path) if *sub_path == file => mounted.push(mount.mount_path.clone()),
                Some(_) => {}
                None => mounted.push(format!("{}/{file}", mount.mount_path.trim_end_matches('/'))),
            }
        }
    }
    match parse_command_line(&deployment_argv(files)) {
        Ok(matches) => {
            let config = matches
                .get_one::<PathBuf>("config")
                .map(|path| path.display().to_string());
            if !config
                .as_ref()
                .is_some_and(|config| mounted.contains(config))
            {
                problems.push(format!(
                    "the container's --config {config:?} is not where the ConfigMap's {CONFIG_KEY} is mounted ({mounted:?})"
                ));
            }
        }
        Err(problem) => problems.push(problem),
    }
    problems
}

/// warroom's own objects live in the namespace namespace.yaml creates.
fn namespace_problems(files: &DeployFiles) -> Problems {
    fn namespace_of<T: Resource + DeserializeOwned + k8s_openapi::Metadata<Ty = ObjectMeta>>(
        files: &DeployFiles,
    ) -> Vec<(&'static str, Option<String>)> {
        files
            .objects::<T>()
            .into_iter()
            .map(|object| (T::KIND, object.metadata().namespace.clone()))
            .collect()
    }
    let namespace = files.only::<Namespace>().metadata.name.unwrap_or_default();
    [
        namespace_of::<Deployment>(files),
        namespace_of::<ConfigMap>(files),
        namespace_of::<Service>(files),
        namespace_of::<PodDisruptionBudget>(files),
        namespace_of::<ServiceAccount>(files),
        namespace_of::<Secret>(files),
    ]
    .concat()
    .into_iter()
    .filter(|(_, object_namespace)| object_namespace.as_deref() != Some(namespace.as_str()))
    .map(|(kind, object_namespace)| {
        format!(
            "the {kind} is in namespace {object_namespace:?}, not {namespace:?} (namespace.yaml)"
        )
    })
    .collect()
}

fn deployment_problems(files: &DeployFiles) -> Problems {
    [
        replica_and_selector_problems(files),
        port_problems(files),
        pod_security_problems(files),
        config_mount_problems(files),
        namespace_problems(files),
    ]
    .concat()
}

fn rbac_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    let deployment = files.only::<Deployment>();
    let account = deployment
        .spec
        .and_then(|spec| spec.template.spec)
        .and_then(|pod| pod.service_account_name)
        .unwrap_or_default();
    let account_namespace = deployment.metadata.namespace.unwrap_or_default();
    let is_warroom = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|subject| {
            subject.kind == "ServiceAccount"
                && subject.name == account
                && subject.namespace.as_deref() == Some(account_namespace.as_str())
        })
    };
    let roles: Vec<(Option<String>, Option<String>)> = files
        .objects::<Role>()
        .into_iter()
        .map(|role| (role.metadata.namespace, role.metadata.name))
        .collect();
    let mut bound_namespaces = BTreeSet::new();
    for binding in files.objects::<RoleBinding>() {
        let name = binding.metadata.name.clone().unwrap_or_default();
        if !is_warroom(&binding.subjects) {
            problems.push(format!(
                "RoleBinding {name} does not bind the Deployment's ServiceAccount {account_namespace}/{account}"
            ));
        }
        let target = (
            binding.metadata.namespace.clone(),
            Some(binding.role_ref.name.clone()),
        );
        if binding.role_ref.kind != "Role" || !roles.contains(&target) {
            problems.push(format!(
                "RoleBinding {name} refers to {} {}, which rbac.yaml does not define in namespace {:?}",
                binding.role_ref.kind, binding.role_ref.name, binding.metadata.namespace
            ));
        }
        bound_namespaces.extend(binding.metadata.namespace);
    }
    let cluster_roles: Vec<String> = files
        .objects::<ClusterRole>()
        .into_iter()
        .filter_map(|role| role.metadata.name)
        .collect();
    for binding in files.objects::<ClusterRoleBinding>() {
        let name = binding.metadata.name.clone().unwrap_or_default();
        if !is_warroom(&binding.subjects) {
            problems.push(format!(
                "ClusterRoleBinding {name} does not bind the Deployment's ServiceAccount {account_namespace}/{account}"
            ));
        }
        if binding.role_ref.kind != "ClusterRole" || !cluster_roles.contains(&binding.role_ref.name)
        {
            problems.push(format!(
                "ClusterRoleBinding {name} refers to {} {}, which rbac.yaml does not define",
                binding.role_ref.kind, binding.role_ref.name
            ));
        }
    }
    // The runbooks may act in runbooks.namespaces: the service account needs its Role there.
    for namespace in effective_config_strings(files, &["runbooks", "namespaces"]) {
        if !bound_namespaces.contains(&namespace) {
            problems.push(format!(
                "runbooks.namespaces includes {namespace:?}, but no RoleBinding grants the service account anything there"
            ));
        }
    }
    problems
}

/// The Deployment runs 3 replicas that the PodDisruptionBudget and the Service select, on
/// the port the ConfigMap's warroom.toml listens on, which the container, the Service, the
/// probes (`/healthz`, `/readyz`), the scrape annotation and the Dockerfile (`EXPOSE`,
/// `ENV WARROOM_SERVER__LISTEN`) all name; with resources, as the Dockerfile's non-root
/// `USER`, with a ServiceAccount that exists, and with `--config` where the ConfigMap is
/// mounted.
#[test]
fn deployment_agrees_with_service_pdb_configmap_and_dockerfile() {
    assert_no_problems(
        "the Deployment is inconsistent",
        deployment_problems(&DeployFiles::load()),
    );
}

/// The RoleBindings and ClusterRoleBindings bind the Deployment's ServiceAccount to roles
/// rbac.yaml defines, and every namespace of `runbooks.namespaces` has one.
#[test]
fn rbac_binds_the_service_account_where_the_runbooks_act() {
    assert_no_problems(
        "rbac.yaml is inconsistent with the Deployment and the configuration",
        rbac_problems(&DeployFiles::load()),
    );
}

// ---- 3. the command line ----------------------------------------------------------------

/// Parse a command line with warroom's own clap definition.
fn parse_command_line(argv: &[String]) -> Result<clap::ArgMatches, String> {
    let invalid = |e: clap::Error| format!("{argv:?} is not a valid warroom command line: {e}");
    warroom::cli::Cli::try_parse_from(argv).map_err(invalid)?;
    warroom::cli::Cli::command()
        .try_get_matches_from(argv)
        .map_err(invalid)
}

fn command_line_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    let container = warroom_container(&files.only::<Deployment>());
    if container.command.is_some() {
        problems.push(
            "the container sets `command`, which replaces the image's ENTRYPOINT: set only `args`"
                .into(),
        );
    }
    let argv = deployment_argv(files);
    match parse_command_line(&argv) {
        Ok(matches) => {
            if matches.subcommand_name() != Some("serve") {
                problems.push(format!(
                    "the container's args {argv:?} run {:?}, not serve",
                    matches.subcommand_name()
                ));
            }
            let log_format: Vec<String> = matches
                .get_raw("log_format")
                .into_iter()
                .flatten()
                .map(|value| value.to_string_lossy().into_owned())
                .collect();
            if log_format != ["json"] {
                problems.push(format!(
                    "the container's args {argv:?} log in {log_format:?}, not json"
                ));
            }
        }
        Err(problem) => problems.push(problem),
    }
    match (
        dockerfile_exec_form(&files.dockerfile, "ENTRYPOINT"),
        dockerfile_exec_form(&files.dockerfile, "CMD"),
    ) {
        (Ok(entrypoint), Ok(cmd)) => {
            let binary = entrypoint.first().cloned().unwrap_or_default();
            let copied = final_stage(&files.dockerfile)
                .into_iter()
                .any(|(name, arguments)| {
                    name == "COPY" && arguments.split_whitespace().last() == Some(binary.as_str())
                });
            if !copied {
                problems.push(format!(
                    "the Dockerfile's ENTRYPOINT {binary:?} is not a file its final stage copies in"
                ));
            }
            let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
            match parse_command_line(&argv) {
                Ok(matches) if matches.subcommand_name() == Some("serve") => {}
                Ok(matches) => problems.push(format!(
                    "the Dockerfile's ENTRYPOINT and CMD {argv:?} run {:?}, not serve",
                    matches.subcommand_name()
                )),
                Err(problem) => problems.push(problem),
            }
        }
        (entrypoint, cmd) => problems.extend(entrypoint.err().into_iter().chain(cmd.err())),
    }
    problems
}

/// The container's args are a warroom command line that runs `serve` with JSON logs, and the
/// Dockerfile's ENTRYPOINT and CMD one that runs `serve`, as parsed by warroom's own clap
/// definition (`warroom::cli::Cli`).
#[test]
fn container_args_and_dockerfile_cmd_are_valid_warroom_command_lines() {
    assert_no_problems(
        "the command lines are not what the deployment needs",
        command_line_problems(&DeployFiles::load()),
    );
}

// ---- 4. the configuration ---------------------------------------------------------------

/// The value at `path` in the ConfigMap's warroom.toml, else in the built-in defaults
/// (warroom.example.toml, compiled in). That is what the loader does for a value or a list:
/// tables merge key by key, but a list in the file replaces the default's.
fn effective_config(files: &DeployFiles, path: &[&str]) -> Option<toml::Value> {
    let lookup = |toml: &str| -> Option<toml::Value> {
        let mut value = toml::Value::Table(toml.parse().ok()?);
        for key in path {
            value = value.get(key)?.clone();
        }
        Some(value)
    };
    lookup(&files.config_toml()).or_else(|| lookup(warroom::config::DEFAULTS_TOML))
}

/// The strings of a list of the effective configuration.
fn effective_config_strings(files: &DeployFiles, path: &[&str]) -> Vec<String> {
    effective_config(files, path)
        .and_then(|value| value.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|item| item.as_str().map(String::from))
        .collect()
}

/// Values of secret.example.yaml: the keys it sets, and the optional keys it shows
/// commented out (`# slack-app-token: "xapp-…"`) under `stringData:`.
struct SecretExample {
    name: String,
    defined: BTreeMap<String, String>,
    commented_out: BTreeMap<String, String>,
}

impl SecretExample {
    fn read(files: &DeployFiles) -> SecretExample {
        let secret = files.only::<Secret>();
        let commented_out = files
            .secret_example_text
            .lines()
            .skip_while(|line| line.trim() != "stringData:")
            .filter_map(|line| {
                let comment = line.trim_start().strip_prefix('#')?;
                let entry: BTreeMap<String, String> = serde_norway::from_str(comment).ok()?;
                let (key, value) = entry.into_iter().next()?;
                key.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    .then_some((key, value))
            })
            .collect();
        SecretExample {
            name: secret.metadata.name.unwrap_or_default(),
            defined: secret.string_data.unwrap_or_default(),
            commented_out,
        }
    }

    fn value(&self, key: &str) -> Option<&String> {
        self.defined.get(key).or(self.commented_out.get(key))
    }
}

/// One `env` entry of the container: a literal value or a Secret key.
enum EnvSource {
    Literal(String),
    SecretKey {
        secret: String,
        key: String,
        optional: bool,
    },
    Other,
}

fn container_env(files: &DeployFiles) -> Vec<(String, EnvSource)> {
    let container = warroom_container(&files.only::<Deployment>());
    container
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|variable| {
            let source = match (variable.value, variable.value_from) {
                (Some(value), None) => EnvSource::Literal(value),
                (None, Some(from)) => match from.secret_key_ref {
                    Some(reference) => EnvSource::SecretKey {
                        secret: reference.name,
                        key: reference.key,
                        optional: reference.optional == Some(true),
                    },
                    None => EnvSource::Other,
                },
                _ => EnvSource::Other,
            };
            (variable.name, source)
        })
        .collect()
}

fn secret_reference_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    let example = SecretExample::read(files);
    let mut used = BTreeSet::new();
    for (variable, source) in container_env(files) {
        let EnvSource::SecretKey {
            secret,
            key,
            optional,
        } = source
        else {
            continue;
        };
        if secret != example.name {
            problems.push(format!(
                "{variable} reads Secret {secret:?}, not {:?} ({SECRET_EXAMPLE})",
                example.name
            ));
        }
        if !example.defined.contains_key(&key) {
            if !example.commented_out.contains_key(&key) {
                problems.push(format!(
                    "{variable} reads key {key:?}, which {SECRET_EXAMPLE} neither sets nor shows commented out"
                ));
            } else if !optional {
                problems.push(format!(
                    "{variable} reads key {key:?} without `optional: true`, but {SECRET_EXAMPLE} only shows it commented out: pods would not start without it"
                ));
            }
        }
        used.insert(key);
    }
    for key in example.defined.keys().chain(example.commented_out.keys()) {
        if !used.contains(key) {
            problems.push(format!(
                "{SECRET_EXAMPLE} has key {key:?}, which no environment variable of the Deployment reads"
            ));
        }
    }
    // Routing keys are a map, so a misspelled service name loads fine and pages nobody.
    let paged = paged_services(files);
    for (variable, _) in container_env(files) {
        if let Some(service) = variable.strip_prefix(ROUTING_KEY_PREFIX) {
            let service = service.to_ascii_lowercase();
            if !paged.contains(&service) {
                problems.push(format!(
                    "{variable} sets the routing key of service {service:?}, which no escalation step pages (service:{service}); paged: {paged:?}"
                ));
            }
        }
    }
    problems
}

/// The `service:NAME` targets the effective escalation steps page.
fn paged_services(files: &DeployFiles) -> BTreeSet<String> {
    effective_config(files, &["escalation", "steps"])
        .and_then(|steps| steps.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|step| step.get("page")?.as_array().cloned())
        .flatten()
        .filter_map(|target| target.as_str()?.strip_prefix("service:").map(String::from))
        .collect()
}

/// Which secrets the simulated pod gets.
#[derive(Clone, Copy, Debug)]
enum Secrets {
    /// secret.example.yaml as it is: optional keys it leaves out leave their variable unset.
    AsInTheExample,
    /// Every key, the commented-out ones with their example value, so that every variable the
    /// Deployment sets is read by the loader.
    Every,
}

impl Secrets {
    fn describe(self) -> &'static str {
        match self {
            Secrets::AsInTheExample => "secrets as in secret.example.yaml",
            Secrets::Every => "every optional secret set too",
        }
    }
}

/// A valid value for a secret whose commented-out example warroom refuses. The example's
/// Discord public key is 64 zeros: figment reads an all-digit environment value as the number
/// 0, which is not 64 hex digits (a real key is practically never all decimal digits).
fn valid_dummy(key: &str) -> Option<String> {
    (key == "discord-public-key").then(|| {
        let signing_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        hex::encode(signing_key.verifying_key().to_bytes())
    })
}

/// The environment of the warroom container: the image's ENV, then the Deployment's `env`
/// with each Secret key resolved against secret.example.yaml.
fn pod_environment(
    files: &DeployFiles,
    secrets: Secrets,
) -> Result<BTreeMap<String, String>, String> {
    let example = SecretExample::read(files);
    let mut env = dockerfile_env(&files.dockerfile);
    for (variable, source) in container_env(files) {
        let value = match source {
            EnvSource::Literal(value) => Some(value),
            EnvSource::SecretKey { key, optional, .. } => match secrets {
                Secrets::AsInTheExample => match example.defined.get(&key) {
                    Some(value) => Some(value.clone()),
                    None if optional => None,
                    None => return Err(format!("{variable}: {SECRET_EXAMPLE} has no {key}")),
                },
                Secrets::Every => Some(
                    valid_dummy(&key)
                        .or_else(|| example.value(&key).cloned())
                        .ok_or_else(|| {
                            format!("{variable}: {SECRET_EXAMPLE} has no example value for {key}")
                        })?,
                ),
            },
            EnvSource::Other => {
                return Err(format!(
                    "{variable} is neither a value nor a secretKeyRef: teach this test a dummy value for it"
                ));
            }
        };
        if let Some(value) = value {
            env.insert(variable, value);
        }
    }
    if let Secrets::Every = secrets {
        // Discord, once its secrets are set, also needs the application's and the server's
        // ids, which the ConfigMap shows commented out for the operator to fill in.
        for (variable, id) in [
            ("WARROOM_DISCORD__APPLICATION_ID", "100000000000000001"),
            ("WARROOM_DISCORD__GUILD_ID", "100000000000000002"),
        ] {
            env.entry(variable.to_string())
                .or_insert_with(|| id.to_string());
        }
    }
    Ok(env)
}

/// Run `warroom --config <the ConfigMap's warroom.toml> check` with exactly `env`.
///
/// A child process, not `figment::Jail` in this one: the loader reads the process environment,
/// and a Jail would change this test binary's environment and working directory while other
/// tests run in parallel threads (some load the configuration, spawn `warroom` with the
/// inherited environment, or read `playbooks/` relative to the working directory).
fn warroom_check(files: &DeployFiles, env: &BTreeMap<String, String>) -> Result<(), String> {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let config = folder.path().join(CONFIG_KEY);
    std::fs::write(&config, files.config_toml()).expect("write the configuration");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_warroom"))
        .env_clear()
        .envs(env)
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .expect("run warroom check");
    if output.status.success() {
        return Ok(());
    }
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Name the ConfigMap's key rather than the temporary file (line numbers are the key's).
    Err(report.replace(&config.display().to_string(), "ConfigMap warroom.toml"))
}

fn config_problems(files: &DeployFiles) -> Problems {
    let mut problems = Problems::new();
    for secrets in [Secrets::AsInTheExample, Secrets::Every] {
        let result = pod_environment(files, secrets).and_then(|env| {
            let unknown: Vec<&String> = env
                .keys()
                .filter(|name| {
                    name.starts_with(ENV_PREFIX)
                        && !name.contains("__")
                        && !NON_CONFIG_VARIABLES.contains(&name.as_str())
                })
                .collect();
            if !unknown.is_empty() {
                return Err(format!(
                    "{unknown:?} are not WARROOM_<SECTION>__<KEY> variables: the loader ignores them"
                ));
            }
            warroom_check(files, &env)
        });
        if let Err(problem) = result {
            problems.push(format!(
                "the ConfigMap's {CONFIG_KEY} with the Deployment's environment ({}) does not load: {}",
                secrets.describe(),
                problem.trim_end()
            ));
        }
    }
    problems
}

/// The ConfigMap's warroom.toml, with the image's and the Deployment's environment (secrets
/// from secret.example.yaml: as it is, and with every optional key set), passes `warroom check`,
/// i.e. warroom's own configuration loader. The configuration structs deny unknown fields, so
/// a misspelled `WARROOM_*` variable or TOML key fails here.
#[test]
fn configmap_and_environment_load_with_warroom_check() {
    assert_no_problems(
        "the deployment's configuration does not load",
        config_problems(&DeployFiles::load()),
    );
}

/// Every secretKeyRef reads a key of `warroom-secrets` that secret.example.yaml sets (or, for
/// an optional one, shows commented out), every key it has is read, and every PagerDuty
/// routing key belongs to a service an escalation step pages.
#[test]
fn secret_references_match_the_example_secret() {
    assert_no_problems(
        "the Deployment's secrets are inconsistent with secret.example.yaml",
        secret_reference_problems(&DeployFiles::load()),
    );
}

// ---- 5 and 6. Prometheus rules ------------------------------------------------------------

/// A Prometheus rule file, with the fields Prometheus accepts: a misspelled field fails.
/// (Fields only serde reads are there so that `deny_unknown_fields` accepts them.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RuleGroup {
    name: String,
    interval: Option<String>,
    query_offset: Option<String>,
    limit: Option<u64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A Prometheus duration: `30s`, `5m`, `1h30m`.
fn is_prometheus_duration(text: &str) -> bool {
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let after = &rest[digits..];
        let Some(unit) = ["ms", "y", "w", "d", "h", "m", "s"]
            .into_iter()
            .find(|unit| after.starts_with(unit))
        else {
            return false;
        };
        if digits == 0 {
            return false;
        }
        rest = &after[unit.len()..];
    }
    !text.is_empty()
}

/// Parse a rule file; each rule is an alert with an `expr` and valid durations.
fn rule_file(file: &str, text: &str) -> Result<RuleFile, Problems> {
    let rules: RuleFile = serde_norway::from_str(text)
        .map_err(|e| vec![format!("{file} is not a Prometheus rule file: {e}")])?;
    let mut problems = Problems::new();
    if rules.groups.is_empty() {
        problems.push(format!("{file} has no rule groups"));
    }
    for group in &rules.groups {
        for duration in [&group.interval, &group.query_offset].into_iter().flatten() {
            if !is_prometheus_duration(duration) {
                problems.push(format!(
                    "{file}: group {}: {duration:?} is not a duration",
                    group.name
                ));
            }
        }
        if group.rules.is_empty() {
            problems.push(format!("{file}: group {} has no rules", group.name));
        }
        for (index, rule) in group.rules.iter().enumerate() {
            let name = rule
                .alert
                .clone()
                .unwrap_or_else(|| format!("rule {index}"));
            let at = format!("{file}: group {}: {name}", group.name);
            if rule.alert.as_deref().unwrap_or("").is_empty() || rule.record.is_some() {
                problems.push(format!(
                    "{at}: not an alerting rule (needs `alert`, no `record`)"
                ));
            }
            if rule.expr.as_deref().unwrap_or("").trim().is_empty() {
                problems.push(format!("{at}: has no expr"));
            }
            for duration in [&rule.for_, &rule.keep_firing_for].into_iter().flatten() {
                if !is_prometheus_duration(duration) {
                    problems.push(format!("{at}: {duration:?} is not a duration"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

fn service_alert_problems(files: &DeployFiles) -> Problems {
    rule_file(SERVICE_ALERTS, &files.service_alerts)
        .err()
        .unwrap_or_default()
}

/// What warroom's `/metrics` exposes: each series name with the label names it carries.
struct Exported {
    /// Every series name the `# TYPE` lines imply, whether or not it has samples yet.
    series: BTreeSet<String>,
    /// The label names of series that have samples.
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// A registry with one observation in every family, so that labelled families print samples
/// (a family prints only its `# HELP` and `# TYPE` lines until a label set is first used).
fn metrics_with_one_of_each() -> Metrics {
    let metrics = Metrics::new();
    let route = || "/slack/commands".to_string();
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route: route(),
            status: 200,
        })
        .inc();
    metrics
        .http_duration
        .get_or_create(&RouteLabels { route: route() })
        .observe(0.01);
    metrics.command("declare", "ok");
    metrics.delivery("pagerduty", "failed");
    metrics.kubernetes_call(true);
    metrics.timer_lateness.observe(0.1);
    metrics
        .incidents_open
        .get_or_create(&SeverityLabels {
            severity: "P1".into(),
        })
        .set(1);
    metrics.timers_pending.set(1);
    metrics
        .outbox_rows
        .get_or_create(&StateLabels {
            state: "pending".into(),
        })
        .set(1);
    metrics.scheduler_lag.set(1.0);
    metrics.ready.set(1);
    metrics
}

/// The series names a `# TYPE name kind` line stands for, as prometheus-client prints them.
fn series_of(name: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!("{name}_total")],
        "gauge" | "unknown" => vec![name.to_string()],
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{name}{suffix}"))
            .collect(),
        "info" => vec![format!("{name}_info")],
        other => panic!("metric {name} has type {other}: teach series_of its series names"),
    }
}

/// A sample line's series name and label names (`name{a="x",b="y"} 1`).
fn sample(line: &str) -> (String, BTreeSet<String>) {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let mut labels = BTreeSet::new();
    if line[end..].starts_with('{') {
        let mut rest = &line[end + 1..];
        while let Some((label, after)) = rest.split_once("=\"") {
            labels.insert(label.trim_start_matches(',').to_string());
            // Skip the quoted value, escapes included.
            let mut escaped = false;
            let close = after
                .char_indices()
                .find(|&(_, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes
                })
                .map_or(after.len(), |(i, _)| i);
            rest = &after[(close + 1).min(after.len())..];
            if rest.starts_with('}') {
                break;
            }
        }
    }
    (line[..end].to_string(), labels)
}

fn exported_metrics() -> Exported {
    let text = metrics_with_one_of_each().encode();
    let mut by_metric: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declaration.split_once(' ').expect("# TYPE name kind");
            by_metric.insert(name.to_string(), series_of(name, kind));
        }
    }
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
    {
        let (series, names) = sample(line);
        labels.entry(series).or_default().extend(names);
    }
    let series: BTreeSet<String> = by_metric.values().flatten().cloned().collect();
    // The suffix rules above must be what prometheus-client prints: every sample's series is
    // one of them, and a metric with samples prints all of its series.
    for printed in labels.keys() {
        assert!(
            series.contains(printed),
            "/metrics prints {printed}, which series_of does not derive from any # TYPE line:\n{text}"
        );
    }
    for (metric, names) in &by_metric {
        if names.iter().any(|name| labels.contains_key(name)) {
            for name in names {
                assert!(
                    labels.contains_key(name),
                    "series_of says {metric} prints {name}, but /metrics does not:\n{text}"
                );
            }
        }
    }
    Exported { series, labels }
}

/// The metric selectors in a PromQL expression whose name starts with `prefix`: the name and
/// the label names of its matchers. String literals are skipped, so `job="warroom_x"` is not
/// taken for a metric.
fn selectors(expr: &str, prefix: &str) -> Vec<(String, BTreeSet<String>)> {
    let chars: Vec<char> = expr.chars().collect();
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_string = |mut i: usize| -> usize {
        let quote = chars[i];
        i += 1;
        while i < chars.len() && chars[i] != quote {
            i += if chars[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(i);
        } else if is_start(c) && (i == 0 || !is_part(chars[i - 1])) {
            let start = i;
            while i < chars.len() && is_part(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            if !name.starts_with(prefix) {
                continue;
            }
            let mut labels = BTreeSet::new();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && chars[j] == '{' {
                j += 1;
                let mut label = String::new();
                while j < chars.len() && chars[j] != '}' {
                    match chars[j] {
                        '"' | '\'' | '`' => {
                            j = skip_string(j);
                            continue;
                        }
                        c if is_part(c) => label.push(c),
                        '=' | '!' | '~' if !label.is_empty() => {
                            labels.insert(std::mem::take(&mut label));
                        }
                        _ => label.clear(),
                    }
                    j += 1;
                }
                i = j;
            }
            found.push((name, labels));
        } else {
            i += 1;
        }
    }
    found
}

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

fn warroom_alert_problems(files: &DeployFiles) -> Problems {
    let rules = match rule_file(WARROOM_ALERTS, &files.warroom_alerts) {
        Ok(rules) => rules,
        Err(problems) => return problems,
    };
    let exported = exported_metrics();
    let mut problems = Problems::new();
    let mut referenced = 0;
    for rule in rules.groups.iter().flat_map(|group| &group.rules) {
        let at = format!("{WARROOM_ALERTS}: {}", rule.alert.as_deref().unwrap_or("?"));
        if rule
            .labels
            .get("severity")
            .is_none_or(|severity| severity.is_empty())
        {
            problems.push(format!("{at}: has no severity label"));
        }
        for annotation in ["summary", "description"] {
            if rule
                .annotations
                .get(annotation)
                .is_none_or(|text| text.trim().is_empty())
            {
                problems.push(format!("{at}: has no {annotation} annotation"));
            }
        }
        for (metric, labels) in selectors(rule.expr.as_deref().unwrap_or(""), "warroom_") {
            referenced += 1;
            if !exported.series.contains(&metric) {
                problems.push(format!(
                    "{at}: expr uses {metric}, which warroom does not export; it exports {:?}",
                    exported.series
                ));
                continue;
            }
            let Some(known) = exported.labels.get(&metric) else {
                problems.push(format!(
                    "{at}: cannot check the labels of {metric}: record an observation of it in metrics_with_one_of_each"
                ));
                continue;
            };
            for label in labels
                .iter()
                .filter(|label| !TARGET_LABELS.contains(&label.as_str()))
            {
                if !known.contains(label) {
                    problems.push(format!(
                        "{at}: expr matches label {label:?} of {metric}, which has only {known:?} (and {TARGET_LABELS:?})"
                    ));
                }
            }
        }
    }
    if referenced == 0 {
        problems.push(format!(
            "{WARROOM_ALERTS}: no expr uses a warroom_ metric: is the expression scanner broken?"
        ));
    }
    problems
}

/// warroom's own health alerts: each has an expr, a severity label, a summary and a
/// description, and every `warroom_*` metric its expr uses is one warroom's registry exports,
/// matched on labels that metric has. Other metrics (`up`) are Prometheus' own.
#[test]
fn warroom_alerts_use_metrics_warroom_exports() {
    assert_no_problems(
        "warroom-alerts.yaml does not match warroom's metrics",
        warroom_alert_problems(&DeployFiles::load()),
    );
}

/// alert-rules.yaml (alerts about the services warroom manages, sent to it by Alertmanager)
/// is a Prometheus rule file whose rules are alerts with an expr.
#[test]
fn service_alert_rules_parse_as_a_prometheus_rule_file() {
    assert_no_problems(
        "alert-rules.yaml is not a valid rule file",
        service_alert_problems(&DeployFiles::load()),
    );
}

// ---- the checks catch what they are for ----------------------------------------------------

type Check = fn(&DeployFiles) -> Problems;
type Break = fn(&mut DeployFiles);

/// Each check, on a copy of the files broken in memory, reports the breakage.
#[test]
fn checks_fail_on_broken_copies() {
    let cases: &[(&str, Check, Break, &str)] = &[
        (
            "a misspelled field",
            manifest_problems,
            |files| {
                files.move_field(
                    "Deployment",
                    "/spec/template/spec/containers/0/readinessProbe",
                    "/spec/template/spec/containers/0/readinesProbe",
                )
            },
            "/spec/template/spec/containers/0/readinesProbe is dropped",
        ),
        (
            "a misplaced field",
            manifest_problems,
            |files| {
                files.move_field(
                    "Deployment",
                    "/spec/template/spec/serviceAccountName",
                    "/spec/template/spec/containers/0/serviceAccountName",
                )
            },
            "/spec/template/spec/containers/0/serviceAccountName is dropped",
        ),
        (
            "an unknown kind",
            manifest_problems,
            |files| files.set("Service", "/kind", json!("Servce")),
            "unknown apiVersion/kind",
        ),
        (
            "the example Secret in the kustomization",
            kustomization_problems,
            |files| files.resources_mut().push(json!(SECRET_EXAMPLE)),
            "would install its placeholder values",
        ),
        (
            "a missing resource",
            kustomization_problems,
            |files| files.resources_mut().push(json!("pbd.yaml")),
            "\"pbd.yaml\", which is not a file",
        ),
        (
            "a manifest left out",
            kustomization_problems,
            |files| {
                files
                    .resources_mut()
                    .retain(|resource| resource != "pdb.yaml")
            },
            "pdb.yaml is not listed",
        ),
        (
            "two replicas",
            deployment_problems,
            |files| files.set("Deployment", "/spec/replicas", json!(2)),
            "replicas Some(2), not 3",
        ),
        (
            "a Service selecting other pods",
            deployment_problems,
            |files| files.set("Service", "/spec/selector", json!({"app": "warrom"})),
            "the Service's selector",
        ),
        (
            "a PDB that lets two pods go",
            deployment_problems,
            |files| files.set("PodDisruptionBudget", "/spec/maxUnavailable", json!(2)),
            "keeps 1 of 3 pods",
        ),
        (
            "a Service targeting no port",
            deployment_problems,
            |files| files.set("Service", "/spec/ports/0/targetPort", json!("htp")),
            "targetPort String(\"htp\")",
        ),
        (
            "a readiness probe on /healthz",
            deployment_problems,
            |files| files.set_container("/readinessProbe/httpGet/path", json!("/healthz")),
            "readinessProbe probes Some(\"/healthz\"), not /readyz",
        ),
        (
            "a probe on another port",
            deployment_problems,
            |files| files.set_container("/livenessProbe/httpGet/port", json!(9090)),
            "livenessProbe's port Int(9090)",
        ),
        (
            "no memory limit",
            deployment_problems,
            |files| files.set_container("/resources/limits", json!({"cpu": "500m"})),
            "resources.limits has no memory",
        ),
        (
            "another user than the image's",
            deployment_problems,
            |files| {
                files.set(
                    "Deployment",
                    "/spec/template/spec/securityContext/runAsUser",
                    json!(1000),
                )
            },
            "are not the Dockerfile's USER 65532:65532",
        ),
        (
            "another ConfigMap port",
            deployment_problems,
            |files| files.replace_in_config_toml(":8080", ":9090"),
            "overrides the ConfigMap's [server] listen 0.0.0.0:9090",
        ),
        (
            "a loopback listen address",
            deployment_problems,
            |files| files.replace_in_config_toml("0.0.0.0:", "127.0.0.1:"),
            "is not on every interface",
        ),
        (
            "another EXPOSE",
            deployment_problems,
            |files| replace(&mut files.dockerfile, "EXPOSE 8080", "EXPOSE 8000"),
            "EXPOSE \"8000\"",
        ),
        (
            "another scrape port",
            deployment_problems,
            |files| {
                files.set(
                    "Deployment",
                    "/spec/template/metadata/annotations/prometheus.io~1port",
                    json!("9100"),
                )
            },
            "prometheus.io/port annotation Some(\"9100\")",
        ),
        (
            "a missing service account",
            deployment_problems,
            |files| {
                files.set(
                    "Deployment",
                    "/spec/template/spec/serviceAccountName",
                    json!("default"),
                )
            },
            "serviceAccountName \"default\"",
        ),
        (
            "the ConfigMap mounted elsewhere",
            deployment_problems,
            |files| files.set_container("/volumeMounts/0/mountPath", json!("/etc/config")),
            "is not where the ConfigMap's warroom.toml is mounted",
        ),
        (
            "root allowed",
            deployment_problems,
            |files| files.set_container("/securityContext/runAsNonRoot", json!(false)),
            "runAsNonRoot is Some(false), not true",
        ),
        (
            "a Service in another namespace",
            deployment_problems,
            |files| files.set("Service", "/metadata/namespace", json!("default")),
            "the Service is in namespace Some(\"default\")",
        ),
        (
            "a Role binding in another namespace",
            rbac_problems,
            |files| {
                files.replace_in_config_toml(
                    "namespaces = [\"stock-analysis-system\"]",
                    "namespaces = [\"stock-analysis-system\", \"payments\"]",
                )
            },
            "includes \"payments\"",
        ),
        (
            "a binding to another account",
            rbac_problems,
            |files| files.set("RoleBinding", "/subjects/0/name", json!("default")),
            "does not bind the Deployment's ServiceAccount",
        ),
        (
            "a binding to a role that does not exist",
            rbac_problems,
            |files| files.set("ClusterRoleBinding", "/roleRef/name", json!("warroom-node")),
            "refers to ClusterRole warroom-node",
        ),
        (
            "a misspelled flag value",
            command_line_problems,
            |files| files.set_container("/args/1", json!("jsno")),
            "is not a valid warroom command line",
        ),
        (
            "another subcommand",
            command_line_problems,
            |files| files.set_container("/args/4", json!("check")),
            "run Some(\"check\"), not serve",
        ),
        (
            "text logs",
            command_line_problems,
            |files| files.set_container("/args/1", json!("text")),
            "log in [\"text\"], not json",
        ),
        (
            "a container command",
            command_line_problems,
            |files| {
                files.insert(
                    "Deployment",
                    "/spec/template/spec/containers/0/command",
                    json!(["/usr/local/bin/warroom"]),
                )
            },
            "replaces the image's ENTRYPOINT",
        ),
        (
            "a misspelled CMD",
            command_line_problems,
            |files| replace(&mut files.dockerfile, "CMD [\"serve\"]", "CMD [\"serv\"]"),
            "is not a valid warroom command line",
        ),
        (
            "a misspelled variable",
            config_problems,
            |files| files.set_container("/env/1/name", json!("WARROOM_SLACK__BOT_TOKNE")),
            "unknown field",
        ),
        (
            "a misspelled optional variable",
            config_problems,
            |files| files.set_container("/env/4/name", json!("WARROOM_DISCORD__BOTTOKEN")),
            "(every optional secret set too) does not load",
        ),
        (
            "a misspelled ConfigMap key",
            config_problems,
            |files| files.replace_in_config_toml("pool_size", "poolsize"),
            "unknown field",
        ),
        (
            "a variable the loader ignores",
            config_problems,
            |files| files.set_container("/env/0/name", json!("WARROOM_DATABASE_URL")),
            "[\"WARROOM_DATABASE_URL\"] are not WARROOM_<SECTION>__<KEY> variables",
        ),
        (
            "a misspelled secret key",
            secret_reference_problems,
            |files| files.set_container("/env/0/valueFrom/secretKeyRef/key", json!("database-uri")),
            "reads key \"database-uri\"",
        ),
        (
            "another Secret",
            secret_reference_problems,
            |files| {
                files.set_container(
                    "/env/0/valueFrom/secretKeyRef/name",
                    json!("warroom-secret"),
                )
            },
            "reads Secret \"warroom-secret\"",
        ),
        (
            "a required key the example only shows commented out",
            secret_reference_problems,
            |files| files.set_container("/env/3/valueFrom/secretKeyRef/optional", json!(false)),
            "\"slack-app-token\" without `optional: true`",
        ),
        (
            "an unused example key",
            secret_reference_problems,
            |files| files.insert("Secret", "/stringData/slack-bot-tokens", json!("x")),
            "\"slack-bot-tokens\", which no environment variable",
        ),
        (
            "a routing key for an unknown service",
            secret_reference_problems,
            |files| {
                files.set_container(
                    "/env/8/name",
                    json!("WARROOM_PAGERDUTY__ROUTING_KEYS__ONCAL"),
                )
            },
            "service \"oncal\"",
        ),
        (
            "a metric warroom does not export",
            warroom_alert_problems,
            |files| {
                replace(
                    &mut files.warroom_alerts,
                    "warroom_outbox_rows{",
                    "warroom_outbox_row{",
                )
            },
            "uses warroom_outbox_row,",
        ),
        (
            "a counter without _total",
            warroom_alert_problems,
            |files| {
                replace(
                    &mut files.warroom_alerts,
                    "rate(warroom_deliveries_total{",
                    "rate(warroom_deliveries{",
                )
            },
            "uses warroom_deliveries,",
        ),
        (
            "a label the metric does not have",
            warroom_alert_problems,
            |files| {
                replace(
                    &mut files.warroom_alerts,
                    "state=\"failed\"",
                    "status=\"failed\"",
                )
            },
            "matches label \"status\" of warroom_outbox_rows",
        ),
        (
            "no severity",
            warroom_alert_problems,
            |files| {
                replace(
                    &mut files.warroom_alerts,
                    "severity: critical",
                    "priority: critical",
                )
            },
            "has no severity label",
        ),
        (
            "no description",
            warroom_alert_problems,
            |files| replace(&mut files.warroom_alerts, "description:", "descripton:"),
            "WarroomDown: has no description annotation",
        ),
        (
            "a misspelled rule field",
            service_alert_problems,
            |files| replace(&mut files.service_alerts, "annotations:", "anotations:"),
            "unknown field `anotations`",
        ),
        (
            "a malformed for",
            service_alert_problems,
            |files| replace(&mut files.service_alerts, "for: 5m", "for: 5 minutes"),
            "\"5 minutes\" is not a duration",
        ),
    ];
    let original = DeployFiles::load();
    let mut missed = Vec::new();
    for (what, check, break_it, expected) in cases {
        let mut broken = original.clone();
        break_it(&mut broken);
        let problems = check(&broken);
        if !problems.iter().any(|problem| problem.contains(expected)) {
            missed.push(format!(
                "{what}: expected a problem containing {expected:?}, got {problems:#?}"
            ));
        }
    }
    assert!(
        missed.is_empty(),
        "checks that did not catch a broken copy:\n{}",
        missed.join("\n")
    );
}
