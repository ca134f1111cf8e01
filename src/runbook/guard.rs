//! The guard: who may run which action in which namespace, the namespace allowlist, replica
//! bounds, and the rules a confirmation of a mutating action must satisfy. Enforced here, on
//! every path (chat command, playbook step, button), not only in what the chat shows.

use super::action::{Action, ActionKind};
use crate::core::{Severity, UserRef};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the Kubernetes API is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSource {
    /// In-cluster service account if present, else kubeconfig.
    Auto,
    InCluster,
    Kubeconfig,
    /// An API server URL used without credentials (`kubectl proxy`, tests).
    Url(String),
    /// No cluster: runbook commands say so.
    None,
}

/// One role: who, which actions, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    /// Everyone has this role.
    pub everyone: bool,
    pub users: Vec<UserRef>,
    /// Chat user groups (Slack `S…` ids) whose members have this role.
    pub groups: Vec<String>,
    pub actions: Vec<ActionKind>,
    /// Empty: every allowed namespace.
    pub namespaces: Vec<String>,
}

/// The `[runbooks]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunbookConfig {
    pub cluster: ClusterSource,
    pub context: Option<String>,
    pub namespaces: Vec<String>,
    pub default_namespace: String,
    pub confirm_within: Duration,
    pub p0_second_person: bool,
    pub timeout: std::time::Duration,
    pub playbooks_dir: Option<PathBuf>,
    /// Deployment → (min, max) replicas.
    pub bounds: BTreeMap<String, (i32, i32)>,
    pub probes: BTreeMap<String, url::Url>,
    pub roles: Vec<Role>,
}

/// The guard over a configuration.
#[derive(Clone, Debug)]
pub struct Guard {
    pub config: RunbookConfig,
}

impl Guard {
    pub fn new(config: RunbookConfig) -> Guard {
        Guard { config }
    }

    /// The action with its namespace filled in (the default when it names none), if the
    /// namespace is on the allowlist; a probe's target must be a configured probe.
    pub fn resolve(&self, action: &Action) -> Result<Action, String> {
        let mut action = action.clone();
        if action.kind == ActionKind::Probe {
            let target = action.arg("target").unwrap_or_default();
            if !self.config.probes.contains_key(target) {
                return Err(format!(
                    "no probe named `{target}`; configured: {}",
                    self.probe_names()
                ));
            }
            return Ok(action);
        }
        if action.kind == ActionKind::Nodes {
            return Ok(action);
        }
        let namespace = action
            .arg("namespace")
            .unwrap_or(&self.config.default_namespace)
            .to_string();
        if !self.config.namespaces.contains(&namespace) {
            return Err(format!(
                "namespace `{namespace}` is not one warroom may touch (runbooks.namespaces: {})",
                self.config.namespaces.join(", ")
            ));
        }
        action.args.insert("namespace".into(), namespace);
        Ok(action)
    }

