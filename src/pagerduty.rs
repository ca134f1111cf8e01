//! PagerDuty: the Events API v2 (trigger, acknowledge, resolve), the REST API (incident status,
//! responder requests, on-call look-ups) as an outbox sink, and v3 webhooks (signature check
//! and parsing). Only this module speaks PagerDuty's wire format.

use crate::chat::{Delivered, DeliveryError, Sink};
use crate::config::{PagerDutyConfig, Secret};
use crate::core::{PAGERDUTY, PageTarget, PagerDutyAction, PagerDutySeverity, Status};
use crate::store::OutboxItem;
use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Mutex;

/// The REST API's media type.
const REST_ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

/// Delivers PagerDuty outbox rows.
pub struct PagerDutyClient {
    config: PagerDutyConfig,
    http: reqwest::Client,
    /// The PagerDuty user id of `from_email`, looked up once (responder requests need it).
    requester_id: Mutex<Option<String>>,
}

impl PagerDutyClient {
    pub fn new(config: PagerDutyConfig) -> anyhow::Result<PagerDutyClient> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("warroom/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(PagerDutyClient {
            config,
            http,
            requester_id: Mutex::new(None),
        })
    }

    fn routing_key(&self, service: &str) -> Result<&Secret, DeliveryError> {
        self.config
            .routing_keys
            .get(service)
            .ok_or_else(|| DeliveryError::Permanent {
                reason: format!("pagerduty.routing_keys.{service} is not configured"),
            })
    }

    /// POST one Events API v2 event.
    async fn event(&self, body: Value) -> Result<(), DeliveryError> {
        let response = self
            .http
            .post(&self.config.events_url)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        check(response).await.map(drop)
    }

    fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, DeliveryError> {
        if !self.config.rest_enabled() {
            return Err(DeliveryError::Permanent {
                reason: "the PagerDuty REST API is not configured (pagerduty.api_token and pagerduty.from_email)".into(),
            });
        }
        Ok(self
            .http
            .request(method, format!("{}{path}", self.config.api_url))
            .header(
                "Authorization",
                format!("Token token={}", self.config.api_token.expose()),
            )
            .header("Accept", REST_ACCEPT)
            .header("From", &self.config.from_email))
    }

    async fn rest_get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, DeliveryError> {
        let response = self
            .rest(reqwest::Method::GET, path)?
            .query(query)
            .send()
            .await
            .map_err(transport)?;
        check(response).await
    }

    /// The PagerDuty incident for an incident key, if PagerDuty has one.
    async fn incident_id_for_key(&self, key: &str) -> Result<Option<String>, DeliveryError> {
        let found = self
            .rest_get("/incidents", &[("incident_key", key)])
            .await?;
        Ok(found["incidents"]
            .as_array()
            .and_then(|list| list.first())
            .and_then(|i| i["id"].as_str())
            .map(str::to_string))
    }

    async fn requester_id(&self) -> Result<String, DeliveryError> {
        if let Some(id) = self
            .requester_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(id);
        }
        let found = self
            .rest_get("/users", &[("query", self.config.from_email.as_str())])
            .await?;
        let id = found["users"]
            .as_array()
            .and_then(|users| {
                users.iter().find(|u| {
                    u["email"]
                        .as_str()
                        .is_some_and(|e| e.eq_ignore_ascii_case(&self.config.from_email))
                })
            })
            .and_then(|u| u["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| DeliveryError::Permanent {
                reason: format!(
                    "no PagerDuty user has the email {} (pagerduty.from_email)",
                    self.config.from_email
                ),
            })?;
        *self.requester_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        Ok(id)
    }

    /// Who is on call now for a schedule.
    async fn on_call(&self, schedule: &str) -> Result<Vec<String>, DeliveryError> {
        let found = self
            .rest_get(
                "/oncalls",
                &[("schedule_ids[]", schedule), ("earliest", "true")],
            )
            .await?;
        let users: Vec<String> = found["oncalls"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|o| o["user"]["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if users.is_empty() {
            return Err(DeliveryError::Permanent {
                reason: format!("nobody is on call for PagerDuty schedule {schedule}"),
            });
        }
        Ok(users)
    }

    /// The names of whoever is on call now for a schedule or an escalation policy.
    async fn on_call_names(&self, target: &PageTarget) -> Result<Vec<String>, DeliveryError> {
        let (param, id) = match target {
            PageTarget::Schedule(id) => ("schedule_ids[]", id),
            PageTarget::EscalationPolicy(id) => ("escalation_policy_ids[]", id),
            other => {
                return Err(DeliveryError::Permanent {
                    reason: format!("{other} has no on-call people to look up"),
                });
            }
        };
        let found = self
            .rest_get("/oncalls", &[(param, id.as_str()), ("earliest", "true")])
            .await?;
        // An escalation policy lists every level: the people to mention are the first level's.
        let entries: Vec<&Value> = found["oncalls"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        let first_level = entries
            .iter()
            .filter_map(|o| o["escalation_level"].as_i64())
            .min();
        let mut names: Vec<String> = Vec::new();
        for entry in entries {
            if first_level.is_some() && entry["escalation_level"].as_i64() != first_level {
                continue;
            }
            let Some(name) = entry["user"]["summary"]
                .as_str()
                .or(entry["user"]["id"].as_str())
            else {
                continue;
            };
            let name: String = crate::core::text::clean_text(name)
                .trim()
                .chars()
                .take(100)
                .collect();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Err(DeliveryError::Permanent {
                reason: format!("nobody is on call for {target} in PagerDuty"),
            });
        }
        Ok(names)
    }

    async fn request_responders(
        &self,
        incident_id: &Option<String>,
        incident_key: &str,
        targets: &[PageTarget],
        message: &str,
    ) -> Result<(), DeliveryError> {
        let id = match incident_id {
            Some(id) => id.clone(),
            None => self
                .incident_id_for_key(incident_key)
                .await?
                .ok_or_else(|| DeliveryError::Retry {
                    after: None,
                    reason: format!("PagerDuty has no incident with key {incident_key} yet"),
                })?,
        };
        let mut references = Vec::new();
        for target in targets {
            match target {
                PageTarget::User(user) => references.push(reference(user, "user_reference")),
                PageTarget::EscalationPolicy(policy) => {
                    references.push(reference(policy, "escalation_policy_reference"))
                }
                PageTarget::Schedule(schedule) => {
                    for user in self.on_call(schedule).await? {
                        references.push(reference(&user, "user_reference"));
                    }
                }
                PageTarget::Service(service) => {
                    return Err(DeliveryError::Permanent {
                        reason: format!(
                            "service {service} is paged with a trigger, not a responder request"
                        ),
                    });
                }
            }
        }
        let body = json!({
            "requester_id": self.requester_id().await?,
            "message": message,
            "responder_request_targets": references,
        });
        let response = self
            .rest(
                reqwest::Method::POST,
                &format!("/incidents/{id}/responder_requests"),
            )?
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        check(response).await.map(drop)
    }
}

fn reference(id: &str, kind: &str) -> Value {
    json!({ "responder_request_target": { "id": id, "type": kind } })
}

/// A request that did not complete (connection refused, timeout): worth retrying.
fn transport(error: reqwest::Error) -> DeliveryError {
    let what = if error.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    DeliveryError::Retry {
        after: None,
        reason: format!("the request to PagerDuty {what}: {}", without_url(&error)),
    }
}

/// reqwest's message without the URL (it may carry a routing key in a proxy's path).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after_seconds(value: &str) -> Option<i64> {
    let value = value.trim();
    value.parse::<i64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc2822(value)
            .ok()
            .map(|at| (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds())
    })
}

