//! Runbook actions: what each does, which arguments it takes, and the checks on them that
//! hold wherever an action comes from (a chat command, a playbook step).

use std::collections::BTreeMap;
use std::fmt;

/// Every action warroom can run against a cluster (or, for `probe`, a URL).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Pods of a deployment or label selector: phase, readiness, restarts, age.
    Pods,
    /// Recent events of a namespace (or one object), newest first.
    Events,
    /// The last lines of the logs of a deployment's pods.
    Logs,
    /// Pod or node resource usage from metrics.k8s.io.
    Top,
    /// A deployment's rollout status.
    RolloutStatus,
    /// The endpoints of a service.
    Endpoints,
    /// Node readiness.
    Nodes,
    /// An HTTP health probe of a configured URL.
    Probe,
    /// Scale a deployment to N replicas.
    Scale,
    /// Rollout restart of a deployment.
    Restart,
    /// Delete one pod.
    DeletePod,
}

impl ActionKind {
    pub const ALL: [ActionKind; 11] = [
        ActionKind::Pods,
        ActionKind::Events,
        ActionKind::Logs,
        ActionKind::Top,
        ActionKind::RolloutStatus,
        ActionKind::Endpoints,
        ActionKind::Nodes,
        ActionKind::Probe,
        ActionKind::Scale,
        ActionKind::Restart,
        ActionKind::DeletePod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Pods => "pods",
            ActionKind::Events => "events",
            ActionKind::Logs => "logs",
            ActionKind::Top => "top",
            ActionKind::RolloutStatus => "rollout_status",
            ActionKind::Endpoints => "endpoints",
            ActionKind::Nodes => "nodes",
            ActionKind::Probe => "probe",
            ActionKind::Scale => "scale",
            ActionKind::Restart => "restart",
            ActionKind::DeletePod => "delete_pod",
        }
    }

    pub fn parse(text: &str) -> Option<ActionKind> {
        let text = text.trim().to_ascii_lowercase().replace('-', "_");
        ActionKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether it changes the cluster (and so always needs a dry run and a confirmation).
    pub fn mutating(self) -> bool {
        matches!(
            self,
            ActionKind::Scale | ActionKind::Restart | ActionKind::DeletePod
        )
    }

    /// Required and optional arguments.
    pub fn arguments(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ActionKind::Pods => (&[], &["namespace", "deployment", "selector"]),
            ActionKind::Events => (&[], &["namespace", "object", "limit"]),
            ActionKind::Logs => (&["deployment"], &["namespace", "container", "lines"]),
            ActionKind::Top => (&[], &["namespace", "of"]),
            ActionKind::RolloutStatus => (&["deployment"], &["namespace"]),
            ActionKind::Endpoints => (&["service"], &["namespace"]),
            ActionKind::Nodes => (&[], &[]),
            ActionKind::Probe => (&["target"], &["timeout"]),
            ActionKind::Scale => (&["deployment", "replicas"], &["namespace"]),
            ActionKind::Restart => (&["deployment"], &["namespace"]),
            ActionKind::DeletePod => (&["pod"], &["namespace"]),
        }
    }

    /// One line of help: `scale deployment=NAME replicas=N [namespace=NS]`.
    pub fn usage(self) -> String {
        let (required, optional) = self.arguments();
        let mut parts = vec![self.as_str().to_string()];
        parts.extend(required.iter().map(|a| format!("{a}={}", placeholder(a))));
        parts.extend(optional.iter().map(|a| format!("[{a}={}]", placeholder(a))));
        parts.join(" ")
    }
}

fn placeholder(arg: &str) -> &'static str {
    match arg {
        "replicas" | "lines" | "limit" => "N",
        "timeout" => "DURATION",
        "of" => "pods|nodes",
        "selector" => "KEY=VALUE,…",
        "object" => "KIND/NAME",
        _ => "NAME",
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action with checked arguments.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    pub args: BTreeMap<String, String>,
}

/// Largest replica count accepted anywhere (deployment bounds are checked by the guard).
pub const MAX_REPLICAS: i32 = 1_000;
/// Most log lines one call returns.
pub const MAX_LOG_LINES: i64 = 5_000;

/// A Kubernetes name (RFC 1123 label: lowercase letters, digits, `-`, at most 63, starting
/// and ending alphanumeric). Namespaces, deployments, services and containers are labels;
/// pod names may be subdomains (dots allowed, at most 253).
pub fn valid_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

pub fn valid_subdomain(text: &str) -> bool {
    !text.is_empty() && text.len() <= 253 && text.split('.').all(valid_label)
}

