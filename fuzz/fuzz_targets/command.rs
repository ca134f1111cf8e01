//! The chat command parser on any text: it answers with a command or a usage error, never a
//! panic, and an error always has something to say.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(error) = warroom::core::command::parse(&text) {
        assert!(!error.to_string().is_empty());
    }
});
