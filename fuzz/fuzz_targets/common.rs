//! What the targets share: splitting one input into header values and a body, and a fixed
//! "now" for the signature windows.

#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};

/// The fixed time the targets check signatures at.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
}

/// `data` as `first line`, `second line` and the rest (the body), lossily as text for the
/// header values; missing parts are empty.
pub fn split(data: &[u8]) -> (String, String, &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let first = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let second = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    (first, second, parts.next().unwrap_or_default())
}
