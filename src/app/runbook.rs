//! The runbook engine: diagnostics, playbooks and changes behind confirmations. The guard
//! decides what may run; the cluster (kube-rs) runs it; every action, proposal, confirmation
//! and outcome is recorded in the incident's timeline and posted in its channel.
//!
//! A change (scale, restart, delete pod) first runs as a server-side dry run and becomes a
//! request in the store (pending, with an expiry and the state it is bound to). Confirming it
//! moves it to running exactly once (a compare-and-set on its state), re-reads the state, and
//! only then applies it. A playbook stops at a change and carries on after its confirmation.

use super::{App, Origin, unavailable};
use crate::core::decide;
use crate::core::views::{self, ChangeOutcome, ChangeView};
use crate::core::{Actor, Command, EventKind, Incident, Message, UserRef};
use crate::runbook::action::{Action, ActionKind};
use crate::runbook::guard::Guard;
use crate::runbook::kube::{Cluster, PriorState};
use crate::runbook::playbook::{self, Playbook, Playbooks};
use crate::runbook::redact::redact;
use crate::store::{Change, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::Instrument;

/// Characters of action output kept (the chat adapters cut further to their own limits).
const MAX_OUTPUT_CHARS: usize = 12_000;

/// What the runbook engine needs.
pub struct Runbooks {
    pub guard: Guard,
    /// `None`: no cluster configured; runbook commands say so.
    pub cluster: Option<Cluster>,
    pub playbooks: Playbooks,
    /// Answers "which of these groups is this user in" for roles that name chat groups
    /// (Slack user groups); `None` where the chat has no groups (the console).
    pub directory: Option<Arc<dyn Directory>>,
}

/// Chat group membership, for roles that name groups.
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    /// Which of `groups` `user` belongs to. A group that cannot be checked counts as not.
    async fn groups_of(&self, user: &UserRef, groups: &[String]) -> Vec<String>;
}

/// Several directories (Slack and Discord): a user belongs to the groups any of them says.
pub struct Directories(pub Vec<Arc<dyn Directory>>);

#[async_trait::async_trait]
impl Directory for Directories {
    async fn groups_of(&self, user: &UserRef, groups: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for directory in &self.0 {
            for group in directory.groups_of(user, groups).await {
                if !found.contains(&group) {
                    found.push(group);
                }
            }
        }
        found
    }
}

/// What to record on an incident.
struct Note {
    actor: Actor,
    events: Vec<EventKind>,
    posts: Vec<Message>,
    timers: Vec<crate::core::TimerRequest>,
    /// The timer this note fires (closed in the same transaction).
    fired_timer: Option<i64>,
}

/// A playbook to carry on with after a confirmed change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Continuation {
    playbook: String,
    params: BTreeMap<String, String>,
    next: usize,
    /// The step's own timeout, for its dry run and its apply.
    #[serde(default)]
    step_timeout: Option<std::time::Duration>,
}

/// The body of a runbook request in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Proposal {
    action: Action,
    requested_by: UserRef,
    change: String,
    prior: PriorState,
    bounds: Option<(i32, i32)>,
    continuation: Option<Continuation>,
    /// The incident's severity when the change was asked for: the two-person rule holds if
    /// the incident was P0 then or is P0 now.
    severity: crate::core::Severity,
}

/// How long one cluster call of a change may take: its playbook step's own timeout, or
/// `default` (`runbooks.timeout`).
fn timeout_of(
    continuation: Option<&Continuation>,
    default: std::time::Duration,
) -> std::time::Duration {
    continuation.and_then(|c| c.step_timeout).unwrap_or(default)
}

impl Proposal {
    fn timeout(&self, default: std::time::Duration) -> std::time::Duration {
        timeout_of(self.continuation.as_ref(), default)
    }
}

fn refusal(text: impl Into<String>) -> Message {
    views::refusal(text.into())
}

/// Cut output to a size worth storing and posting, with a note.
fn cut(output: &str) -> String {
    let total = output.chars().count();
    if total <= MAX_OUTPUT_CHARS {
        return output.to_string();
    }
    let kept: String = output.chars().take(MAX_OUTPUT_CHARS).collect();
    format!(
        "{kept}\n… ({} more characters not shown)",
        total - MAX_OUTPUT_CHARS
    )
}

/// A line for the timeline: a one-line answer as it is; for a table or logs, how many lines
/// and the first that is not a header.
fn summary(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let shown = |l: &str| {
        l.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(160)
            .collect::<String>()
    };
    match lines.as_slice() {
        [] => "no output".into(),
        [one] => shown(one),
        [first, rest @ ..] => {
            let header = (first.chars().any(|c| c.is_alphabetic())
                && first.chars().all(|c| !c.is_lowercase()))
                || first.starts_with("==>");
            let line = if header { rest[0] } else { first };
            format!(
                "{} lines; {}",
                lines.len() - usize::from(header),
                shown(line)
            )
        }
    }
}