    fn probe_names(&self) -> String {
        if self.config.probes.is_empty() {
            "none".into()
        } else {
            self.config
                .probes
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// Replica bounds of a scale: the deployment must have bounds and the count be inside.
    pub fn check_bounds(&self, action: &Action) -> Result<Option<(i32, i32)>, String> {
        if action.kind != ActionKind::Scale {
            return Ok(None);
        }
        let deployment = action.arg("deployment").unwrap_or_default();
        let replicas: i32 = action
            .arg("replicas")
            .and_then(|r| r.parse().ok())
            .ok_or("replicas must be a whole number")?;
        let Some(&(min, max)) = self.config.bounds.get(deployment) else {
            return Err(format!(
                "{deployment} has no replica bounds in runbooks.bounds, so warroom will not scale it"
            ));
        };
        if replicas < min || replicas > max {
            return Err(format!(
                "{replicas} replicas is outside the bounds of {deployment} ({min}–{max})"
            ));
        }
        Ok(Some((min, max)))
    }

    /// The roles that let `user` (a member of `groups`) run `kind` in `namespace`.
    pub fn allowed(
        &self,
        user: &UserRef,
        groups: &[String],
        kind: ActionKind,
        namespace: Option<&str>,
    ) -> Result<(), String> {
        let allows = |role: &Role| {
            (role.everyone
                || role.users.contains(user)
                || role.groups.iter().any(|g| groups.contains(g)))
                && role.actions.contains(&kind)
                && namespace.is_none_or(|ns| {
                    role.namespaces.is_empty() || role.namespaces.iter().any(|n| n == ns)
                })
        };
        if self.config.roles.iter().any(allows) {
            Ok(())
        } else {
            Err(format!(
                "@{user} may not run {kind}{}: no role in runbooks.roles allows it",
                namespace.map(|ns| format!(" in {ns}")).unwrap_or_default()
            ))
        }
    }

    /// The groups any role names (to look up a user's memberships once).
    pub fn role_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .config
            .roles
            .iter()
            .flat_map(|r| r.groups.iter().cloned())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// When a confirmation asked for now expires.
    pub fn expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.config.confirm_within
    }

    /// Whether `confirmer` may confirm a request by `requester` on an incident of `severity`
    /// (the role check is separate).
    pub fn confirmer_rule(
        &self,
        requester: &UserRef,
        confirmer: &UserRef,
        severity: Severity,
    ) -> Result<(), String> {
        if self.config.p0_second_person && severity == Severity::P0 && requester == confirmer {
            return Err(format!(
                "this is a P0 incident: a second person must confirm what @{requester} asked for"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn config() -> RunbookConfig {
        crate::config::load(None).unwrap().runbooks
    }

    fn action(kind: ActionKind, pairs: &[(&str, &str)]) -> Action {
        Action::new(
            kind,
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn user(name: &str) -> UserRef {
        UserRef::parse(name).unwrap()
    }

    #[test]
    fn namespaces_outside_the_allowlist_and_unknown_probes_are_refused() {
        let guard = Guard::new(config());
        let resolved = guard
            .resolve(&action(
                ActionKind::Pods,
                &[("deployment", "stock-analysis-api")],
            ))
            .unwrap();
        assert_eq!(resolved.arg("namespace"), Some("stock-analysis-system"));
        let err = guard
            .resolve(&action(ActionKind::Pods, &[("namespace", "kube-system")]))
            .unwrap_err();
        assert!(err.contains("not one warroom may touch"), "{err}");
        let err = guard
            .resolve(&action(ActionKind::Probe, &[("target", "nope")]))
            .unwrap_err();
        assert!(err.contains("configured: api"), "{err}");
    }

    #[test]
    fn bounds_and_roles() {
        let mut config = config();
        config.roles[1].users.push(user("olivia"));
        let guard = Guard::new(config);
        let scale = |n: &str| {
            action(
                ActionKind::Scale,
                &[("deployment", "stock-analysis-api"), ("replicas", n)],
            )
        };
        assert_eq!(guard.check_bounds(&scale("5")), Ok(Some((3, 10))));
        assert!(
            guard
                .check_bounds(&scale("11"))
                .unwrap_err()
                .contains("(3–10)")
        );
        assert!(guard.check_bounds(&scale("2")).is_err());
        let other = action(
            ActionKind::Scale,
            &[("deployment", "redis"), ("replicas", "2")],
        );
        assert!(
            guard
                .check_bounds(&other)
                .unwrap_err()
                .contains("no replica bounds")
        );

        let ns = Some("stock-analysis-system");
        assert!(
            guard
                .allowed(&user("anyone"), &[], ActionKind::Pods, ns)
                .is_ok()
        );
        assert!(
            guard
                .allowed(&user("anyone"), &[], ActionKind::Scale, ns)
                .is_err()
        );
        assert!(
            guard
                .allowed(&user("olivia"), &[], ActionKind::Scale, ns)
                .is_ok()
        );
        let p0 = Severity::P0;
        assert!(
            guard
                .confirmer_rule(&user("olivia"), &user("olivia"), p0)
                .is_ok()
        );
        let mut strict = guard.config.clone();
        strict.p0_second_person = true;
        let strict = Guard::new(strict);
        assert!(
            strict
                .confirmer_rule(&user("olivia"), &user("olivia"), p0)
                .is_err()
        );
        assert!(
            strict
                .confirmer_rule(&user("olivia"), &user("olivia"), Severity::P1)
                .is_ok()
        );
        assert!(
            strict
                .confirmer_rule(&user("olivia"), &user("bob"), p0)
                .is_ok()
        );
    }
}