/// 2xx is success; 429 and 5xx are retried (after Retry-After or ratelimit-reset when given);
/// other statuses are permanent.
async fn check(response: reqwest::Response) -> Result<Value, DeliveryError> {
    let status = response.status();
    let wait = ["retry-after", "ratelimit-reset"]
        .iter()
        .find_map(|h| response.headers().get(*h))
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after_seconds)
        .map(|s| chrono::Duration::seconds(s.clamp(1, 3_600)));
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(serde_json::from_str(&body).unwrap_or(Value::Null));
    }
    let detail: String = body.chars().take(300).collect();
    let reason = format!("PagerDuty answered {status}: {detail}");
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(DeliveryError::Retry {
            after: wait,
            reason,
        })
    } else {
        Err(DeliveryError::Permanent { reason })
    }
}

#[async_trait]
impl Sink for PagerDutyClient {
    fn destination(&self) -> &'static str {
        PAGERDUTY
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        let crate::core::Effect::PagerDuty { action } = &item.effect else {
            return Err(DeliveryError::Permanent {
                reason: "not a PagerDuty call".into(),
            });
        };
        let done = match action {
            PagerDutyAction::LookUpOnCall { target } => {
                let names = self.on_call_names(target).await?;
                return Ok(Delivered::OnCall {
                    target: target.to_string(),
                    names,
                });
            }
            PagerDutyAction::Trigger {
                service,
                dedup_key,
                summary,
                severity,
                ..
            } => {
                self.event(json!({
                    "routing_key": self.routing_key(service)?.expose(),
                    "event_action": "trigger",
                    "dedup_key": dedup_key,
                    "payload": {
                        "summary": summary,
                        "source": self.config.source,
                        "severity": match severity {
                            PagerDutySeverity::Critical => "critical",
                            PagerDutySeverity::Error => "error",
                            PagerDutySeverity::Warning => "warning",
                            PagerDutySeverity::Info => "info",
                        },
                    },
                }))
                .await
            }
            PagerDutyAction::Acknowledge { service, dedup_key }
            | PagerDutyAction::Resolve { service, dedup_key } => {
                let event_action = if matches!(action, PagerDutyAction::Resolve { .. }) {
                    "resolve"
                } else {
                    "acknowledge"
                };
                self.event(json!({
                    "routing_key": self.routing_key(service)?.expose(),
                    "event_action": event_action,
                    "dedup_key": dedup_key,
                }))
                .await
            }
            PagerDutyAction::SetIncidentStatus {
                incident_id,
                status,
            } => {
                let status = match status {
                    Status::Resolved => "resolved",
                    _ => "acknowledged",
                };
                let response = self
                    .rest(reqwest::Method::PUT, &format!("/incidents/{incident_id}"))?
                    .json(
                        &json!({ "incident": { "type": "incident_reference", "status": status } }),
                    )
                    .send()
                    .await
                    .map_err(transport)?;
                check(response).await.map(drop)
            }
            PagerDutyAction::RequestResponders {
                incident_id,
                incident_key,
                targets,
                message,
                ..
            } => {
                self.request_responders(incident_id, incident_key, targets, message)
                    .await
            }
        };
        done.map(|()| Delivered::Done)
    }
}