impl App {
    /// `runbooks.timeout`, or 30 s where runbooks are no longer configured (a change
    /// settled after a restart without them).
    fn runbook_timeout(&self) -> std::time::Duration {
        self.runbooks()
            .map(|r| r.guard.config.timeout)
            .unwrap_or(std::time::Duration::from_secs(30))
    }

    fn runbooks(&self) -> Result<&Runbooks, Message> {
        self.runbooks.as_deref().ok_or_else(|| {
            refusal(
                "Runbooks are not set up in this warroom (see [runbooks] in the configuration).",
            )
        })
    }

    /// The engine and its cluster, or the refusal that says which is missing.
    fn engine(&self) -> Result<(&Runbooks, &Cluster), Message> {
        Ok((self.runbooks()?, self.cluster()?))
    }

    fn cluster(&self) -> Result<&Cluster, Message> {
        self.runbooks()?.cluster.as_ref().ok_or_else(|| {
            refusal(
                "No Kubernetes cluster is configured (runbooks.cluster), so runbook actions cannot run here.",
            )
        })
    }

    /// The role groups `user` is in.
    async fn groups(&self, user: &UserRef) -> Vec<String> {
        let Ok(runbooks) = self.runbooks() else {
            return Vec::new();
        };
        let candidates = runbooks.guard.role_groups();
        match (&runbooks.directory, candidates.is_empty()) {
            (Some(directory), false) => directory.groups_of(user, &candidates).await,
            _ => Vec::new(),
        }
    }

    /// `playbooks`, `run`, `diag`, `scale`, `restart`, `confirm`, `cancel`, `undo` typed in
    /// `incident`'s channel (`playbooks` anywhere).
    pub(super) async fn runbook_command(
        &self,
        origin: &Origin,
        incident: Option<Incident>,
        command: Command,
    ) -> Result<Option<Message>, StoreError> {
        if let Some(incident) = &incident {
            tracing::Span::current().record("incident", tracing::field::display(incident.key));
        }
        let runbooks = match self.runbooks() {
            Ok(runbooks) => runbooks,
            Err(message) => return Ok(Some(message)),
        };
        if command == Command::Playbooks {
            let list: Vec<(String, String, String)> = runbooks
                .playbooks
                .all()
                .map(|p| (p.name.clone(), describe_playbook(p), parameters_text(p)))
                .collect();
            return Ok(Some(views::playbook_list(&list)));
        }
        let Some(incident) = incident else {
            return Ok(Some(refusal(
                "Runbook commands run in an incident's channel, so that what they do is recorded there.",
            )));
        };
        let actor = &origin.actor;
        match command {
            Command::Diag { action, args } => {
                let Some(kind) = ActionKind::parse(&action) else {
                    return Ok(Some(refusal(format!(
                        "There is no diagnostic `{}`. Known: {}.",
                        action.chars().take(40).collect::<String>(),
                        ActionKind::ALL
                            .iter()
                            .filter(|k| !k.mutating())
                            .map(|k| k.usage())
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ))));
                };
                if kind.mutating() {
                    return Ok(Some(refusal(format!(
                        "{kind} changes the cluster: use `/incident scale`, `/incident restart`, or a playbook, which ask for confirmation."
                    ))));
                }
                let action = match playbook::parse_arguments(&args)
                    .and_then(|args| Action::new(kind, args))
                {
                    Ok(action) => action,
                    Err(problem) => return Ok(Some(refusal(problem))),
                };
                self.run_read_only(&incident, actor, &action, None, None)
                    .await
                    .map(|(_, reply)| reply)
            }
            Command::Scale {
                deployment,
                replicas,
                namespace,
            } => {
                let mut args = BTreeMap::from([
                    ("deployment".to_string(), deployment),
                    ("replicas".to_string(), replicas),
                ]);
                if let Some(namespace) = namespace {
                    args.insert("namespace".into(), namespace);
                }
                match Action::new(ActionKind::Scale, args) {
                    Ok(action) => self.propose(&incident, actor, action, None).await,
                    Err(problem) => Ok(Some(refusal(problem))),
                }
            }
            Command::Restart {
                deployment,
                namespace,
            } => {
                let mut args = BTreeMap::from([("deployment".to_string(), deployment)]);
                if let Some(namespace) = namespace {
                    args.insert("namespace".into(), namespace);
                }
                match Action::new(ActionKind::Restart, args) {
                    Ok(action) => self.propose(&incident, actor, action, None).await,
                    Err(problem) => Ok(Some(refusal(problem))),
                }
            }
            Command::Run { playbook, args } => {
                let found = match runbooks.playbooks.find(&playbook) {
                    Ok(found) => found,
                    Err(problem) => return Ok(Some(refusal(problem))),
                };
                let params =
                    match playbook::parse_arguments(&args).and_then(|given| found.bind(&given)) {
                        Ok(params) => params,
                        Err(problem) => return Ok(Some(refusal(problem))),
                    };
                self.run_playbook(&incident, actor, found, &params, 0).await
            }
            Command::Confirm(id) => self.confirm(origin, id).await,
            Command::Cancel(id) => self.cancel(origin, id).await,
            Command::Undo(id) => self.undo(origin, id).await,
            _ => Ok(Some(refusal("Not a runbook command."))),
        }
    }

