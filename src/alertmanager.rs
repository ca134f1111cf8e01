//! Prometheus Alertmanager notifications (`POST /alertmanager/webhook`): the version 4 webhook
//! payload, its validation, the bearer-token check, the label rules that give an alert group a
//! severity, and the text of the incident it opens.

use crate::core::command::MAX_TITLE_CHARS;
use crate::core::severity::Severity;
use crate::core::text::clean_text;
use chrono::{DateTime, Datelike, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;

/// The only webhook payload version understood.
pub const PAYLOAD_VERSION: &str = "4";

/// The most alerts accepted in one notification. Alertmanager's `max_alerts` (webhook_config)
/// caps what it sends and counts the rest in `truncatedAlerts`.
pub const MAX_ALERTS: usize = 1000;

/// Labels shown by [`Alert::describe`] at most.
const DESCRIBE_LABELS: usize = 5;
/// Length of [`Alert::describe`]'s line at most, in characters.
const DESCRIBE_CHARS: usize = 400;

// --- wire format --------------------------------------------------------------------------

/// The JSON body Alertmanager POSTs to a webhook receiver (payload version 4). Unknown fields
/// are ignored; missing or `null` fields take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    #[serde(default, deserialize_with = "or_default")]
    pub version: String,
    /// Identifies the alert group; stable across the group's notifications.
    #[serde(default, deserialize_with = "or_default")]
    pub group_key: String,
    /// How many alerts `max_alerts` left out.
    #[serde(default, deserialize_with = "or_default")]
    pub truncated_alerts: u64,
    /// `firing` while any alert of the group fires, else `resolved`.
    #[serde(default, deserialize_with = "or_default")]
    pub status: String,
    #[serde(default, deserialize_with = "or_default")]
    pub receiver: String,
    #[serde(default, deserialize_with = "or_default")]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "or_default")]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "or_default")]
    pub common_annotations: BTreeMap<String, String>,
    /// Link back to the Alertmanager.
    #[serde(rename = "externalURL", default, deserialize_with = "or_default")]
    pub external_url: String,
    #[serde(default, deserialize_with = "or_default")]
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a [`WebhookPayload`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    #[serde(default, deserialize_with = "or_default")]
    pub status: String,
    #[serde(default, deserialize_with = "or_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "or_default")]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "or_default")]
    pub starts_at: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` while unset.
    #[serde(default, deserialize_with = "or_default")]
    pub ends_at: String,
    /// Link to the rule that raised the alert.
    #[serde(rename = "generatorURL", default, deserialize_with = "or_default")]
    pub generator_url: String,
    /// Identifies the alert (a hash of its labels).
    #[serde(default, deserialize_with = "or_default")]
    pub fingerprint: String,
}

/// A missing field and an explicit `null` both give the default (Go encodes a nil map as `null`).
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

// --- validated notification ---------------------------------------------------------------

/// Whether a group or an alert is firing or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    /// Alertmanager's spelling: `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }

    fn parse(text: &str) -> Option<AlertStatus> {
        match text {
            "firing" => Some(AlertStatus::Firing),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated Alertmanager notification: one alert group, with at least one alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Identifies the alert group (never empty).
    pub group_key: String,
    /// The group's status. A firing group may hold resolved alerts; see each [`Alert::status`].
    pub status: AlertStatus,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    /// Link back to the Alertmanager.
    pub external_url: String,
    /// How many alerts Alertmanager left out (`max_alerts`).
    pub truncated_alerts: u64,
    /// 1 to [`MAX_ALERTS`] alerts, in Alertmanager's order.
    pub alerts: Vec<Alert>,
}

/// One validated alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Identifies the alert (never empty).
    pub fingerprint: String,
    pub status: AlertStatus,
    /// The `alertname` label (never empty).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// `None` while unset (Alertmanager's zero time, year 1, or missing).
    pub ends_at: Option<DateTime<Utc>>,
    /// Link to the rule that raised the alert; may be empty.
    pub generator_url: String,
}

/// Parse and validate a webhook body. Refuses, with a message naming the problem: invalid JSON,
/// a body of the wrong shape, a version other than "4", an empty `groupKey`, a status other
/// than `firing` or `resolved` (of the group or of an alert), no alerts, and an alert without
/// fingerprint, `alertname` label or valid timestamps. More than [`MAX_ALERTS`] alerts are cut
/// to that many (firing ones first) and the rest added to `truncated_alerts`.
pub fn parse(body: &[u8]) -> Result<Notification, String> {
    let payload: WebhookPayload = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            format!("not an Alertmanager webhook payload: {e}")
        }
        _ => format!("invalid JSON: {e}"),
    })?;
    if payload.version != PAYLOAD_VERSION {
        return Err(format!(
            "unsupported payload version {:?}: warroom reads Alertmanager's webhook version \"4\"",
            shorten(&payload.version, 20)
        ));
    }
    if payload.group_key.trim().is_empty() {
        return Err("groupKey is empty".to_string());
    }
    let status = AlertStatus::parse(&payload.status).ok_or_else(|| {
        format!(
            "unknown status {:?}: expected \"firing\" or \"resolved\"",
            shorten(&payload.status, 20)
        )
    })?;
    if payload.alerts.is_empty() {
        return Err("the notification has no alerts".to_string());
    }
    // A larger group is cut, not refused (Alertmanager does not retry a 4xx, and a big group
    // is a big outage): its firing alerts first, the rest counted as truncated.
    let mut listed = payload.alerts;
    let mut truncated_alerts = payload.truncated_alerts;
    if listed.len() > MAX_ALERTS {
        listed.sort_by_key(|alert| alert.status != "firing");
        truncated_alerts += (listed.len() - MAX_ALERTS) as u64;
        listed.truncate(MAX_ALERTS);
    }
    let alerts = listed
        .into_iter()
        .enumerate()
        .map(|(index, alert)| validate_alert(index + 1, alert))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Notification {
        group_key: payload.group_key,
        status,
        receiver: payload.receiver,
        group_labels: payload.group_labels,
        common_labels: payload.common_labels,
        common_annotations: payload.common_annotations,
        external_url: payload.external_url,
        truncated_alerts,
        alerts,
    })
}

