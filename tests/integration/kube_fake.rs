//! Self-tests of the fake Kubernetes API server (`support::kube`), driven through kube-rs's
//! typed API (`Client::try_from(Config::new(url))`, as warroom builds its client), so what
//! is asserted here is what kube-rs really sends and decodes.

use crate::support::kube::{FakeKube, Fault, RESTARTED_AT};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Event, Node, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    ResourceExt,
};
use serde_json::json;
use std::time::Duration;

fn pod_metrics_resource() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    }
}

fn node_metrics_resource() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "NodeMetrics".into(),
        plural: "nodes".into(),
    }
}

/// The HTTP status of a kube-rs API error.
fn api_code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn api_reason<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) => status.reason.clone(),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn deployments_get_and_list() {
    let fake = FakeKube::start().await;
    fake.add_deployment("prod", "web", 3, &[("app", "web"), ("tier", "frontend")]);
    fake.add_deployment("prod", "worker", 1, &[("app", "worker")]);
    fake.add_deployment("staging", "web", 1, &[("app", "web")]);
    let api = Api::<Deployment>::namespaced(fake.client(), "prod");

    let web = api.get("web").await.unwrap();
    assert_eq!(web.name_any(), "web");
    assert_eq!(web.namespace().as_deref(), Some("prod"));
    assert_eq!(web.metadata.generation, Some(1));
    assert!(web.metadata.resource_version.is_some());
    let spec = web.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let match_labels = spec.selector.match_labels.as_ref().unwrap();
    assert_eq!(match_labels["app"], "web");
    assert_eq!(match_labels["tier"], "frontend");
    let template_labels = spec.template.metadata.as_ref().unwrap().labels.as_ref();
    assert_eq!(template_labels.unwrap()["app"], "web");
    let status = web.status.as_ref().unwrap();
    assert_eq!(status.replicas, Some(3));
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(3));
    assert_eq!(status.observed_generation, Some(1));

    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|d| d.name_any()).collect::<Vec<_>>(),
        ["web", "worker"]
    );
    assert!(all.metadata.resource_version.is_some());
    let selected = api
        .list(&ListParams::default().labels("app=worker"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    assert_eq!(selected.items[0].name_any(), "worker");
    let everywhere = Api::<Deployment>::all(fake.client())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(everywhere.items.len(), 3);

    // Its pods: {name}-{hash}-{suffix}, Running and Ready, labelled for its selector.
    let pods = fake.pods("prod");
    let web_pods: Vec<&String> = pods.iter().filter(|p| p.starts_with("web-")).collect();
    assert_eq!(web_pods.len(), 3);
    for pod in &web_pods {
        let parts: Vec<&str> = pod.split('-').collect();
        assert_eq!(parts.len(), 3, "{pod}");
        assert_eq!(parts[1].len(), 10, "{pod}");
        assert_eq!(parts[2].len(), 5, "{pod}");
    }

    let missing = api.get("nope").await;
    assert_eq!(api_reason(missing), "NotFound");

    let requests = fake.requests();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].path,
        "/apis/apps/v1/namespaces/prod/deployments/web"
    );
    assert_eq!(requests[0].query, "");
    assert_eq!(
        requests[1].path,
        "/apis/apps/v1/namespaces/prod/deployments"
    );
    assert_eq!(
        requests[2].param("labelSelector").as_deref(),
        Some("app=worker")
    );
    assert_eq!(requests[3].path, "/apis/apps/v1/deployments");
}