    /// A Confirm, Cancel or Undo button.
    pub(super) async fn runbook_button(
        &self,
        origin: &Origin,
        command: Command,
    ) -> Option<Message> {
        let name = command.name().name();
        let span = tracing::info_span!(
            "button",
            command = name,
            platform = origin.platform.as_str(),
            channel = %origin.channel,
            incident = tracing::field::Empty,
        );
        async {
            let result = match command {
                Command::Confirm(id) => self.confirm(origin, id).await,
                Command::Cancel(id) => self.cancel(origin, id).await,
                Command::Undo(id) => self.undo(origin, id).await,
                _ => Ok(Some(refusal("Not a runbook button."))),
            };
            self.metrics
                .command(name, if result.is_ok() { "ok" } else { "error" });
            result.unwrap_or_else(|error| Some(unavailable(&error)))
        }
        .instrument(span)
        .await
    }

    /// Record events and posts on an incident, re-reading it if another writer got there first.
    async fn record(
        &self,
        incident: &Incident,
        actor: &UserRef,
        events: Vec<EventKind>,
        posts: Vec<Message>,
    ) -> Result<(), StoreError> {
        let note = Note {
            actor: Actor::User(actor.clone()),
            events,
            posts,
            timers: Vec::new(),
            fired_timer: None,
        };
        self.record_note(incident, note).await
    }

    /// Record a note in one transaction (with the timer it plans or fires), re-reading the
    /// incident when another writer got there first.
    async fn record_note(&self, incident: &Incident, note: Note) -> Result<(), StoreError> {
        let mut current = incident.clone();
        for _ in 0..super::CONFLICT_RETRIES {
            let now = self.clock.now();
            let decision = decide::runbook_note(
                &current,
                &note.actor,
                note.events.clone(),
                note.posts.clone(),
                note.timers.clone(),
                now,
            );
            let change = Change {
                fired_timer: note.fired_timer.map(|id| (id, self.owner.as_str())),
                ..Change::new(&decision, Some(current.version), now)
            };
            match self.commit(change).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict(_)) => {
                    current = self
                        .store
                        .incident(incident.key)
                        .await?
                        .ok_or_else(|| StoreError::Conflict(incident.key.to_string()))?;
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict(incident.key.to_string()))
    }

    /// A change's settle timer came due: a request still "running" was being applied by a
    /// process that stopped; settle it from what the cluster shows. Returns whether it did.
    pub(super) async fn settle_change(
        &self,
        timer: &crate::store::Timer,
        id: i64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let found = match self.store.runbook_request(id).await? {
            Some(request) if request.state == "running" => {
                let incident = self.store.incident(request.incident).await?;
                let proposal: Option<Proposal> = serde_json::from_value(request.body).ok();
                incident.zip(proposal)
            }
            _ => None,
        };
        let Some((incident, proposal)) = found else {
            super::unless_lease_lost(self.store.discard_timer(timer.id, &self.owner, now).await)?;
            return Ok(false);
        };
        match self
            .finish_interrupted(&incident, &Actor::System, id, &proposal, Some(timer.id))
            .await
        {
            Err(lost @ StoreError::LeaseLost(_)) => {
                super::unless_lease_lost(Err(lost))?;
                Ok(false)
            }
            Err(other) => Err(other),
            Ok(_) => Ok(true),
        }
    }

    /// A change's expiry timer came due: if nobody decided it, it expires now, and the channel
    /// is told. Returns whether it expired.
    pub(super) async fn expire_change(
        &self,
        timer: &crate::store::Timer,
        id: i64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let request = self.store.runbook_request(id).await?;
        let incident = match &request {
            Some(r) => self.store.incident(r.incident).await?,
            None => None,
        };
        let (Some(request), Some(incident)) = (request, incident) else {
            super::unless_lease_lost(self.store.discard_timer(timer.id, &self.owner, now).await)?;
            return Ok(false);
        };
        // Expiring is two writes: the request's state, then the notice with this timer marked
        // fired. A request found expired while this timer is still pending is one whose
        // notice was not recorded (a store error or a crash in between), unless a late
        // confirmation expired it and said so in the timeline: the notice goes out now.
        let expires = match request.state.as_str() {
            "pending" => {
                self.store
                    .transition_runbook_request(id, "pending", "expired", None, now)
                    .await?
            }
            "expired" => !self
                .store
                .timeline(incident.key)
                .await?
                .iter()
                .any(|event| matches!(event.kind, EventKind::ChangeDropped { request, .. } if request == id)),
            "running" => return self.settle_later(timer, &request, &incident).await,
            _ => false,
        };
        if !expires {
            super::unless_lease_lost(self.store.discard_timer(timer.id, &self.owner, now).await)?;
            return Ok(false);
        }
        let proposal: Option<Proposal> = serde_json::from_value(request.body).ok();
        let described = proposal
            .as_ref()
            .map(|p| p.action.describe())
            .unwrap_or_else(|| format!("change #{id}"));
        let stopped = proposal.as_ref().map(playbook_stopped).unwrap_or_default();
        let note = Note {
            actor: Actor::System,
            events: vec![EventKind::ChangeDropped {
                request: id,
                action: described.clone(),
                why: "nobody confirmed it in time".into(),
            }],
            posts: vec![views::notice_in_channel(format!(
                "{}: change #{id} ({described}) expired unconfirmed; nothing was changed.{stopped}",
                incident.key
            ))],
            timers: Vec::new(),
            fired_timer: Some(timer.id),
        };
        match self.record_note(&incident, note).await {
            Err(lost @ StoreError::LeaseLost(_)) => {
                super::unless_lease_lost(Err(lost))?;
                Ok(false)
            }
            other => other.map(|()| true),
        }
    }

