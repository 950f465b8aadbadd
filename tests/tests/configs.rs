//! Every plugin configuration shipped in `envoy-config/` (Envoy bootstraps, bench variants, the
//! Istio WasmPlugin and EnvoyFilter) is accepted by the filter's own parser, so a manifest cannot
//! drift into one the filter would refuse at start-up.

use meshlog_core::FilterConfig;
use meshlog_core::redact::RedactionPolicy;
use meshlog_e2e::repo_root;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

/// Loads a YAML file as JSON; bench templates' `@PLACEHOLDER@`s become 0 first.
fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let mut clean = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find('@') {
        match rest[i + 1..].find('@') {
            Some(j)
                if rest[i + 1..i + 1 + j]
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
                    && j > 0 =>
            {
                clean.push_str(&rest[..i]);
                clean.push('0');
                rest = &rest[i + j + 2..];
            }
            _ => {
                clean.push_str(&rest[..=i]);
                rest = &rest[i + 1..];
            }
        }
    }
    clean.push_str(rest);
    serde_norway::from_str(&clean).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Plugin configurations in a document: Envoy `configuration` StringValues and Istio
/// `pluginConfig` objects, with where they were found.
fn plugin_configs(v: &Value, at: &str, out: &mut Vec<(String, Vec<u8>)>) {
    match v {
        Value::Object(m) => {
            if m.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.protobuf.StringValue")
                && let Some(s) = m.get("value").and_then(Value::as_str)
            {
                out.push((at.to_owned(), s.as_bytes().to_vec()));
            }
            if let Some(pc) = m.get("pluginConfig") {
                out.push((
                    format!("{at}.pluginConfig"),
                    serde_json::to_vec(pc).unwrap(),
                ));
            }
            for (k, x) in m {
                plugin_configs(x, &format!("{at}.{k}"), out);
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| plugin_configs(x, &format!("{at}[{i}]"), out)),
        _ => {}
    }
}

#[test]
fn every_shipped_plugin_configuration_is_valid() {
    let mut files = Vec::new();
    yaml_files(&repo_root().join("envoy-config"), &mut files);
    files.sort();
    let mut checked = Vec::new();
    for f in &files {
        let mut found = Vec::new();
        plugin_configs(&load(f), "$", &mut found);
        for (at, cfg) in found {
            let name = format!(
                "{}{}",
                f.strip_prefix(repo_root()).unwrap_or(f).display(),
                &at[1..]
            );
            if let Err(e) = FilterConfig::from_json(&cfg) {
                panic!("{name}: {e}");
            }
            checked.push(name);
        }
    }
    for must in [
        "sidecar.yaml",
        "access-logger.yaml",
        "tcp.yaml",
        "istio/wasmplugin.yaml",
        "istio/wasmplugin-network.yaml",
        "istio/envoyfilter-access-logger.yaml",
    ] {
        assert!(
            checked.iter().any(|c| c.contains(must)),
            "no plugin configuration checked in {must}: {checked:?}"
        );
    }
}

#[test]
fn the_network_examples_say_network_mode() {
    use meshlog_core::config::Mode;
    for (file, pointer) in [
        (
            "envoy-config/tcp.yaml",
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/config/configuration/value",
        ),
        (
            "envoy-config/istio/wasmplugin-network.yaml",
            "/spec/pluginConfig",
        ),
    ] {
        let doc = load(&repo_root().join(file));
        let v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{file}: no {pointer}"));
        let raw = match v {
            Value::String(s) => s.as_bytes().to_vec(),
            other => serde_json::to_vec(other).unwrap(),
        };
        assert_eq!(
            FilterConfig::from_json(&raw).unwrap().mode,
            Mode::Network,
            "{file}"
        );
    }
}

#[test]
fn the_wasmplugin_redaction_settings_take_effect() {
    let doc = load(&repo_root().join("envoy-config/istio/wasmplugin.yaml"));
    let cfg = FilterConfig::from_json(&serde_json::to_vec(&doc["spec"]["pluginConfig"]).unwrap())
        .unwrap();
    assert_eq!(
        cfg.collector.cluster,
        "outbound|4318||meshlog-collector.meshlog.svc.cluster.local"
    );
    assert_ne!(
        cfg.redaction.version(),
        RedactionPolicy::default().version()
    );
    // A typo in the manifest would be refused, with its path.
    let mut bad = doc["spec"]["pluginConfig"].clone();
    bad["batch"]["max_recods"] = Value::from(5);
    let e = FilterConfig::from_json(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
    assert!(
        e.to_string().contains("$.batch.max_recods: unknown field"),
        "{e}"
    );
}

#[test]
fn the_enduser_examples_read_verified_claims() {
    use meshlog_core::enduser::{IdMode, JWT_AUTHN_NAMESPACE, Source};
    for file in [
        "envoy-config/jwt-authn.yaml",
        "envoy-config/jwt-authn-access-logger.yaml",
    ] {
        let mut found = Vec::new();
        plugin_configs(&load(&repo_root().join(file)), "", &mut found);
        assert_eq!(found.len(), 1, "{file}");
        let cfg = FilterConfig::from_json(&found[0].1).unwrap();
        let e = cfg.enduser.unwrap_or_else(|| panic!("{file}: enduser off"));
        assert_eq!(e.source, Source::JwtAuthn, "{file}");
        assert_eq!(e.namespace, JWT_AUTHN_NAMESPACE, "{file}");
        // The key the bootstrap's jwt_authn writes the payload under.
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let key = e.key.as_deref().unwrap();
        assert!(
            text.contains(&format!("payload_in_metadata: {key}")),
            "{file}"
        );
    }
    let doc = load(&repo_root().join("envoy-config/istio/wasmplugin-enduser.yaml"));
    let cfg = FilterConfig::from_json(&serde_json::to_vec(&doc["spec"]["pluginConfig"]).unwrap())
        .unwrap();
    let e = cfg.enduser.unwrap();
    assert_eq!(e.source, Source::IstioAuthn);
    assert_eq!(e.id, IdMode::Hash);
    // Without the key, "hash" is refused with its path.
    let mut bad = doc["spec"]["pluginConfig"].clone();
    bad["redaction"].as_object_mut().unwrap().remove("hmac_key");
    let e = FilterConfig::from_json(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
    assert!(e.to_string().contains("$.enduser.id"), "{e}");
}

/// The names the Wasm module imports (its import section), read from the built module.
fn wasm_imports(module: &[u8]) -> Vec<String> {
    fn leb(b: &[u8], i: &mut usize) -> usize {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let x = b[*i];
            *i += 1;
            v |= usize::from(x & 0x7f) << shift;
            shift += 7;
            if x < 0x80 {
                return v;
            }
        }
    }
    fn name(b: &[u8], i: &mut usize) -> String {
        let n = leb(b, i);
        let s = String::from_utf8(b[*i..*i + n].to_vec()).unwrap();
        *i += n;
        s
    }
    assert_eq!(&module[..4], b"\0asm", "not a Wasm module");
    let mut i = 8;
    let mut out = Vec::new();
    while i < module.len() {
        let id = module[i];
        i += 1;
        let size = leb(module, &mut i);
        let end = i + size;
        if id == 2 {
            let mut j = i;
            for _ in 0..leb(module, &mut j) {
                let _module = name(module, &mut j);
                let field = name(module, &mut j);
                let kind = module[j];
                j += 1;
                match kind {
                    0 => {
                        leb(module, &mut j);
                    }
                    1 => {
                        j += 1;
                        let flags = leb(module, &mut j);
                        leb(module, &mut j);
                        if flags & 1 == 1 {
                            leb(module, &mut j);
                        }
                    }
                    2 => {
                        let flags = leb(module, &mut j);
                        leb(module, &mut j);
                        if flags & 1 == 1 {
                            leb(module, &mut j);
                        }
                    }
                    3 => j += 2,
                    k => panic!("import kind {k}"),
                }
                if kind == 0 {
                    out.push(field);
                }
            }
        }
        i = end;
    }
    out
}

/// `allowed_capabilities` of every plugin in a document that restricts its capabilities.
fn capability_lists(v: &Value, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            if let Some(allowed) = m
                .get("capability_restriction_config")
                .and_then(|c| c.get("allowed_capabilities"))
                .and_then(Value::as_object)
            {
                out.push(allowed.keys().cloned().collect());
            }
            m.values().for_each(|x| capability_lists(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| capability_lists(x, out)),
        _ => {}
    }
}

/// The HTTP-filter configurations hide the per-stream callbacks the module does not need
/// (fewer VM entries per request), and still allow every function the module imports: an
/// unlisted import would become a stub and the filter would silently stop logging.
#[test]
fn the_http_filter_capability_lists_hide_stream_callbacks_and_allow_every_import() {
    let imports = wasm_imports(&std::fs::read(meshlog_e2e::wasm_path()).unwrap());
    assert!(
        imports.iter().any(|i| i == "proxy_http_call") && imports.len() > 20,
        "{imports:?}"
    );
    let mut files = Vec::new();
    yaml_files(&repo_root().join("envoy-config"), &mut files);
    let mut restricted = Vec::new();
    for f in &files {
        let mut lists = Vec::new();
        capability_lists(&load(f), &mut lists);
        for allowed in lists {
            let name = f
                .strip_prefix(repo_root())
                .unwrap_or(f)
                .display()
                .to_string();
            for i in &imports {
                assert!(allowed.contains(i), "{name}: import {i} not allowed");
            }
            for needed in [
                "proxy_on_vm_start",
                "proxy_on_configure",
                "proxy_on_context_create",
                "proxy_on_log",
                "proxy_on_done",
                "proxy_on_delete",
                "proxy_on_tick",
                "proxy_on_http_call_response",
            ] {
                assert!(allowed.iter().any(|a| a == needed), "{name}: {needed}");
            }
            for hidden in ["proxy_on_request_headers", "proxy_on_response_body"] {
                assert!(!allowed.iter().any(|a| a == hidden), "{name}: {hidden}");
            }
            restricted.push(name);
        }
    }
    for must in [
        "envoy-config/sidecar.yaml",
        "envoy-config/bench/meshlog.yaml",
    ] {
        assert!(
            restricted.iter().any(|r| r == must),
            "{must} has no capability restriction: {restricted:?}"
        );
    }
}
