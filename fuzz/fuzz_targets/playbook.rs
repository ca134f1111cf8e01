//! Playbook loading on any file text: a set of playbooks or a list of problems, each naming
//! the file, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warroom::runbook::playbook::Playbooks;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    match Playbooks::from_texts([("fuzz.yaml".to_string(), text)]) {
        Ok(playbooks) => {
            for name in playbooks.names() {
                assert!(playbooks.get(name).is_some());
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            assert!(
                problems
                    .iter()
                    .all(|p| p.to_string().starts_with("fuzz.yaml"))
            );
        }
    }
});