    /// A change's expiry timer found it confirmed and still running: confirming is two
    /// writes (the state, then the note with its settle timer), so plan a settle timer of
    /// our own, due when the apply must be over however late before expiry it was
    /// confirmed (at once if this timer fired later than that). A second settle timer is
    /// harmless: the first to find the request settled or settling it wins, and the other
    /// does nothing. Returns false (nothing announced).
    async fn settle_later(
        &self,
        timer: &crate::store::Timer,
        request: &crate::store::RunbookRequest,
        incident: &Incident,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let Ok(proposal) = serde_json::from_value::<Proposal>(request.body.clone()) else {
            super::unless_lease_lost(self.store.discard_timer(timer.id, &self.owner, now).await)?;
            return Ok(false);
        };
        let note = Note {
            actor: Actor::System,
            events: Vec::new(),
            posts: Vec::new(),
            timers: vec![crate::core::TimerRequest {
                kind: crate::core::TimerKind::ChangeSettle {
                    request: request.id,
                },
                due_at: (request.expires_at
                    + settle_delay(proposal.timeout(self.runbook_timeout())))
                .max(now),
                fence: 0,
            }],
            fired_timer: Some(timer.id),
        };
        match self.record_note(incident, note).await {
            Err(lost @ StoreError::LeaseLost(_)) => super::unless_lease_lost(Err(lost)),
            other => other,
        }
        .map(|()| false)
    }

    /// Check and run a read-only action now; its output is redacted, recorded and posted.
    /// Returns whether it worked and the direct reply (a refusal), if any.
    async fn run_read_only(
        &self,
        incident: &Incident,
        actor: &UserRef,
        action: &Action,
        step: Option<&str>,
        timeout: Option<std::time::Duration>,
    ) -> Result<(bool, Option<Message>), StoreError> {
        let (runbooks, cluster) = match self.engine() {
            Ok(engine) => engine,
            Err(m) => return Ok((false, Some(m))),
        };
        let guard = &runbooks.guard;
        let groups = self.groups(actor).await;
        let action = match guard.resolve(action).and_then(|a| {
            guard
                .allowed(actor, &groups, a.kind, a.arg("namespace"))
                .map(|()| a)
        }) {
            Ok(action) => action,
            Err(problem) => return Ok((false, Some(refusal(problem)))),
        };
        let timeout = timeout.unwrap_or(guard.config.timeout);
        let ran = cluster.run(&action, timeout, self.clock.now()).await;
        self.metrics.kubernetes_call(ran.is_ok());
        let (ok, output) = match ran {
            Ok(output) => (true, cut(&redact(&output))),
            Err(error) => (false, cut(&redact(&error.to_string()))),
        };
        let described = action.describe();
        let event = EventKind::RunbookRan {
            action: described.clone(),
            ok,
            outcome: summary(&output),
        };
        let post = views::runbook_output(
            incident,
            &Actor::User(actor.clone()),
            &described,
            step,
            ok,
            &output,
        );
        self.record(incident, actor, vec![event], vec![post])
            .await?;
        tracing::info!(incident = %incident.key, action = %described, ok, "runbook action ran");
        Ok((ok, None))
    }

    /// Run a playbook from step `from`: read-only steps now, up to the first change, which
    /// is proposed (the rest runs after its confirmation).
    async fn run_playbook(
        &self,
        incident: &Incident,
        actor: &UserRef,
        playbook: &Playbook,
        params: &BTreeMap<String, String>,
        from: usize,
    ) -> Result<Option<Message>, StoreError> {
        let context = playbook::incident_context(
            &incident.key.to_string(),
            incident.severity,
            &incident.title,
        );
        for (index, step) in playbook.steps.iter().enumerate().skip(from) {
            let action = match playbook.action(index, params, &context) {
                Ok(action) => action,
                Err(problem) => {
                    let event = EventKind::ChangeRefused {
                        action: format!("{} step {}", playbook.name, index + 1),
                        reason: problem.clone(),
                    };
                    self.record(incident, actor, vec![event], vec![]).await?;
                    return Ok(Some(refusal(format!(
                        "{} stopped at step {} ({}): {problem}",
                        playbook.name,
                        index + 1,
                        step.name
                    ))));
                }
            };
            if step.confirm || action.kind.mutating() {
                let continuation = Continuation {
                    playbook: playbook.name.clone(),
                    params: params.clone(),
                    next: index + 1,
                    step_timeout: Some(step.timeout),
                };
                return self
                    .propose(incident, actor, action, Some(continuation))
                    .await;
            }
            let (ok, reply) = self
                .run_read_only(
                    incident,
                    actor,
                    &action,
                    Some(&step.name),
                    Some(step.timeout),
                )
                .await?;
            if reply.is_some() {
                return Ok(reply);
            }
            if !ok && !step.continue_on_failure {
                return Ok(Some(refusal(format!(
                    "{} stopped at step {} ({}): it failed, and the step says to stop.",
                    playbook.name,
                    index + 1,
                    step.name
                ))));
            }
        }
        Ok(None)
    }

