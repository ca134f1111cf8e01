//! The shipped playbooks: they lint clean, the compiled-in set is the `playbooks/` folder, and
//! every step of every playbook renders to a valid action with the defaults.

use std::collections::BTreeMap;
use std::path::Path;

use warroom::core::Severity;
use warroom::runbook::action::ActionKind;
use warroom::runbook::playbook::{Playbooks, incident_context, parse_arguments};

const SHIPPED: [&str; 7] = [
    "api-not-responding",
    "database-connection-issues",
    "high-memory-usage",
    "restart-api",
    "scale-api",
    "scale-workers",
    "system-health-check",
];

fn incident() -> serde_json::Value {
    incident_context("INC-42", Severity::P1, "API returning 503s")
}

#[test]
fn shipped_playbooks_lint_clean_and_match_the_builtin_set() {
    let from_folder = Playbooks::load_dir(Path::new("playbooks")).unwrap_or_else(|problems| {
        let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        panic!(
            "shipped playbooks do not lint clean:\n{}",
            listed.join("\n")
        )
    });
    let builtin = Playbooks::builtin();
    assert_eq!(from_folder.names(), SHIPPED);
    assert_eq!(builtin.names(), SHIPPED);
    // Same files, same content: the compiled-in copies are the folder's.
    assert_eq!(from_folder, builtin);
    assert_eq!(Playbooks::load(None).unwrap(), builtin);
    for playbook in builtin.all() {
        assert_eq!(playbook.file, format!("playbooks/{}.yaml", playbook.name));
        assert!(!playbook.description.is_empty(), "{}", playbook.name);
        assert!(
            !playbook.symptoms.is_empty(),
            "{} has no symptoms",
            playbook.name
        );
        assert!(
            !playbook.severities.is_empty(),
            "{} has no severities",
            playbook.name
        );
    }
}

#[test]
fn every_step_renders_to_a_valid_action_with_the_defaults() {
    for playbook in Playbooks::builtin().all() {
        let bound = playbook
            .bind(&BTreeMap::new())
            .unwrap_or_else(|e| panic!("{}: {e}", playbook.name));
        for (index, step) in playbook.steps.iter().enumerate() {
            let action = playbook
                .action(index, &bound, &incident())
                .unwrap_or_else(|e| panic!("{}: {e}", playbook.name));
            assert_eq!(action.kind, step.action);
            if step.action.mutating() {
                assert!(
                    step.confirm,
                    "{} step {} must confirm",
                    playbook.name, step.name
                );
            }
            if let Some(namespace) = action.arg("namespace") {
                assert_eq!(namespace, "stock-analysis-system", "{}", playbook.name);
            }
        }
    }
}

#[test]
fn shipped_playbooks_follow_the_runbook() {
    let set = Playbooks::builtin();
    let kinds = |name: &str| -> Vec<ActionKind> {
        set.get(name)
            .unwrap()
            .steps
            .iter()
            .map(|s| s.action)
            .collect()
    };
    use ActionKind::*;
    assert_eq!(
        kinds("api-not-responding"),
        [
            Pods,
            Logs,
            Top,
            RolloutStatus,
            Endpoints,
            Probe,
            Restart,
            Scale
        ]
    );
    assert_eq!(
        kinds("database-connection-issues"),
        [Pods, Logs, Events, Endpoints, Probe]
    );
    assert_eq!(kinds("high-memory-usage"), [Top, Pods, Events, Scale]);
    let health = kinds("system-health-check");
    assert!(health.iter().all(|k| !k.mutating()), "{health:?}");
    for kind in [Nodes, Pods, Endpoints, Events, Top, Probe] {
        assert!(health.contains(&kind), "{kind}");
    }
    assert!(kinds("restart-api").contains(&Restart));

    // Defaults and bounds from "Scaling Procedures": API 3 -> 5 (3-10), workers 3 -> 8.
    for (name, deployment, default) in [
        ("scale-api", "stock-analysis-api", "5"),
        ("scale-workers", "stock-analysis-worker", "8"),
    ] {
        let playbook = set.get(name).unwrap();
        let bound = playbook.bind(&BTreeMap::new()).unwrap();
        let scale = playbook
            .steps
            .iter()
            .position(|s| s.action == Scale)
            .unwrap();
        let action = playbook.action(scale, &bound, &incident()).unwrap();
        assert_eq!(action.arg("deployment"), Some(deployment));
        assert_eq!(action.arg("replicas"), Some(default));
        for bad in [
            "replicas=2",
            "replicas=11",
            "replicas=-1",
            "replicas=99999",
            "replicas=five",
        ] {
            let err = playbook.bind(&parse_arguments(bad).unwrap()).unwrap_err();
            assert!(err.contains("`replicas` must be"), "{name} {bad}: {err}");
            assert!(
                err.contains(&format!("replicas (integer 3–10, default {default})")),
                "{err}"
            );
        }
    }
}

