//! An Alertmanager webhook body through the parser; what parses gives a title and a group id.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(notification) = warroom::alertmanager::parse(data) {
        assert!(!notification.group_id().is_empty());
        let _ = notification.title();
        for alert in notification.firing() {
            let _ = alert.describe();
        }
    }
});