    /// Check a change, dry-run it, and post it for confirmation.
    async fn propose(
        &self,
        incident: &Incident,
        actor: &UserRef,
        action: Action,
        continuation: Option<Continuation>,
    ) -> Result<Option<Message>, StoreError> {
        let (runbooks, cluster) = match self.engine() {
            Ok(engine) => engine,
            Err(m) => return Ok(Some(m)),
        };
        if !incident.status.is_open() {
            return Ok(Some(refusal(format!(
                "{} is resolved: warroom does not change the cluster for a resolved incident.",
                incident.key
            ))));
        }
        let guard = &runbooks.guard;
        let groups = self.groups(actor).await;
        let checked = guard.resolve(&action).and_then(|a| {
            guard.allowed(actor, &groups, a.kind, a.arg("namespace"))?;
            let bounds = guard.check_bounds(&a)?;
            Ok((a, bounds))
        });
        let (action, bounds) = match checked {
            Ok(checked) => checked,
            Err(problem) => {
                let event = EventKind::ChangeRefused {
                    action: action.describe(),
                    reason: problem.clone(),
                };
                self.record(incident, actor, vec![event], vec![]).await?;
                return Ok(Some(refusal(problem)));
            }
        };
        let now = self.clock.now();
        let timeout = timeout_of(continuation.as_ref(), guard.config.timeout);
        let preview = cluster.preview(&action, timeout, now).await;
        self.metrics.kubernetes_call(preview.is_ok());
        let preview = match preview {
            Ok(preview) => preview,
            Err(error) => {
                let reason = redact(&format!("the dry run failed: {error}"));
                let event = EventKind::ChangeRefused {
                    action: action.describe(),
                    reason: reason.clone(),
                };
                self.record(incident, actor, vec![event], vec![]).await?;
                return Ok(Some(refusal(format!(
                    "{}: {reason}. Nothing was changed.",
                    action.describe()
                ))));
            }
        };
        let expires = guard.expiry(now);
        let proposal = Proposal {
            action: action.clone(),
            requested_by: actor.clone(),
            change: preview.change.clone(),
            prior: preview.prior.clone(),
            bounds,
            continuation,
            severity: incident.severity,
        };
        let body = serde_json::to_value(&proposal).expect("proposals serialize");
        // The request and the timer that expires it are written together, so a stop before
        // the proposal below is recorded leaves nothing pending for ever: the timer closes
        // it (and says so) when it is due.
        let id = self
            .store
            .insert_runbook_request(incident.key, &body, expires, now)
            .await?;
        self.timers_changed.raise();
        let who_may = who_may_confirm(guard, action.kind, &proposal.requested_by, incident);
        let described = action.describe();
        let event = EventKind::ChangeProposed {
            request: id,
            action: described.clone(),
            change: preview.change.clone(),
            prior: preview.prior.describe(),
            expires_in_seconds: guard.config.confirm_within.num_seconds(),
        };
        let post = views::change_proposed(
            incident,
            &Actor::User(actor.clone()),
            ChangeView {
                request: id,
                action: &described,
                change: &preview.change,
                bounds,
                prior: &preview.prior.describe(),
                expires,
                who_may: &who_may,
            },
        );
        let note = Note {
            actor: Actor::User(actor.clone()),
            events: vec![event],
            posts: vec![post],
            timers: Vec::new(),
            fired_timer: None,
        };
        self.record_note(incident, note).await?;
        tracing::info!(incident = %incident.key, request = id, action = %described, "change proposed");
        Ok(None)
    }

    /// Request `id`, which must belong to the incident of the channel it is decided in.
    async fn load_request(
        &self,
        origin: &Origin,
        id: i64,
    ) -> Result<Result<(crate::store::RunbookRequest, Proposal, Incident), Message>, StoreError>
    {
        let Some(request) = self.store.runbook_request(id).await? else {
            return Ok(Err(refusal(format!("There is no change #{id}."))));
        };
        let here = self.store.incident_by_channel(&origin.channel).await?;
        if here.as_ref().map(|i| i.key) != Some(request.incident) {
            return Ok(Err(refusal(format!(
                "Change #{id} belongs to {}: decide it in that incident's channel.",
                request.incident
            ))));
        }
        let proposal: Proposal = match serde_json::from_value(request.body.clone()) {
            Ok(p) => p,
            Err(e) => return Err(StoreError::Corrupt(format!("runbook request {id}: {e}"))),
        };
        let Some(incident) = self.store.incident(request.incident).await? else {
            return Ok(Err(refusal(format!("Change #{id} has no incident."))));
        };
        Ok(Ok((request, proposal, incident)))
    }

