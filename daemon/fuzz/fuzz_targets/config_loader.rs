//! The config loader: arbitrary UTF-8 as the text of a config file.
//!
//! `gateway_config::parse_str` must never panic. When it refuses the text, it must say why: at
//! least one issue, each naming the file and carrying a non-empty message, with a line and
//! column (when given) inside the text. When it accepts the text, the config must survive the
//! pure functions the daemon applies to a loaded config (the redacted view for `config.get`,
//! the diff against the defaults that a reload classifies).

#![no_main]

use std::path::Path;

use gateway_config::parse_str;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match parse_str(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            let _ = gateway_config::classify::redacted(&config);
            let _ = gateway_config::diff(&Default::default(), &config);
        }
        Err(issues) => {
            assert!(!issues.is_empty(), "refused without an issue");
            let lines = text.split('\n').count() as u32;
            for issue in issues {
                assert_eq!(issue.file, "fuzz.toml");
                assert!(!issue.message.trim().is_empty(), "an issue without a message: {issue:?}");
                if let Some(line) = issue.line {
                    assert!(line >= 1 && line <= lines, "line {line} of {lines}: {issue:?}");
                    assert!(issue.column.is_some_and(|c| c >= 1), "{issue:?}");
                }
            }
        }
    }
});