/// Group keys longer than this are stored as their SHA-256 (an index entry has a size limit).
const GROUP_KEY_STORED: usize = 200;

/// Validate the `number`th (from 1) alert of a payload.
fn validate_alert(number: usize, alert: WebhookAlert) -> Result<Alert, String> {
    if alert.fingerprint.trim().is_empty() {
        return Err(format!("alert {number} has no fingerprint"));
    }
    let which = || format!("alert {number} ({})", shorten(&alert.fingerprint, 40));
    let name = alert
        .labels
        .get("alertname")
        .filter(|name| !name.trim().is_empty())
        .cloned()
        .ok_or_else(|| format!("{} has no alertname label", which()))?;
    let status = AlertStatus::parse(&alert.status).ok_or_else(|| {
        format!(
            "{} has unknown status {:?}: expected \"firing\" or \"resolved\"",
            which(),
            shorten(&alert.status, 20)
        )
    })?;
    let starts_at = timestamp(&alert.starts_at)
        .map_err(|e| format!("{}: startsAt {e}", which()))?
        .ok_or_else(|| format!("{} has no startsAt", which()))?;
    let ends_at = timestamp(&alert.ends_at).map_err(|e| format!("{}: endsAt {e}", which()))?;
    Ok(Alert {
        fingerprint: alert.fingerprint,
        status,
        name,
        labels: alert.labels,
        annotations: alert.annotations,
        starts_at,
        ends_at,
        generator_url: alert.generator_url,
    })
}

/// An RFC 3339 time; `None` for an empty text or Go's zero time (year 1).
fn timestamp(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("{:?} is not an RFC 3339 time: {e}", shorten(text, 40)))?
        .with_timezone(&Utc);
    Ok((at.year() > 1).then_some(at))
}

// --- authentication -----------------------------------------------------------------------

/// Key for [`bearer_ok`]'s comparison: both values are HMAC'ed under it so that the digests,
/// of equal length whatever the token, can be compared in constant time.
const COMPARE_KEY: &[u8] = b"warroom/alertmanager/bearer-token-comparison";

fn keyed_digest(value: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(COMPARE_KEY).expect("HMAC accepts any key");
    mac.update(value.as_bytes());
    mac
}