/// `app=api,tier in (web)` is more than warroom needs: `key=value` pairs joined by commas.
pub fn valid_selector(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 256
        && text.split(',').all(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                let key = k.rsplit('/').next().unwrap_or(k);
                !key.is_empty()
                    && key.len() <= 63
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    && k.len() <= 253
                    && v.len() <= 63
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            })
        })
}

impl Action {
    /// Check the arguments: all required present, none unknown, each well-formed.
    pub fn new(kind: ActionKind, args: BTreeMap<String, String>) -> Result<Action, String> {
        let (required, optional) = kind.arguments();
        for name in args.keys() {
            if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
                return Err(format!(
                    "{kind} has no argument `{}`; usage: {}",
                    name.chars().take(40).collect::<String>(),
                    kind.usage()
                ));
            }
        }
        for name in required {
            if !args.contains_key(*name) {
                return Err(format!("{kind} needs {name}=…; usage: {}", kind.usage()));
            }
        }
        for (name, value) in &args {
            check_argument(name, value)?;
        }
        if kind == ActionKind::Pods
            && args.contains_key("deployment")
            && args.contains_key("selector")
        {
            return Err("pods takes deployment=… or selector=…, not both".into());
        }
        Ok(Action { kind, args })
    }

    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args.get(name).map(String::as_str)
    }

    /// `scale deployment=api replicas=5 namespace=prod`.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.kind.to_string()];
        parts.extend(self.args.iter().map(|(k, v)| format!("{k}={v}")));
        parts.join(" ")
    }
}

/// The format check of one argument value.
pub fn check_argument(name: &str, value: &str) -> Result<(), String> {
    let shown: String = value.chars().take(60).collect();
    let ok = match name {
        "namespace" | "deployment" | "service" | "container" | "target" => valid_label(value),
        "pod" => valid_subdomain(value),
        "selector" => valid_selector(value),
        "object" => value.split_once('/').is_some_and(|(kind, name)| {
            valid_label(&kind.to_ascii_lowercase()) && valid_subdomain(name)
        }),
        "replicas" => {
            return match value.parse::<i64>() {
                Ok(n) if (0..=i64::from(MAX_REPLICAS)).contains(&n) => Ok(()),
                Ok(n) => Err(format!(
                    "replicas must be between 0 and {MAX_REPLICAS}, not {n}"
                )),
                Err(_) => Err(format!("replicas must be a whole number, not `{shown}`")),
            };
        }
        "lines" | "limit" => {
            return match value.parse::<i64>() {
                Ok(n) if (1..=MAX_LOG_LINES).contains(&n) => Ok(()),
                _ => Err(format!(
                    "{name} must be a whole number from 1 to {MAX_LOG_LINES}, not `{shown}`"
                )),
            };
        }
        "of" => matches!(value, "pods" | "nodes"),
        "timeout" => humantime::parse_duration(value).is_ok_and(|d| {
            d >= std::time::Duration::from_millis(100) && d <= std::time::Duration::from_secs(60)
        }),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{shown}` is not a valid {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn arguments_are_checked() {
        assert!(
            Action::new(
                ActionKind::Scale,
                args(&[("deployment", "api"), ("replicas", "5")])
            )
            .is_ok()
        );
        for (kind, bad, complaint) in [
            (
                ActionKind::Scale,
                args(&[("deployment", "api")]),
                "needs replicas",
            ),
            (
                ActionKind::Scale,
                args(&[("deployment", "api"), ("replicas", "-1")]),
                "between 0",
            ),
            (
                ActionKind::Scale,
                args(&[("deployment", "api"), ("replicas", "99999")]),
                "between 0",
            ),
            (
                ActionKind::Scale,
                args(&[("deployment", "api"), ("replicas", "five")]),
                "whole number",
            ),
            (
                ActionKind::Pods,
                args(&[("namespace", "../kube-system")]),
                "not a valid namespace",
            ),
            (
                ActionKind::Pods,
                args(&[("namespace", "Kube-System")]),
                "not a valid namespace",
            ),
            (
                ActionKind::Pods,
                args(&[("shell", "rm -rf")]),
                "no argument `shell`",
            ),
            (
                ActionKind::Logs,
                args(&[("deployment", "api"), ("lines", "0")]),
                "from 1",
            ),
            (
                ActionKind::Pods,
                args(&[("deployment", "a"), ("selector", "app=a")]),
                "not both",
            ),
        ] {
            let err = Action::new(kind, bad).unwrap_err();
            assert!(err.contains(complaint), "{err}");
        }
        assert_eq!(
            ActionKind::parse("rollout-status"),
            Some(ActionKind::RolloutStatus)
        );
        assert!(ActionKind::Scale.mutating() && !ActionKind::Pods.mutating());
        assert_eq!(
            ActionKind::Scale.usage(),
            "scale deployment=NAME replicas=N [namespace=NAME]"
        );
    }
}
