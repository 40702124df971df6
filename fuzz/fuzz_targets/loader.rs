//! Bytes → one service file → parse + validate. Must never panic.
#![no_main]

use ankh::config::{LoadOptions, parse_service};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = LoadOptions {
        check: true,
        root: None,
        env: vec![("HOME".into(), "/root".into()), ("EMPTY".into(), String::new())],
    };
    let (spec, diags) = parse_service(std::path::Path::new("fuzz.toml"), text, &opts);
    // Rendering every message must not panic either.
    for d in &diags {
        let _ = d.to_string();
    }
    if let Some(s) = spec {
        let _ = s.effective_ready();
    }
});