/// Whether `header` (`X-PagerDuty-Signature`: `v1=<hex>[,v1=<hex>...]`) carries a valid
/// HMAC-SHA256 of `body` under any of `secrets`. Compared in constant time.
pub fn signature_valid(secrets: &[Secret], header: &str, body: &[u8]) -> bool {
    let signatures: Vec<Vec<u8>> = header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|hex_sig| hex::decode(hex_sig).ok())
        .collect();
    let mut valid = false;
    for secret in secrets {
        for signature in &signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(body);
            // Check every pair, so the time taken does not depend on which one matched.
            valid |= mac.verify_slice(signature).is_ok();
        }
    }
    valid
}

/// The signature header PagerDuty would send for `body` under `secret` (for tests and tools).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A v3 webhook event, as much of it as warroom uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    pub event_type: String,
    pub incident_id: String,
    pub incident_key: Option<String>,
    pub title: String,
    pub urgency: Option<String>,
    pub priority: Option<String>,
    /// The agent's name (who acted), or "PagerDuty".
    pub agent: String,
    /// When it happened at PagerDuty, when the envelope says.
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize)]
struct Envelope {
    event: RawEvent,
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    event_type: String,
    resource_type: String,
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    agent: Option<Summary>,
    data: RawIncident,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(default)]
    summary: Option<String>,
}

#[derive(Deserialize)]
struct RawIncident {
    id: String,
    #[serde(default)]
    incident_key: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    priority: Option<Summary>,
}

/// The incident events warroom acts on.
pub const HANDLED_EVENTS: [&str; 4] = [
    "incident.triggered",
    "incident.acknowledged",
    "incident.resolved",
    "incident.priority_updated",
];