#[tokio::test]
async fn scale_get_patch_and_dry_run() {
    let fake = FakeKube::start().await;
    fake.add_deployment("prod", "web", 3, &[("app", "web")]);
    let api = Api::<Deployment>::namespaced(fake.client(), "prod");

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(3));
    let status = scale.status.as_ref().unwrap();
    assert_eq!(status.replicas, 3);
    assert_eq!(status.selector.as_deref(), Some("app=web"));
    let rv_before = api.get("web").await.unwrap().metadata.resource_version;

    // Dry run: the would-be object, nothing changed.
    let patch = Patch::Merge(json!({ "spec": { "replicas": 5 } }));
    let dry = api
        .patch_scale("web", &PatchParams::default().dry_run(), &patch)
        .await
        .unwrap();
    assert_eq!(dry.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(fake.deployment_replicas("prod", "web"), Some(3));
    assert_eq!(fake.pods("prod").len(), 3);
    assert_eq!(fake.dry_runs(), 1);
    let unchanged = api.get("web").await.unwrap();
    assert_eq!(unchanged.metadata.resource_version, rv_before);
    assert_eq!(unchanged.metadata.generation, Some(1));

    // For real.
    let scaled = api
        .patch_scale("web", &PatchParams::default(), &patch)
        .await
        .unwrap();
    assert_eq!(scaled.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(scaled.status.as_ref().unwrap().replicas, 5);
    assert_eq!(fake.deployment_replicas("prod", "web"), Some(5));
    assert_eq!(fake.pods("prod").len(), 5);
    assert_eq!(fake.dry_runs(), 1);
    let web = api.get("web").await.unwrap();
    assert_eq!(web.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(web.status.as_ref().unwrap().ready_replicas, Some(5));
    assert_eq!(web.metadata.generation, Some(2));
    assert_ne!(web.metadata.resource_version, rv_before);

    // Down to one: the newest pods go.
    let before: Vec<String> = fake.pods("prod");
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
    )
    .await
    .unwrap();
    let after = fake.pods("prod");
    assert_eq!(after.len(), 1);
    assert!(before.contains(&after[0]));

    // Invalid: 422.
    let negative = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": -1 } })),
        )
        .await;
    assert_eq!(api_code(negative), 422);
    // A dry run is validated too.
    let negative = api
        .patch_scale(
            "web",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({ "spec": { "replicas": -1 } })),
        )
        .await;
    assert_eq!(api_code(negative), 422);

    let requests = fake.requests();
    let patches: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(
        patches[0].path,
        "/apis/apps/v1/namespaces/prod/deployments/web/scale"
    );
    assert_eq!(patches[0].query, "&dryRun=All");
    assert_eq!(patches[0].content_type, "application/merge-patch+json");
    assert_eq!(patches[0].body, json!({ "spec": { "replicas": 5 } }));
    assert_eq!(patches[1].query, "");
    let gets: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/scale") && r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 1);
}

#[tokio::test]
async fn scaled_behind_our_back_and_stale_resource_version() {
    let fake = FakeKube::start().await;
    fake.add_deployment("prod", "web", 2, &[("app", "web")]);
    let api = Api::<Deployment>::namespaced(fake.client(), "prod");
    let seen = api.get("web").await.unwrap();

    fake.set_replicas_behind_our_back("prod", "web", 4);
    assert_eq!(fake.deployment_replicas("prod", "web"), Some(4));
    assert_eq!(fake.pods("prod").len(), 4);
    let now = api.get_scale("web").await.unwrap();
    assert_eq!(now.spec.unwrap().replicas, Some(4));

    // A patch made against what we saw before is refused.
    let stale = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "resourceVersion": seen.metadata.resource_version },
                "spec": { "replicas": 3 },
            })),
        )
        .await;
    assert_eq!(api_code(stale), 409);
    assert_eq!(fake.deployment_replicas("prod", "web"), Some(4));

    // Strategic merge and JSON patch work too.
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({ "spec": { "replicas": 2 } })),
    )
    .await
    .unwrap();
    assert_eq!(fake.deployment_replicas("prod", "web"), Some(2));
    let requests = fake.requests();
    assert_eq!(
        requests.last().unwrap().content_type,
        "application/strategic-merge-patch+json"
    );
}

/// `Patch::Json` needs kube's `jsonpatch` feature (off here); the wire form is checked with
/// reqwest instead.
#[tokio::test]
async fn json_patch_over_the_wire() {
    let fake = FakeKube::start().await;
    fake.add_deployment("prod", "web", 2, &[("app", "web")]);
    let response = reqwest::Client::new()
        .patch(format!(
            "{}/apis/apps/v1/namespaces/prod/deployments/web/scale",
            fake.url
        ))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op":"replace","path":"/spec/replicas","value":6}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.deployment_replicas("prod", "web"), Some(6));
    let unknown = reqwest::Client::new()
        .patch(format!(
            "{}/apis/apps/v1/namespaces/prod/deployments/web",
            fake.url
        ))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 415);
}

