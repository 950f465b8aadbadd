//! The plugin configuration parser on arbitrary bytes: Envoy hands the filter whatever the mesh
//! operator wrote, and a panic while parsing it traps the VM. A configuration that parses must
//! also redact without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlog_core::config::FilterConfig;
use meshlog_core::redact::{RedactionPolicy, Summary};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = FilterConfig::from_json(data) {
        let mut s = Summary::new();
        let _ = c.redaction.text("jo@example.com 4111111111111111 ghp_x", &mut s);
        let _ = c.redaction.url("https://u:p@h/a/123?token=x#f", &mut s);
        let _ = c.redaction.request_header("referer", "https://h/p?q=1", &mut s);
    }
    if let Ok(p) = RedactionPolicy::from_json(data) {
        let mut s = Summary::new();
        let _ = p.query("a=1&password=x&ref=123456789", &mut s);
        let _ = p.path("/api/v1/users/123/orders/abc", &mut s);
        let _ = p.version();
    }
});