/// Whether the `Authorization` header is exactly `Bearer <token>`: the scheme in any case, one
/// space, then the token byte for byte, compared in constant time. `token` is the configured
/// secret (`Secret::expose`); false when it is empty, the header is missing, or another scheme
/// is used.
pub fn bearer_ok(header: Option<&str>, token: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    if token.is_empty() {
        return false;
    }
    let Some((scheme, presented)) = header.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let expected = keyed_digest(token).finalize().into_bytes();
    keyed_digest(presented).verify_slice(&expected).is_ok()
}

// --- severity -----------------------------------------------------------------------------

/// One mapping rule: every listed label must match (exact value, or any of several values
/// separated by `|`), then the alert gets `severity`. Comparisons are exact and case-sensitive
/// (Prometheus `severity` labels are lowercase by convention); an absent label has the empty
/// value, as in Prometheus, so `""` matches alerts without it. A rule without labels matches
/// every alert.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityRule {
    pub labels: BTreeMap<String, String>,
    /// `P0` to `P3` (any case) in configuration.
    #[serde(deserialize_with = "severity_text")]
    pub severity: Severity,
}

fn severity_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Severity, D::Error> {
    String::deserialize(deserializer)?
        .parse()
        .map_err(serde::de::Error::custom)
}

impl SeverityRule {
    /// Whether every label of the rule matches `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(name, wanted)| {
            let value = labels.get(name).map_or("", String::as_str);
            wanted.split('|').any(|alternative| alternative == value)
        })
    }
}

/// The rules that give an alert its severity: the first matching rule wins, else `fallback`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeverityRules {
    pub rules: Vec<SeverityRule>,
    pub fallback: Severity,
}

impl Default for SeverityRules {
    fn default() -> Self {
        SeverityRules::defaults()
    }
}

impl SeverityRules {
    /// Defaults (first match wins): severity=critical & alertname=DatabaseDown → P0;
    /// severity=critical & category=security → P0; severity=critical → P1; severity=warning →
    /// P2; severity=info → P3; anything else → fallback P2.
    pub fn defaults() -> SeverityRules {
        let rule = |labels: &[(&str, &str)], severity| SeverityRule {
            labels: labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            severity,
        };
        SeverityRules {
            rules: vec![
                rule(
                    &[("severity", "critical"), ("alertname", "DatabaseDown")],
                    Severity::P0,
                ),
                rule(
                    &[("severity", "critical"), ("category", "security")],
                    Severity::P0,
                ),
                rule(&[("severity", "critical")], Severity::P1),
                rule(&[("severity", "warning")], Severity::P2),
                rule(&[("severity", "info")], Severity::P3),
            ],
            fallback: Severity::P2,
        }
    }

    /// The severity of the first rule matching `labels`, else the fallback.
    pub fn severity_of(&self, labels: &BTreeMap<String, String>) -> Severity {
        self.rules
            .iter()
            .find(|rule| rule.matches(labels))
            .map_or(self.fallback, |rule| rule.severity)
    }
}

// --- incident text ------------------------------------------------------------------------

/// `text` as one trimmed line of printable characters.
fn one_line(text: &str) -> String {
    clean_text(text).trim().to_string()
}

/// At most `max` characters of `text`, cut on a character boundary and ended with "…" when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// A trimmed, non-empty annotation.
fn annotation<'a>(annotations: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    annotations
        .get(name)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

impl Notification {
    /// How the group is recorded on its incident: the `groupKey`, or `sha256:<hex>` of it when
    /// it is longer than 200 characters.
    pub fn group_id(&self) -> String {
        if self.group_key.len() <= GROUP_KEY_STORED {
            return self.group_key.clone();
        }
        use sha2::Digest;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(self.group_key.as_bytes()))
        )
    }

    /// The alerts that are firing.
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
    }

    /// The incident title: the common `summary` annotation, else the `summary` of the first
    /// firing alert (the first alert when none fires), else the alert name(s), e.g.
    /// "DatabaseDown" or "HighErrorRate and 2 more". One line without control characters, at
    /// most 200 characters (cut with "…").
    pub fn title(&self) -> String {
        let lead = self.firing().next().or(self.alerts.first());
        [
            annotation(&self.common_annotations, "summary"),
            lead.and_then(Alert::summary),
        ]
        .into_iter()
        .flatten()
        .map(one_line)
        .find(|text| !text.is_empty())
        .map_or_else(
            || shorten(&one_line(&self.alert_names()), MAX_TITLE_CHARS),
            |text| shorten(&text, MAX_TITLE_CHARS),
        )
    }

    /// "A", or "A and N more" for N other distinct alert names.
    fn alert_names(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for alert in &self.alerts {
            if !names.contains(&alert.name.as_str()) {
                names.push(&alert.name);
            }
        }
        match names.as_slice() {
            [] => String::new(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} and {} more", rest.len()),
        }
    }
}