#[tokio::test]
async fn rollout_restart_patch() {
    let fake = FakeKube::start().await;
    fake.add_deployment("prod", "web", 2, &[("app", "web")]);
    let api = Api::<Deployment>::namespaced(fake.client(), "prod");
    let pods_before = fake.pods("prod");
    let at = "2026-05-01T12:00:00Z";
    let patch = Patch::Merge(json!({
        "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } }
    }));

    let dry = api
        .patch("web", &PatchParams::default().dry_run(), &patch)
        .await
        .unwrap();
    let annotations = dry
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert_eq!(annotations[RESTARTED_AT], at);
    assert_eq!(dry.metadata.generation, Some(2));
    assert_eq!(fake.restarted_at("prod", "web"), None);
    assert_eq!(fake.pods("prod"), pods_before);
    assert_eq!(fake.dry_runs(), 1);

    let restarted = api
        .patch("web", &PatchParams::default(), &patch)
        .await
        .unwrap();
    assert_eq!(restarted.metadata.generation, Some(2));
    assert_eq!(fake.restarted_at("prod", "web").as_deref(), Some(at));
    assert_eq!(restarted.status.unwrap().observed_generation, Some(2));
    // The rollout replaced every pod (new pod-template-hash), as many as before.
    let pods_after = fake.pods("prod");
    assert_eq!(pods_after.len(), 2);
    assert!(pods_after.iter().all(|p| !pods_before.contains(p)));
    let get = api.get("web").await.unwrap();
    assert_eq!(
        get.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );

    // The same as a strategic merge patch.
    let strategic = Patch::Strategic(json!({
        "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: "2026-05-01T13:00:00Z" } } } }
    }));
    let again = api
        .patch("web", &PatchParams::default(), &strategic)
        .await
        .unwrap();
    assert_eq!(again.metadata.generation, Some(3));
    assert_eq!(
        fake.restarted_at("prod", "web").as_deref(),
        Some("2026-05-01T13:00:00Z")
    );
    // The container list survives a strategic merge.
    assert_eq!(
        again.spec.unwrap().template.spec.unwrap().containers.len(),
        1
    );

    let patches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(
        patches[0].path,
        "/apis/apps/v1/namespaces/prod/deployments/web"
    );
    assert_eq!(patches[0].query, "&dryRun=All");
    assert_eq!(patches[0].content_type, "application/merge-patch+json");
    assert_eq!(patches[1].query, "");
    assert_eq!(
        patches[2].content_type,
        "application/strategic-merge-patch+json"
    );
}