#[test]
fn chat_arguments_bind_and_render() {
    let set = Playbooks::builtin();
    let playbook = set.get("scale-api").unwrap();
    let bound = playbook
        .bind(&parse_arguments("replicas=7").unwrap())
        .unwrap();
    let action = playbook.action(1, &bound, &incident()).unwrap();
    assert_eq!(
        action.describe(),
        "scale deployment=stock-analysis-api namespace=stock-analysis-system replicas=7"
    );
    // Namespace injection is refused before anything renders.
    for words in [
        "namespace=../kube-system",
        "namespace=\"kube-system --all\"",
        "namespace=Kube-System",
    ] {
        let err = playbook.bind(&parse_arguments(words).unwrap()).unwrap_err();
        assert!(
            err.contains("`namespace` must match the pattern"),
            "{words}: {err}"
        );
    }
    let err = playbook
        .bind(&parse_arguments("replica=7").unwrap())
        .unwrap_err();
    assert!(
        err.contains("scale-api has no parameter `replica`"),
        "{err}"
    );
    let err = set.find("scale-everything").unwrap_err();
    assert!(err.contains("known playbooks: api-not-responding"), "{err}");
}

#[test]
fn a_folder_replaces_the_builtin_set_and_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("check-pods.yaml"),
        "name: check-pods\ndescription: Pods.\nsteps:\n  - name: Pods\n    action: pods\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a playbook").unwrap();
    let set = Playbooks::load(Some(dir.path())).unwrap();
    assert_eq!(set.names(), ["check-pods"]);

    std::fs::write(
        dir.path().join("broken.yaml"),
        "name: broken\ndescription: Broken.\nsteps:\n  - name: Scale\n    action: scale\n    args: { deployment: api, replicas: \"{{count}}\" }\n    confirm: false\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("misnamed.yaml"),
        "name: other\ndescription: x\nsteps:\n  - name: Nodes\n    action: nodes\n",
    )
    .unwrap();
    let problems = Playbooks::load_dir(dir.path()).unwrap_err();
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let broken = dir.path().join("broken.yaml").display().to_string();
    let misnamed = dir.path().join("misnamed.yaml").display().to_string();
    assert_eq!(shown.len(), 3, "{shown:#?}");
    assert!(
        shown[0].starts_with(&format!(
            "{broken}:6: step 1 (Scale): argument `replicas` names `count`"
        )),
        "{shown:#?}"
    );
    assert!(
        shown[1].starts_with(&format!(
            "{broken}:7: step 1 (Scale): `confirm: false` is not allowed"
        )),
        "{shown:#?}"
    );
    assert!(
        shown[2].starts_with(&format!(
            "{misnamed}:1: the playbook is named `other` but its file is `misnamed`"
        )),
        "{shown:#?}"
    );

    let missing = Playbooks::load(Some(&dir.path().join("nope"))).unwrap_err();
    assert!(
        missing[0]
            .message
            .contains("cannot read the playbooks folder"),
        "{missing:?}"
    );
}