    async fn confirm(&self, origin: &Origin, id: i64) -> Result<Option<Message>, StoreError> {
        let (runbooks, cluster) = match self.engine() {
            Ok(engine) => engine,
            Err(m) => return Ok(Some(m)),
        };
        let (request, proposal, incident) = match self.load_request(origin, id).await? {
            Ok(found) => found,
            Err(message) => return Ok(Some(message)),
        };
        let confirmer = &origin.actor;
        let described = proposal.action.describe();
        let guard = &runbooks.guard;
        // A request left running by a process that stopped mid-way: find out what happened.
        let timeout = proposal.timeout(guard.config.timeout);
        let stale_after = guard.config.confirm_within + settle_delay(timeout);
        if request.state == "running" && self.clock.now() > request.created_at + stale_after {
            return self
                .finish_interrupted(
                    &incident,
                    &Actor::User(confirmer.clone()),
                    id,
                    &proposal,
                    None,
                )
                .await;
        }
        if request.state != "pending" {
            let by = request
                .decided_by
                .as_deref()
                .map(|b| format!(" by @{b}"))
                .unwrap_or_default();
            return Ok(Some(refusal(format!(
                "Change #{id} is already {}{by}.",
                request.state
            ))));
        }
        let now = self.clock.now();
        // Too late: refused, and left to the expiry timer (which may be firing right now) to
        // expire and announce, so the drop is recorded once.
        if now >= request.expires_at {
            return Ok(Some(refusal(format!(
                "Change #{id} expired at {}; nothing was changed. Ask again for a fresh dry run.{}",
                views::format_time(request.expires_at),
                playbook_stopped(&proposal)
            ))));
        }
        let groups = self.groups(confirmer).await;
        let checks = guard
            .allowed(
                confirmer,
                &groups,
                proposal.action.kind,
                proposal.action.arg("namespace"),
            )
            .and_then(|()| {
                let severity = if proposal.severity == crate::core::Severity::P0 {
                    proposal.severity
                } else {
                    incident.severity
                };
                guard.confirmer_rule(&proposal.requested_by, confirmer, severity)
            })
            .and_then(|()| guard.check_bounds(&proposal.action).map(|_| ()));
        if let Err(problem) = checks {
            return Ok(Some(refusal(format!(
                "You cannot confirm change #{id}: {problem}"
            ))));
        }
        if !incident.status.is_open() {
            return Ok(Some(refusal(format!(
                "{} is resolved: change #{id} is not applied.",
                incident.key
            ))));
        }
        // Exactly one confirmation wins.
        if !self
            .store
            .transition_runbook_request(id, "pending", "running", Some(confirmer.as_str()), now)
            .await?
        {
            return Ok(Some(refusal(format!(
                "Change #{id} was decided by someone else just now."
            ))));
        }
        // Recorded before anything is applied, with a timer that settles the request from
        // the cluster if this process stops before it finishes. (Should it stop before this
        // is recorded, the expiry timer finds the request running and plans the settling.)
        let settle_at = self.clock.now() + settle_delay(timeout);
        self.record_note(
            &incident,
            Note {
                actor: Actor::User(confirmer.clone()),
                events: vec![EventKind::ChangeConfirmed {
                    request: id,
                    action: described.clone(),
                    confirmed_by: confirmer.clone(),
                }],
                posts: Vec::new(),
                timers: vec![crate::core::TimerRequest {
                    kind: crate::core::TimerKind::ChangeSettle { request: id },
                    due_at: settle_at,
                    fence: 0,
                }],
                fired_timer: None,
            },
        )
        .await?;
        // Bound to the state it was previewed against.
        let found = cluster.prior_state(&proposal.action, timeout).await;
        self.metrics.kubernetes_call(found.is_ok());
        match found {
            Ok(current) if current == proposal.prior => {}
            found => {
                let why = match found {
                    Ok(current) => format!(
                        "the state changed since its dry run: now {} (was {}); nothing was changed, ask again for a fresh dry run.{}",
                        current.describe(),
                        proposal.prior.describe(),
                        playbook_stopped(&proposal)
                    ),
                    Err(error) => redact(&format!(
                        "the current state could not be read ({error}); nothing was changed"
                    )),
                };
                self.store
                    .transition_runbook_request(id, "running", "failed", None, self.clock.now())
                    .await?;
                let event = EventKind::ChangeDropped {
                    request: id,
                    action: described.clone(),
                    why: why.clone(),
                };
                let post = views::change_result(
                    &incident,
                    ChangeOutcome {
                        request: id,
                        action: &described,
                        confirmed_by: confirmer,
                        ok: false,
                        outcome: &why,
                        prior: None,
                        undo: false,
                    },
                );
                self.record(&incident, confirmer, vec![event], vec![post])
                    .await?;
                return Ok(None);
            }
        }
        let result = cluster
            .run(&proposal.action, timeout, self.clock.now())
            .await;
        self.metrics.kubernetes_call(result.is_ok());
        let (ok, outcome) = match result {
            Ok(outcome) => (true, outcome),
            // The change may have landed even though its answer did not: look.
            Err(error) => {
                let error = redact(&error.to_string());
                let (ok, outcome) = self.settle(cluster, &proposal, &error).await;
                let stopped = if ok {
                    String::new()
                } else {
                    playbook_stopped(&proposal)
                };
                (ok, format!("{outcome}{stopped}"))
            }
        };
        self.store
            .transition_runbook_request(
                id,
                "running",
                if ok { "done" } else { "failed" },
                None,
                self.clock.now(),
            )
            .await?;
        let prior = proposal.prior.describe();
        let event = EventKind::ChangeApplied {
            request: id,
            action: described.clone(),
            confirmed_by: confirmer.clone(),
            ok,
            outcome: outcome.clone(),
            prior: prior.clone(),
        };
        let post = views::change_result(
            &incident,
            ChangeOutcome {
                request: id,
                action: &described,
                confirmed_by: confirmer,
                ok,
                outcome: &outcome,
                prior: Some(&prior),
                undo: proposal.action.kind == ActionKind::Scale,
            },
        );
        self.record(&incident, confirmer, vec![event], vec![post])
            .await?;
        tracing::info!(incident = %incident.key, request = id, action = %described, ok, "change applied");
        if let (true, Some(next)) = (ok, proposal.continuation) {
            let Some(playbook) = runbooks.playbooks.get(&next.playbook) else {
                return Ok(Some(refusal(format!(
                    "Playbook {} is no longer loaded; its remaining steps were not run.",
                    next.playbook
                ))));
            };
            let fresh = self.store.incident(incident.key).await?.unwrap_or(incident);
            return self
                .run_playbook(
                    &fresh,
                    &proposal.requested_by,
                    playbook,
                    &next.params,
                    next.next,
                )
                .await;
        }
        Ok(None)
    }