#[tokio::test]
async fn pods_list_logs_and_delete() {
    let fake = FakeKube::start().await;
    fake.add_deployment("prod", "web", 2, &[("app", "web")]);
    fake.add_pod(
        "prod",
        "db-0",
        &[("app", "db"), ("role", "primary")],
        "Running",
        false,
        7,
        &["postgres", "exporter"],
    );
    fake.add_pod("prod", "job-1", &[("app", "job")], "Pending", false, 0, &[]);
    let api = Api::<Pod>::namespaced(fake.client(), "prod");

    let web = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 2);
    for pod in &web {
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(pod.owner_references()[0].kind, "ReplicaSet");
    }
    let db = api
        .list(&ListParams::default().labels("app=db,role=primary"))
        .await
        .unwrap();
    assert_eq!(db.items.len(), 1);
    let statuses = db.items[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap();
    assert_eq!(statuses[0].restart_count, 7);
    assert!(!statuses[0].ready);
    let none = api
        .list(&ListParams::default().labels("app=web,role=primary"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let set_based = api
        .list(&ListParams::default().labels("app in (db,job)"))
        .await
        .unwrap();
    assert_eq!(set_based.items.len(), 2);
    let paged = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(paged.items.len(), 3);
    let next = api
        .list(
            &ListParams::default()
                .limit(3)
                .continue_token(paged.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(next.items.len(), 1);
    assert!(next.metadata.continue_.is_none());
    let got = api.get("db-0").await.unwrap();
    assert_eq!(got.spec.unwrap().containers.len(), 2);

    // Logs.
    let web_pod = web.items[0].name_any();
    fake.set_logs("prod", &web_pod, None, &["one", "two", "three"]);
    fake.set_logs(
        "prod",
        "db-0",
        Some("postgres"),
        &["FATAL: out of memory", "restarting"],
    );
    let all = api.logs(&web_pod, &LogParams::default()).await.unwrap();
    assert_eq!(all, "one\ntwo\nthree\n");
    let tail = api
        .logs(
            &web_pod,
            &LogParams {
                tail_lines: Some(2),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "two\nthree\n");
    let db_logs = api
        .logs(
            "db-0",
            &LogParams {
                container: Some("postgres".into()),
                tail_lines: Some(1),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(db_logs, "restarting\n");
    let no_container = api.logs("db-0", &LogParams::default()).await;
    assert_eq!(api_code(no_container), 400);
    let pending = api.logs("job-1", &LogParams::default()).await;
    assert_eq!(api_code(pending), 400);
    let missing = api.logs("nope", &LogParams::default()).await;
    assert_eq!(api_code(missing), 404);

    // Delete, dry run: answered, kept.
    let deleted = api
        .delete(
            "db-0",
            &DeleteParams {
                dry_run: true,
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
    let pod = deleted.left().expect("the pod object");
    assert!(pod.metadata.deletion_timestamp.is_some());
    assert!(fake.pods("prod").contains(&"db-0".to_string()));
    assert_eq!(fake.dry_runs(), 1);
    // For real: gone; a deployment's pod is replaced.
    api.delete("db-0", &DeleteParams::default()).await.unwrap();
    assert!(!fake.pods("prod").contains(&"db-0".to_string()));
    api.delete(&web_pod, &DeleteParams::default())
        .await
        .unwrap();
    let web_now: Vec<String> = fake
        .pods("prod")
        .into_iter()
        .filter(|p| p.starts_with("web-"))
        .collect();
    assert_eq!(web_now.len(), 2);
    assert!(!web_now.contains(&web_pod));
    assert_eq!(
        api_code(api.delete("db-0", &DeleteParams::default()).await),
        404
    );
    assert_eq!(fake.dry_runs(), 1);

    let requests = fake.requests();
    let list = &requests[0];
    assert_eq!(list.path, "/api/v1/namespaces/prod/pods");
    assert_eq!(list.query, "&labelSelector=app%3Dweb");
    let log = requests
        .iter()
        .find(|r| r.path.ends_with("/db-0/log"))
        .unwrap();
    assert_eq!(log.query, "&container=postgres&tailLines=1");
    let delete = requests.iter().find(|r| r.method == "DELETE").unwrap();
    assert_eq!(delete.path, "/api/v1/namespaces/prod/pods/db-0");
    assert_eq!(delete.query, "");
    assert_eq!(delete.body, json!({ "dryRun": ["All"] }));
}

#[tokio::test]
async fn events_nodes_and_endpoints() {
    let fake = FakeKube::start().await;
    fake.add_pod(
        "prod",
        "web-1",
        &[("app", "web")],
        "Running",
        true,
        0,
        &["web"],
    );
    fake.add_event(
        "prod",
        "Pod",
        "web-1",
        "BackOff",
        "Back-off restarting failed container",
        "Warning",
        3,
    );
    fake.add_event(
        "prod",
        "Pod",
        "web-2",
        "Pulled",
        "Container image pulled",
        "Normal",
        10,
    );
    fake.add_event(
        "prod",
        "Deployment",
        "web",
        "ScalingReplicaSet",
        "Scaled up replica set web-abc to 3",
        "Normal",
        1,
    );
    fake.add_node("node-a", true);
    fake.add_node("node-b", false);
    fake.add_service_endpoints("prod", "web", &["10.1.0.1", "web-1"], &["10.1.0.3"]);

    let events = Api::<Event>::namespaced(fake.client(), "prod");
    let all = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 3);
    let about_pod = events
        .list(&ListParams::default().fields("involvedObject.name=web-1,involvedObject.kind=Pod"))
        .await
        .unwrap();
    assert_eq!(about_pod.items.len(), 1);
    let event = &about_pod.items[0];
    assert_eq!(event.reason.as_deref(), Some("BackOff"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.count, Some(1));
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert!(event.involved_object.uid.is_some());
    assert!(event.first_timestamp.is_some() && event.last_timestamp.is_some());
    assert!(event.event_time.is_some());
    let warnings = events
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .unwrap();
    assert_eq!(warnings.items.len(), 1);

    let v1 = Api::<k8s_openapi::api::events::v1::Event>::namespaced(fake.client(), "prod");
    let about_deployment = v1
        .list(&ListParams::default().fields("regarding.kind=Deployment"))
        .await
        .unwrap();
    assert_eq!(about_deployment.items.len(), 1);
    let e = &about_deployment.items[0];
    assert_eq!(
        e.note.as_deref(),
        Some("Scaled up replica set web-abc to 3")
    );
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("web"));

    let nodes = Api::<Node>::all(fake.client())
        .list(&ListParams::default())
        .await
        .unwrap();
    let ready: Vec<(String, String)> = nodes
        .iter()
        .map(|n| {
            let conditions = n.status.as_ref().unwrap().conditions.as_ref().unwrap();
            let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
            (n.name_any(), ready.status.clone())
        })
        .collect();
    assert_eq!(
        ready,
        [
            ("node-a".to_string(), "True".to_string()),
            ("node-b".to_string(), "False".to_string())
        ]
    );

    let endpoints = Api::<Endpoints>::namespaced(fake.client(), "prod")
        .get("web")
        .await
        .unwrap();
    let subset = &endpoints.subsets.unwrap()[0];
    let ips: Vec<&str> = subset
        .addresses
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.ip.as_str())
        .collect();
    assert_eq!(ips.len(), 2);
    assert_eq!(ips[0], "10.1.0.1");
    let by_name = &subset.addresses.as_ref().unwrap()[1];
    assert_eq!(
        by_name.target_ref.as_ref().unwrap().name.as_deref(),
        Some("web-1")
    );
    assert_eq!(
        subset.not_ready_addresses.as_ref().unwrap()[0].ip,
        "10.1.0.3"
    );
    let missing = Api::<Endpoints>::namespaced(fake.client(), "prod")
        .get("nope")
        .await;
    assert_eq!(api_code(missing), 404);

    let requests = fake.requests();
    assert_eq!(requests[0].path, "/api/v1/namespaces/prod/events");
    assert_eq!(
        requests[1].param("fieldSelector").as_deref(),
        Some("involvedObject.name=web-1,involvedObject.kind=Pod")
    );
    assert_eq!(
        requests[3].path,
        "/apis/events.k8s.io/v1/namespaces/prod/events"
    );
    assert_eq!(requests[4].path, "/api/v1/nodes");
    assert_eq!(requests[5].path, "/api/v1/namespaces/prod/endpoints/web");
}

#[tokio::test]
async fn metrics_and_discovery() {
    let fake = FakeKube::start().await;
    fake.add_pod(
        "prod",
        "web-1",
        &[("app", "web")],
        "Running",
        true,
        0,
        &["web", "sidecar"],
    );
    fake.add_node("node-a", true);
    fake.set_pod_metrics("prod", "web-1", "250m", "512Mi");
    fake.set_pod_metrics("other", "x", "1", "1Gi");
    fake.set_node_metrics("node-a", "1500m", "6Gi");
    let client = fake.client();

    let pods =
        Api::<DynamicObject>::namespaced_with(client.clone(), "prod", &pod_metrics_resource());
    let list = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let item = &list.items[0];
    assert_eq!(item.name_any(), "web-1");
    assert!(item.data["timestamp"].is_string());
    assert!(item.data["window"].is_string());
    assert_eq!(item.data["containers"][0]["name"], "web");
    assert_eq!(
        item.data["containers"][0]["usage"],
        json!({ "cpu": "250m", "memory": "512Mi" })
    );
    let one = pods.get("web-1").await.unwrap();
    assert_eq!(one.types.unwrap().kind, "PodMetrics");
    let labelled = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(labelled.items.len(), 1);

    let nodes = Api::<DynamicObject>::all_with(client.clone(), &node_metrics_resource());
    let list = nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items[0].name_any(), "node-a");
    assert_eq!(
        list.items[0].data["usage"],
        json!({ "cpu": "1500m", "memory": "6Gi" })
    );

    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "metrics.k8s.io"));
    let resources = client
        .list_api_group_resources("metrics.k8s.io/v1beta1")
        .await
        .unwrap();
    assert!(
        resources
            .resources
            .iter()
            .any(|r| r.kind == "PodMetrics" && r.name == "pods")
    );
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(core.resources.iter().any(|r| r.name == "pods"));
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");

    let requests = fake.requests();
    assert_eq!(
        requests[0].path,
        "/apis/metrics.k8s.io/v1beta1/namespaces/prod/pods"
    );
    assert_eq!(requests[3].path, "/apis/metrics.k8s.io/v1beta1/nodes");

    fake.disable_metrics();
    assert_eq!(api_code(pods.list(&ListParams::default()).await), 404);
    assert_eq!(api_code(nodes.list(&ListParams::default()).await), 404);
    let groups = client.list_api_groups().await.unwrap();
    assert!(!groups.groups.iter().any(|g| g.name == "metrics.k8s.io"));
}

#[tokio::test]
async fn faults_surface_as_api_errors() {
    let fake = FakeKube::start().await;
    fake.add_deployment("prod", "web", 2, &[("app", "web")]);
    let deployments = Api::<Deployment>::namespaced(fake.client(), "prod");
    let patch = Patch::Merge(json!({ "spec": { "replicas": 4 } }));

    fake.fail_next("GET", "/deployments/web", Fault::Forbidden);
    let forbidden = deployments.get("web").await;
    assert_eq!(api_reason(forbidden), "Forbidden");
    fake.fail_next("get", "/deployments/web", Fault::NotFound);
    assert_eq!(api_code(deployments.get("web").await), 404);
    fake.fail_next("PATCH", "/scale", Fault::Conflict);
    assert_eq!(
        api_code(
            deployments
                .patch_scale("web", &PatchParams::default(), &patch)
                .await
        ),
        409
    );
    assert_eq!(fake.deployment_replicas("prod", "web"), Some(2));
    fake.fail_next("PATCH", "/scale", Fault::ServerError);
    assert_eq!(
        api_code(
            deployments
                .patch_scale("web", &PatchParams::default(), &patch)
                .await
        ),
        500
    );
    // Only the next matching request: the following ones are answered.
    assert!(deployments.get("web").await.is_ok());
    // The method must match.
    fake.fail_next("DELETE", "/deployments/web", Fault::ServerError);
    assert!(deployments.get("web").await.is_ok());

    // Forbidden carries an RBAC-style message.
    fake.fail_next("*", "/pods", Fault::Forbidden);
    let pods = Api::<Pod>::namespaced(fake.client(), "prod");
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert!(
                status.message.contains("cannot list resource \"pods\""),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }

    // Hang: no answer while the fake lives.
    fake.fail_next("GET", "/deployments/web", Fault::Hang);
    let hung = tokio::spawn({
        let deployments = deployments.clone();
        async move { deployments.get("web").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hung.is_finished());
    drop(fake);
    let result = tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .expect("the hung request ends once the fake is dropped")
        .unwrap();
    assert!(result.is_err());
}

#[tokio::test]
async fn secrets_are_refused_and_unknown_paths_are_404() {
    let fake = FakeKube::start().await;
    let secrets = Api::<Secret>::namespaced(fake.client(), "prod");
    let get = secrets.get("db-password").await;
    assert_eq!(api_reason(get), "Forbidden");
    let list = secrets.list(&ListParams::default()).await;
    assert_eq!(api_code(list), 403);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.path.contains("/secrets")));

    let unknown = reqwest::get(format!("{}/apis/batch/v1/namespaces/prod/jobs", fake.url))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["code"], 404);
}