impl Alert {
    /// The `summary` annotation, trimmed, when not empty (raw text: clean it before display).
    pub fn summary(&self) -> Option<&str> {
        annotation(&self.annotations, "summary")
    }

    /// The `description` annotation, trimmed, when not empty (raw text: clean it before
    /// display).
    pub fn description(&self) -> Option<&str> {
        annotation(&self.annotations, "description")
    }

    /// One line for a timeline or chat message, e.g. "HighErrorRate (instance=10.0.0.1:9090,
    /// service=api): High error rate detected": the labels other than `alertname` and
    /// `severity`, by name, at most 5 (then "…"), and the summary, else the description. No
    /// control characters, at most 400 characters.
    pub fn describe(&self) -> String {
        let mut line = self.name.clone();
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(name, _)| name.as_str() != "alertname" && name.as_str() != "severity")
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if !labels.is_empty() {
            line.push_str(" (");
            line.push_str(&labels[..labels.len().min(DESCRIBE_LABELS)].join(", "));
            if labels.len() > DESCRIBE_LABELS {
                line.push_str(", …");
            }
            line.push(')');
        }
        if let Some(text) = self.summary().or(self.description()) {
            line.push_str(": ");
            line.push_str(text);
        }
        shorten(&one_line(&line), DESCRIBE_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use serde_json::{Value, json};

    /// A firing notification in the documented version 4 format, with two alerts and a field
    /// warroom does not read (`silenceURL`).
    fn firing_example() -> Value {
        json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"HighErrorRate\", service=\"api\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "warroom",
            "groupLabels": {"alertname": "HighErrorRate", "service": "api"},
            "commonLabels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
            "commonAnnotations": {"summary": "High error rate detected"},
            "externalURL": "http://alertmanager.monitoring.svc:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "HighErrorRate", "service": "api",
                               "severity": "critical", "instance": "10.0.0.1:9090"},
                    "annotations": {"summary": "High error rate detected",
                                    "description": "Error rate is 0.42 errors per second"},
                    "startsAt": "2024-05-01T10:00:00.123456789+02:00",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph?g0.expr=rate%28http_requests_total%29",
                    "fingerprint": "1a30ba71cca2921f",
                    "silenceURL": "http://alertmanager:9093/#/silences/new"
                },
                {
                    "status": "firing",
                    "labels": {"alertname": "HighErrorRate", "service": "api",
                               "severity": "critical", "instance": "10.0.0.2:9090"},
                    "annotations": {"summary": "High error rate detected"},
                    "startsAt": "2024-05-01T08:01:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": "bc97ff14869b13e3"
                }
            ]
        })
    }

    fn parse_value(value: &Value) -> Result<Notification, String> {
        parse(value.to_string().as_bytes())
    }

    fn rejection(value: &Value) -> String {
        parse_value(value).expect_err("should be refused")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn alert(name: &str, status: AlertStatus, pairs: &[(&str, &str)]) -> Alert {
        let mut labels = labels(pairs);
        labels.insert("alertname".into(), name.into());
        Alert {
            fingerprint: format!("fp-{name}"),
            status,
            name: name.into(),
            labels,
            annotations: BTreeMap::new(),
            starts_at: DateTime::parse_from_rfc3339("2024-05-01T08:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            ends_at: None,
            generator_url: String::new(),
        }
    }

    #[test]
    fn parses_the_documented_firing_example() {
        let n = parse_value(&firing_example()).unwrap();
        assert_eq!(n.status, AlertStatus::Firing);
        assert_eq!(
            n.group_key,
            "{}:{alertname=\"HighErrorRate\", service=\"api\"}"
        );
        assert_eq!(n.receiver, "warroom");
        assert_eq!(n.truncated_alerts, 0);
        assert_eq!(n.external_url, "http://alertmanager.monitoring.svc:9093");
        assert_eq!(n.group_labels["service"], "api");
        assert_eq!(n.common_labels["severity"], "critical");
        assert_eq!(n.common_annotations["summary"], "High error rate detected");
        assert_eq!(n.alerts.len(), 2);
        let first = &n.alerts[0];
        assert_eq!(first.fingerprint, "1a30ba71cca2921f");
        assert_eq!(first.name, "HighErrorRate");
        assert_eq!(first.status, AlertStatus::Firing);
        assert_eq!(first.labels["instance"], "10.0.0.1:9090");
        assert_eq!(
            first.starts_at.to_rfc3339(),
            "2024-05-01T08:00:00.123456789+00:00"
        );
        assert_eq!(first.ends_at, None);
        assert!(first.generator_url.starts_with("http://prometheus:9090/"));
        assert_eq!(
            first.description(),
            Some("Error rate is 0.42 errors per second")
        );
        assert_eq!(n.alerts[1].fingerprint, "bc97ff14869b13e3");
        assert_eq!(n.alerts[1].description(), None);
        assert_eq!(n.firing().count(), 2);
    }

    #[test]
    fn parses_a_resolved_notification() {
        let mut v = firing_example();
        v["status"] = json!("resolved");
        for a in v["alerts"].as_array_mut().unwrap() {
            a["status"] = json!("resolved");
            a["endsAt"] = json!("2024-05-01T08:30:00Z");
        }
        let n = parse_value(&v).unwrap();
        assert_eq!(n.status, AlertStatus::Resolved);
        assert!(n.alerts.iter().all(|a| a.status == AlertStatus::Resolved));
        assert_eq!(
            n.alerts[0].ends_at.unwrap().to_rfc3339(),
            "2024-05-01T08:30:00+00:00"
        );
        assert_eq!(n.firing().count(), 0);
    }

    #[test]
    fn a_firing_group_keeps_each_alerts_own_status() {
        let mut v = firing_example();
        v["alerts"][1]["status"] = json!("resolved");
        v["alerts"][1]["endsAt"] = json!("2024-05-01T08:20:00Z");
        let n = parse_value(&v).unwrap();
        assert_eq!(n.status, AlertStatus::Firing);
        assert_eq!(n.alerts[0].status, AlertStatus::Firing);
        assert_eq!(n.alerts[1].status, AlertStatus::Resolved);
        assert!(n.alerts[1].ends_at.is_some());
    }

    #[test]
    fn zero_or_missing_ends_at_is_none() {
        let mut v = firing_example();
        v["alerts"][0]["endsAt"] = json!("0001-01-01T00:00:00Z");
        v["alerts"][1].as_object_mut().unwrap().remove("endsAt");
        let n = parse_value(&v).unwrap();
        assert_eq!(n.alerts[0].ends_at, None);
        assert_eq!(n.alerts[1].ends_at, None);
    }

    #[test]
    fn missing_and_null_optional_fields_take_defaults() {
        let v = json!({
            "version": "4",
            "groupKey": "{}:{}",
            "status": "firing",
            "groupLabels": null,
            "commonAnnotations": null,
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "DatabaseDown"},
                "annotations": null,
                "startsAt": "2024-05-01T08:00:00Z",
                "fingerprint": "f1"
            }]
        });
        let n = parse_value(&v).unwrap();
        assert_eq!(n.receiver, "");
        assert_eq!(n.external_url, "");
        assert_eq!(n.truncated_alerts, 0);
        assert!(n.group_labels.is_empty() && n.common_labels.is_empty());
        assert!(n.alerts[0].annotations.is_empty());
        assert_eq!(n.alerts[0].generator_url, "");
    }

    #[test]
    fn rejects_invalid_json_with_serdes_message() {
        let e = parse(b"{\"version\": \"4\",").unwrap_err();
        assert!(e.starts_with("invalid JSON: "), "{e}");
        assert!(e.contains("line 1"), "{e}");
        let e = parse(b"not json").unwrap_err();
        assert!(e.starts_with("invalid JSON: "), "{e}");
    }

    #[test]
    fn rejects_a_body_of_the_wrong_shape() {
        let e = parse(b"[1, 2]").unwrap_err();
        assert!(
            e.starts_with("not an Alertmanager webhook payload: "),
            "{e}"
        );
        let mut v = firing_example();
        v["alerts"][0]["labels"]["instance"] = json!(3);
        let e = rejection(&v);
        assert!(
            e.starts_with("not an Alertmanager webhook payload: "),
            "{e}"
        );
    }

    #[test]
    fn rejects_other_versions() {
        let mut v = firing_example();
        v["version"] = json!("3");
        let e = rejection(&v);
        assert!(e.contains("unsupported payload version \"3\""), "{e}");
        v.as_object_mut().unwrap().remove("version");
        assert!(rejection(&v).contains("unsupported payload version \"\""));
    }

    #[test]
    fn rejects_an_empty_group_key() {
        let mut v = firing_example();
        v["groupKey"] = json!("");
        assert_eq!(rejection(&v), "groupKey is empty");
        v.as_object_mut().unwrap().remove("groupKey");
        assert_eq!(rejection(&v), "groupKey is empty");
    }

    #[test]
    fn rejects_unknown_statuses() {
        let mut v = firing_example();
        v["status"] = json!("pending");
        let e = rejection(&v);
        assert!(e.contains("unknown status \"pending\""), "{e}");
        let mut v = firing_example();
        v["alerts"][1]["status"] = json!("Firing");
        let e = rejection(&v);
        assert!(
            e.starts_with("alert 2 (bc97ff14869b13e3) has unknown status \"Firing\""),
            "{e}"
        );
    }

    #[test]
    fn rejects_zero_alerts() {
        let mut v = firing_example();
        v["alerts"] = json!([]);
        assert_eq!(rejection(&v), "the notification has no alerts");
        v.as_object_mut().unwrap().remove("alerts");
        assert_eq!(rejection(&v), "the notification has no alerts");
    }

    #[test]
    fn more_than_the_maximum_of_alerts_are_cut_firing_first() {
        let mut v = firing_example();
        let one = v["alerts"][0].clone();
        v["alerts"] = Value::Array(vec![one.clone(); MAX_ALERTS]);
        assert_eq!(parse_value(&v).unwrap().alerts.len(), MAX_ALERTS);
        let mut resolved = one.clone();
        resolved["status"] = json!("resolved");
        let mut alerts = vec![resolved; 5];
        alerts.extend(vec![one; MAX_ALERTS + 1]);
        v["alerts"] = Value::Array(alerts);
        v["truncatedAlerts"] = json!(3);
        let n = parse_value(&v).unwrap();
        assert_eq!(n.alerts.len(), MAX_ALERTS);
        assert!(n.alerts.iter().all(|a| a.status == AlertStatus::Firing));
        assert_eq!(n.truncated_alerts, 3 + 6);
    }

    #[test]
    fn long_group_keys_are_recorded_by_their_digest() {
        let mut v = firing_example();
        let n = parse_value(&v).unwrap();
        assert_eq!(n.group_id(), n.group_key);
        v["groupKey"] = json!(format!("{{}}:{{alertname=\"{}\"}}", "x".repeat(300)));
        let long = parse_value(&v).unwrap();
        let id = long.group_id();
        assert!(id.starts_with("sha256:") && id.len() == 7 + 64, "{id}");
        assert_eq!(id, parse_value(&v).unwrap().group_id());
    }

    #[test]
    fn rejects_an_alert_without_fingerprint() {
        let mut v = firing_example();
        v["alerts"][1]["fingerprint"] = json!("");
        assert_eq!(rejection(&v), "alert 2 has no fingerprint");
        v["alerts"][1]
            .as_object_mut()
            .unwrap()
            .remove("fingerprint");
        assert_eq!(rejection(&v), "alert 2 has no fingerprint");
    }

    #[test]
    fn rejects_an_alert_without_alertname() {
        let mut v = firing_example();
        v["alerts"][0]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("alertname");
        assert_eq!(
            rejection(&v),
            "alert 1 (1a30ba71cca2921f) has no alertname label"
        );
        v["alerts"][0]["labels"]["alertname"] = json!(" ");
        assert_eq!(
            rejection(&v),
            "alert 1 (1a30ba71cca2921f) has no alertname label"
        );
    }

    #[test]
    fn rejects_bad_or_missing_timestamps() {
        let mut v = firing_example();
        v["alerts"][0]["startsAt"] = json!("yesterday");
        let e = rejection(&v);
        assert!(
            e.starts_with(
                "alert 1 (1a30ba71cca2921f): startsAt \"yesterday\" is not an RFC 3339 time"
            ),
            "{e}"
        );
        v["alerts"][0].as_object_mut().unwrap().remove("startsAt");
        assert_eq!(rejection(&v), "alert 1 (1a30ba71cca2921f) has no startsAt");
        let mut v = firing_example();
        v["alerts"][1]["endsAt"] = json!("2024-13-01T00:00:00Z");
        assert!(rejection(&v).contains("endsAt"));
    }

    #[test]
    fn bearer_accepts_exactly_the_configured_token() {
        let secret = Secret::new("s3cret-token");
        let token = secret.expose();
        assert!(bearer_ok(Some("Bearer s3cret-token"), token));
        assert!(bearer_ok(Some("bearer s3cret-token"), token));
        assert!(bearer_ok(Some("BEARER s3cret-token"), token));
        assert!(!bearer_ok(None, token));
        assert!(!bearer_ok(Some(""), token));
        assert!(!bearer_ok(Some("Bearer"), token));
        assert!(!bearer_ok(Some("Bearer "), token));
        assert!(!bearer_ok(Some("Bearer s3cret-tokem"), token));
        assert!(!bearer_ok(Some("Bearer s3cret-token2"), token));
        assert!(!bearer_ok(Some("Bearer s3cret"), token));
        assert!(!bearer_ok(Some("Bearer  s3cret-token"), token));
        assert!(!bearer_ok(Some("Bearer s3cret-token "), token));
        assert!(!bearer_ok(Some("Basic s3cret-token"), token));
        assert!(!bearer_ok(Some("Token s3cret-token"), token));
        assert!(!bearer_ok(Some("s3cret-token"), token));
    }

    #[test]
    fn bearer_refuses_everything_without_a_configured_token() {
        assert!(!bearer_ok(Some("Bearer "), ""));
        assert!(!bearer_ok(Some("Bearer x"), ""));
        assert!(!bearer_ok(None, ""));
    }

    #[test]
    fn default_severities_of_the_monitored_services_alerts() {
        let rules = SeverityRules::defaults();
        let sev = |pairs: &[(&str, &str)]| rules.severity_of(&labels(pairs));
        assert_eq!(
            sev(&[("alertname", "HighErrorRate"), ("severity", "critical")]),
            Severity::P1
        );
        assert_eq!(
            sev(&[("alertname", "DatabaseDown"), ("severity", "critical")]),
            Severity::P0
        );
        assert_eq!(
            sev(&[("alertname", "HighMemoryUsage"), ("severity", "warning")]),
            Severity::P2
        );
        for name in ["HighFailedLogins", "SuspiciousAPIActivity"] {
            assert_eq!(
                sev(&[
                    ("alertname", name),
                    ("severity", "critical"),
                    ("category", "security")
                ]),
                Severity::P0,
                "{name}"
            );
            assert_eq!(
                sev(&[
                    ("alertname", name),
                    ("severity", "warning"),
                    ("category", "security")
                ]),
                Severity::P2,
                "{name}"
            );
        }
        assert_eq!(
            sev(&[("alertname", "Disk"), ("severity", "info")]),
            Severity::P3
        );
        assert_eq!(sev(&[("alertname", "Watchdog")]), Severity::P2);
        assert_eq!(
            sev(&[("alertname", "X"), ("severity", "none")]),
            Severity::P2
        );
    }

    #[test]
    fn default_rules_compare_values_exactly() {
        let rules = SeverityRules::defaults();
        let sev = |pairs: &[(&str, &str)]| rules.severity_of(&labels(pairs));
        assert_eq!(sev(&[("severity", "Critical")]), Severity::P2);
        assert_eq!(
            sev(&[("alertname", "databasedown"), ("severity", "critical")]),
            Severity::P1
        );
        assert_eq!(SeverityRules::default(), SeverityRules::defaults());
    }

    #[test]
    fn custom_rules_with_alternatives_and_absent_labels() {
        let rules: Vec<SeverityRule> = serde_json::from_value(json!([
            {"labels": {"team": "payments|checkout", "severity": "critical|page"}, "severity": "P0"},
            {"labels": {"severity": ""}, "severity": "p3"},
            {"labels": {}, "severity": "P1"}
        ]))
        .unwrap();
        let rules = SeverityRules {
            rules,
            fallback: Severity::P2,
        };
        let sev = |pairs: &[(&str, &str)]| rules.severity_of(&labels(pairs));
        assert_eq!(
            sev(&[("team", "payments"), ("severity", "critical")]),
            Severity::P0
        );
        assert_eq!(
            sev(&[("team", "checkout"), ("severity", "page")]),
            Severity::P0
        );
        assert_eq!(
            sev(&[("team", "search"), ("severity", "critical")]),
            Severity::P1
        );
        assert_eq!(
            sev(&[("team", "pay"), ("severity", "critical")]),
            Severity::P1
        );
        assert_eq!(sev(&[("team", "payments")]), Severity::P3);
        assert_eq!(sev(&[]), Severity::P3);

        let none = SeverityRules {
            rules: vec![],
            fallback: Severity::P1,
        };
        assert_eq!(
            none.severity_of(&labels(&[("severity", "critical")])),
            Severity::P1
        );
    }

    #[test]
    fn severity_rule_configuration_is_checked() {
        let bad = serde_json::from_value::<SeverityRule>(json!({"labels": {}, "severity": "P7"}));
        assert!(bad.unwrap_err().to_string().contains("P7"));
        let unknown = serde_json::from_value::<SeverityRule>(
            json!({"labels": {}, "severity": "P1", "sev": "P0"}),
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn title_prefers_common_summary_then_alert_summary_then_names() {
        let n = parse_value(&firing_example()).unwrap();
        assert_eq!(n.title(), "High error rate detected");

        let mut v = firing_example();
        v["commonAnnotations"] = json!({});
        v["alerts"][0]["status"] = json!("resolved");
        v["alerts"][0]["annotations"]["summary"] = json!("first, resolved");
        v["alerts"][1]["annotations"]["summary"] = json!("  second,\n firing\t");
        assert_eq!(parse_value(&v).unwrap().title(), "second, firing");

        let mut v = firing_example();
        v["commonAnnotations"] = json!({"summary": " \n "});
        for a in v["alerts"].as_array_mut().unwrap() {
            a["annotations"] = json!({});
        }
        assert_eq!(parse_value(&v).unwrap().title(), "HighErrorRate");

        v["alerts"][1]["labels"]["alertname"] = json!("DatabaseDown");
        let mut third = v["alerts"][0].clone();
        third["labels"]["alertname"] = json!("HighMemoryUsage");
        third["fingerprint"] = json!("f3");
        v["alerts"].as_array_mut().unwrap().push(third.clone());
        v["alerts"].as_array_mut().unwrap().push(third);
        assert_eq!(parse_value(&v).unwrap().title(), "HighErrorRate and 2 more");
    }

    #[test]
    fn title_is_cleaned_and_cut_to_200_characters() {
        let mut v = firing_example();
        v["commonAnnotations"]["summary"] = json!(format!("\u{202E}é{}", "ü".repeat(300)));
        let title = parse_value(&v).unwrap().title();
        assert_eq!(title.chars().count(), 200);
        assert!(title.starts_with('é'), "{title}");
        assert!(title.ends_with("ü…"));
        assert!(!title.chars().any(char::is_control));

        v["commonAnnotations"]["summary"] = json!("x".repeat(200));
        assert_eq!(parse_value(&v).unwrap().title(), "x".repeat(200));
    }

    #[test]
    fn describe_gives_one_line_per_alert() {
        let n = parse_value(&firing_example()).unwrap();
        assert_eq!(
            n.alerts[0].describe(),
            "HighErrorRate (instance=10.0.0.1:9090, service=api): High error rate detected"
        );

        let mut a = alert(
            "DatabaseDown",
            AlertStatus::Firing,
            &[("severity", "critical")],
        );
        assert_eq!(a.describe(), "DatabaseDown");
        a.annotations.insert(
            "description".into(),
            "PostgreSQL database is down\nsince 10:00".into(),
        );
        assert_eq!(
            a.describe(),
            "DatabaseDown: PostgreSQL database is down since 10:00"
        );

        let many = alert(
            "Busy",
            AlertStatus::Firing,
            &[
                ("f", "6"),
                ("a", "1"),
                ("e", "5"),
                ("b", "2"),
                ("d", "4"),
                ("c", "3"),
            ],
        );
        assert_eq!(many.describe(), "Busy (a=1, b=2, c=3, d=4, e=5, …)");

        let long = alert("Long", AlertStatus::Firing, &[("x", &"v".repeat(1000))]);
        assert_eq!(long.describe().chars().count(), 400);
    }
}