    /// After an apply that failed or was interrupted, read the state: whether the change is
    /// there (`true`), with what to say.
    async fn settle(&self, cluster: &Cluster, proposal: &Proposal, error: &str) -> (bool, String) {
        let timeout = proposal.timeout(self.runbook_timeout());
        let now = cluster.prior_state(&proposal.action, timeout).await;
        self.metrics.kubernetes_call(now.is_ok());
        let applied = match (&proposal.prior, &now) {
            (PriorState::Replicas { .. }, Ok(PriorState::Replicas { replicas })) => proposal
                .action
                .arg("replicas")
                .and_then(|r| r.parse::<i32>().ok())
                .map(|target| target == *replicas),
            (PriorState::Restarted { at: before }, Ok(PriorState::Restarted { at })) => {
                Some(at != before)
            }
            (PriorState::Pod { uid: before }, Ok(PriorState::Pod { uid })) => Some(uid != before),
            (PriorState::Pod { .. }, Err(crate::runbook::kube::RunError::NotFound(_))) => {
                Some(true)
            }
            _ => None,
        };
        match applied {
            Some(true) => (
                true,
                format!(
                    "applied: the cluster shows the change, though its answer was lost ({error})"
                ),
            ),
            Some(false) => (false, format!("{error}; the cluster shows nothing changed")),
            None => (
                false,
                format!(
                    "{error}; whether it was applied could not be checked: look at the cluster"
                ),
            ),
        }
    }

    /// Close a request a stopped process left running, from what the cluster shows.
    async fn finish_interrupted(
        &self,
        incident: &Incident,
        actor: &Actor,
        id: i64,
        proposal: &Proposal,
        fired_timer: Option<i64>,
    ) -> Result<Option<Message>, StoreError> {
        let cluster = match self.cluster() {
            Ok(c) => c,
            Err(m) => return Ok(Some(m)),
        };
        let (ok, outcome) = self
            .settle(cluster, proposal, "warroom stopped while applying it")
            .await;
        if !self
            .store
            .transition_runbook_request(
                id,
                "running",
                if ok { "done" } else { "failed" },
                None,
                self.clock.now(),
            )
            .await?
        {
            return Ok(Some(refusal(format!(
                "Change #{id} was settled by someone else just now."
            ))));
        }
        let confirmed_by = match actor {
            Actor::User(user) => user.clone(),
            _ => proposal.requested_by.clone(),
        };
        let event = EventKind::ChangeApplied {
            request: id,
            action: proposal.action.describe(),
            confirmed_by,
            ok,
            outcome: outcome.clone(),
            prior: proposal.prior.describe(),
        };
        let post = views::notice_in_channel(format!(
            "{}: change #{id} ({}) was interrupted while being applied; {outcome}.",
            incident.key,
            proposal.action.describe()
        ));
        self.record_note(
            incident,
            Note {
                actor: actor.clone(),
                events: vec![event],
                posts: vec![post],
                timers: Vec::new(),
                fired_timer,
            },
        )
        .await?;
        Ok(Some(refusal(format!(
            "Change #{id} had been interrupted: {outcome}."
        ))))
    }

