//! A PagerDuty v3 webhook: the `X-PagerDuty-Signature` check on any header and body (only a
//! header holding the body's own signature passes), then the body through the webhook parser.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use warroom::config::Secret;
use warroom::pagerduty::{parse_webhook, sign, signature_valid};

const SECRET: &str = "pagerduty-webhook-secret";

fuzz_target!(|data: &[u8]| {
    let (header, _, body) = common::split(data);
    let secrets = [Secret::new(SECRET)];
    let good = sign(SECRET, body);
    if signature_valid(&secrets, &header, body) {
        assert!(
            header.to_ascii_lowercase().contains(&good[3..]),
            "{header:?}"
        );
    }
    assert!(signature_valid(&secrets, &format!("{header},{good}"), body));
    let _ = parse_webhook(body);
});
