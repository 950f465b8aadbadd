//! A configuration update replaces the plugin (Envoy makes a new root context and calls the old
//! one's `on_done`): what the old one still held, access records and its sampling tally, must
//! reach the collector rather than die with it. The listener comes from a file (LDS), rewritten
//! as a control plane would push a change.

use meshlog_e2e::{Collector, Envoy, Sidecar, Upstream, send, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

/// Batches only leave at a flush: a ten-minute age and a huge count. Sampling on at rate 1 (all
/// kept) with a ten-minute tally interval, so the tally too only leaves at the flush.
fn plugin_config(service: &str) -> String {
    format!(
        r#"{{"batch":{{"max_age_ms":600000,"max_records":100000}},"resource":{{"service.name":"{service}"}},"sampling":{{"default_rate":1.0,"tally_interval_ms":600000}}}}"#
    )
}

/// The rendered sidecar as (bootstrap without listeners, its one listener).
fn split(sidecar: &Sidecar) -> (Value, Value) {
    let mut boot: Value = serde_norway::from_str(&sidecar.render()).unwrap();
    let listeners = boot["static_resources"]
        .as_object_mut()
        .unwrap()
        .remove("listeners")
        .unwrap();
    (boot, listeners[0].clone())
}

/// Writes an LDS response holding `listener`, atomically, as Envoy's file watch expects.
fn write_lds(path: &std::path::Path, listener: &Value, version: &str) {
    let mut l = listener.clone();
    l["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
    let doc = json!({"version_info": version, "resources": [l]});
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&doc).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_configuration_update_ships_what_the_old_plugin_held() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let mut sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    sidecar.plugin_config = Some(plugin_config("before"));
    let (mut boot, listener_v1) = split(&sidecar);
    sidecar.plugin_config = Some(plugin_config("after"));
    let (_, listener_v2) = split(&sidecar);

    let lds_dir = tempfile::tempdir().unwrap();
    let lds = lds_dir.path().join("lds.json");
    write_lds(&lds, &listener_v1, "1");
    boot["dynamic_resources"] = json!({
        "lds_config": {"resource_api_version": "V3", "path_config_source": {"path": lds}}
    });
    // The replaced listener drains for 1 s, not Envoy's default 10 minutes.
    let envoy = Envoy::start_yaml(
        &serde_json::to_string(&boot).unwrap(),
        1,
        &["--drain-time-s", "1"],
    );

    let n = 20;
    for i in 0..n {
        assert_eq!(send(envoy.listen, "GET", &format!("/r/{i}"), &[], b""), 200);
    }
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        collector.query().is_empty(),
        "nothing may ship before the update: this test is about the final flush"
    );

    write_lds(&lds, &listener_v2, "2");
    let modified = wait_for(Duration::from_secs(10), || {
        envoy
            .stat("listener_manager.listener_modified")
            .filter(|&m| m >= 1)
    });
    assert!(
        modified.is_some(),
        "Envoy did not take the new listener:\n{}",
        envoy.proc.output()
    );

    // The old plugin's records and tally arrive once its listener has drained.
    let stored = collector.wait_records(n + 1, &[&envoy]);
    let access: Vec<&Value> = stored
        .iter()
        .filter(|r| r["event_name"] == "meshlog.http.access")
        .collect();
    let tallies: Vec<&Value> = stored
        .iter()
        .filter(|r| r["event_name"] == "meshlog.sampling.tally")
        .collect();
    assert_eq!(access.len(), n, "every request the old plugin held");
    assert_eq!(tallies.len(), 1, "{stored:?}");
    assert_eq!(tallies[0]["meshlog.sampling.seen"], n as u64);
    for r in &stored {
        assert_eq!(r["resource.service.name"], "before", "{r}");
    }
    // The new plugin serves on.
    assert_eq!(send(envoy.listen, "GET", "/after", &[], b""), 200);
}