    async fn cancel(&self, origin: &Origin, id: i64) -> Result<Option<Message>, StoreError> {
        let runbooks = match self.runbooks() {
            Ok(r) => r,
            Err(m) => return Ok(Some(m)),
        };
        let (request, proposal, incident) = match self.load_request(origin, id).await? {
            Ok(found) => found,
            Err(message) => return Ok(Some(message)),
        };
        let actor = &origin.actor;
        let groups = self.groups(actor).await;
        if proposal.requested_by != *actor
            && let Err(problem) = runbooks.guard.allowed(
                actor,
                &groups,
                proposal.action.kind,
                proposal.action.arg("namespace"),
            )
        {
            return Ok(Some(refusal(format!(
                "You cannot cancel change #{id}: {problem}"
            ))));
        }
        if request.state != "pending"
            || !self
                .store
                .transition_runbook_request(
                    id,
                    "pending",
                    "cancelled",
                    Some(actor.as_str()),
                    self.clock.now(),
                )
                .await?
        {
            return Ok(Some(refusal(format!(
                "Change #{id} is no longer waiting for confirmation."
            ))));
        }
        let event = EventKind::ChangeDropped {
            request: id,
            action: proposal.action.describe(),
            why: format!("cancelled by @{actor}"),
        };
        let post = views::notice_in_channel(format!(
            "{}: change #{id} ({}) was cancelled by @{actor}; nothing was changed.{}",
            incident.key,
            proposal.action.describe(),
            playbook_stopped(&proposal)
        ));
        self.record(&incident, actor, vec![event], vec![post])
            .await?;
        Ok(None)
    }

    /// Propose the reverse of an applied scale: back to the replica count it found.
    async fn undo(&self, origin: &Origin, id: i64) -> Result<Option<Message>, StoreError> {
        let (request, proposal, incident) = match self.load_request(origin, id).await? {
            Ok(found) => found,
            Err(message) => return Ok(Some(message)),
        };
        let PriorState::Replicas { replicas } = proposal.prior else {
            return Ok(Some(refusal(format!(
                "Change #{id} ({}) cannot be undone by warroom.",
                proposal.action.describe()
            ))));
        };
        if request.state != "done" {
            return Ok(Some(refusal(format!(
                "Change #{id} was not applied ({}), so there is nothing to undo.",
                request.state
            ))));
        }
        let mut args = proposal.action.args.clone();
        args.insert("replicas".into(), replicas.to_string());
        match Action::new(ActionKind::Scale, args) {
            Ok(action) => self.propose(&incident, &origin.actor, action, None).await,
            Err(problem) => Ok(Some(refusal(problem))),
        }
    }
}

/// How long after its confirmation a change whose cluster calls may each take `timeout`
/// (`Proposal::timeout`) can still be "running" before that means the process applying it
/// stopped: three calls (bound check, apply, settle) and 30 s.
fn settle_delay(timeout: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(timeout * 3).unwrap_or_default() + chrono::Duration::seconds(30)
}

/// " Playbook X stopped here; …" when a change that ends without being applied was a step.
fn playbook_stopped(proposal: &Proposal) -> String {
    match &proposal.continuation {
        Some(next) => format!(
            " Playbook {} stopped here; its remaining steps were not run.",
            next.playbook
        ),
        None => String::new(),
    }
}

/// "roles: operators" (and the two-person rule when it applies).
fn who_may_confirm(
    guard: &Guard,
    kind: ActionKind,
    requester: &UserRef,
    incident: &Incident,
) -> String {
    let roles: Vec<&str> = guard
        .config
        .roles
        .iter()
        .filter(|r| r.actions.contains(&kind))
        .map(|r| r.name.as_str())
        .collect();
    let mut text = format!("who may: roles {}", roles.join(", "));
    if guard.config.p0_second_person && incident.severity == crate::core::Severity::P0 {
        text.push_str(&format!("; P0: someone other than @{requester}"));
    }
    text
}

/// The description, with when the playbook applies.
fn describe_playbook(playbook: &Playbook) -> String {
    let mut text = playbook.description.clone();
    let severities: Vec<String> = playbook
        .severities
        .iter()
        .map(ToString::to_string)
        .collect();
    if !playbook.symptoms.is_empty() || !severities.is_empty() {
        text.push_str(" For");
        if !severities.is_empty() {
            text.push_str(&format!(" {}", severities.join("/")));
        }
        if !playbook.symptoms.is_empty() {
            text.push_str(&format!(": {}", playbook.symptoms.join(", ")));
        }
        text.push('.');
    }
    text
}

fn parameters_text(playbook: &Playbook) -> String {
    playbook
        .parameters
        .iter()
        .map(|p| match &p.default {
            Some(default) => format!("{}={default}", p.name),
            None => format!("{} (required)", p.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
