//! A quiet baseline: 34 hours of varied normal traffic (six services, thirteen sidecars,
//! workload callers, end users in business hours, a client that legitimately sends a token
//! parameter, PII and cookies redacted, a few 4xx and 5xx), generated from a seed, fires nothing.
//! Prints the false positives per rule.

use crate::traffic::*;
use meshlog_detect::DetectConfig;
use meshlog_detect::config::BUILT_IN;

#[test]
fn quiet_baseline_fires_nothing() {
    let mut sim = Sim::new(&DetectConfig::default());
    let mut traffic = Traffic::new(0x5eed_0001);
    sim.normal(&mut traffic, 34 * 60);
    let records = sim
        .log
        .iter()
        .filter(|r| r.get("event_name").and_then(|v| v.as_str()) == Some("meshlog.http.access"))
        .count();
    assert!(records >= 100_000, "only {records} records");
    let fired = sim.fired();
    println!("quiet baseline: {records} records over 34 h, seed 0x5eed0001");
    println!("| rule | false positives |");
    println!("|---|---|");
    for rule in BUILT_IN {
        println!("| {rule} | {} |", fired.get(rule).copied().unwrap_or(0));
    }
    let fps: Vec<_> = sim
        .transitions
        .iter()
        .map(|t| (t.rule.clone(), t.group.to_string(), t.summary.clone()))
        .collect();
    assert!(fps.is_empty(), "false positives: {fps:#?}");
    // Every rule saw the traffic (none is silent because it ignored it).
    for s in sim.det.stats() {
        assert!(s.groups > 0, "{s:?}");
        assert_eq!(s.evicted, 0, "{s:?}");
    }
}