/// Parse a webhook body. Any other event (other resources, responder and annotation events,
/// whatever PagerDuty adds) is `Ok(None)`: answered with a 2xx, since PagerDuty drops events
/// refused with a 4xx and disables a subscription that keeps refusing.
pub fn parse_webhook(body: &[u8]) -> Result<Option<WebhookEvent>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let handled = value["event"]["resource_type"].as_str() == Some("incident")
        && value["event"]["event_type"]
            .as_str()
            .is_some_and(|t| HANDLED_EVENTS.contains(&t));
    if !handled {
        return Ok(None);
    }
    let envelope: Envelope = serde_json::from_value(value)
        .map_err(|e| format!("not a PagerDuty v3 incident event: {e}"))?;
    let event = envelope.event;
    if event.resource_type != "incident" {
        return Ok(None);
    }
    let clean = |text: String| {
        crate::core::text::clean_text(&text)
            .trim()
            .chars()
            .take(200)
            .collect::<String>()
    };
    Ok(Some(WebhookEvent {
        id: event.id.chars().take(200).collect(),
        event_type: event.event_type,
        incident_id: event.data.id.chars().take(100).collect(),
        incident_key: event.data.incident_key,
        title: clean(event.data.title.unwrap_or_default()),
        urgency: event.data.urgency,
        priority: event.data.priority.and_then(|p| p.summary),
        agent: event
            .agent
            .and_then(|a| a.summary)
            .map(clean)
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "PagerDuty".to_string()),
        occurred_at: event
            .occurred_at
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
            .map(|at| at.with_timezone(&chrono::Utc)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_any_secret_and_any_listed_signature() {
        let body = br#"{"event":{}}"#;
        let old = Secret::new("old-secret");
        let new = Secret::new("new-secret");
        let header = format!("{},{}", sign("old-secret", body), sign("other", body));
        assert!(signature_valid(&[new.clone(), old.clone()], &header, body));
        assert!(signature_valid(
            std::slice::from_ref(&new),
            &sign("new-secret", body),
            body
        ));
        assert!(!signature_valid(std::slice::from_ref(&new), &header, body));
        assert!(!signature_valid(
            std::slice::from_ref(&old),
            &sign("old-secret", b"tampered"),
            body
        ));
        assert!(!signature_valid(std::slice::from_ref(&old), "", body));
        assert!(!signature_valid(std::slice::from_ref(&old), "v1=zz", body));
        assert!(!signature_valid(&[], &sign("old-secret", body), body));
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(retry_after_seconds(" 7 "), Some(7));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        assert!(retry_after_seconds(&soon).is_some_and(|s| (118..=120).contains(&s)));
        assert_eq!(retry_after_seconds("soon"), None);
    }

    #[test]
    fn parses_incident_events_and_skips_others() {
        let body = br#"{"event":{"id":"E1","event_type":"incident.acknowledged","resource_type":"incident",
            "occurred_at":"2026-11-28T10:00:00Z","agent":{"summary":"Jane Doe","type":"user_reference"},
            "data":{"id":"PABC","type":"incident","incident_key":"INC-7","title":"DB down\n","urgency":"high",
            "priority":{"summary":"P1"}}}}"#;
        let event = parse_webhook(body).unwrap().unwrap();
        assert_eq!(event.id, "E1");
        assert_eq!(event.event_type, "incident.acknowledged");
        assert_eq!(event.incident_id, "PABC");
        assert_eq!(event.incident_key.as_deref(), Some("INC-7"));
        assert_eq!(event.title, "DB down");
        assert_eq!(event.agent, "Jane Doe");
        assert_eq!(event.priority.as_deref(), Some("P1"));
        let other = br#"{"event":{"id":"E2","event_type":"service.updated","resource_type":"service","data":{"id":"S"}}}"#;
        assert_eq!(parse_webhook(other), Ok(None));
        assert!(parse_webhook(b"nope").is_err());
        let incomplete =
            br#"{"event":{"id":"E3","event_type":"incident.resolved","resource_type":"incident"}}"#;
        assert!(
            parse_webhook(incomplete).is_err(),
            "a handled event without its incident"
        );
        let responder = br#"{"event":{"id":"E4","event_type":"incident.responder.added","resource_type":"incident",
            "data":{"incident":{"id":"PABC"},"user":{"id":"PU"}}}}"#;
        assert_eq!(
            parse_webhook(responder),
            Ok(None),
            "unhandled incident events are accepted and ignored"
        );
    }
}
