//! Unit tests of the sampler: decisions, precedence, always-keep, rate cap, tallies, config.

use super::*;
use crate::record::AttrValue;

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * S;

fn policy(json: &str) -> SamplingPolicy {
    match SamplingPolicy::from_json(json.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn errors(json: &str) -> Vec<(String, String)> {
    match SamplingPolicy::from_json(json.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|f| (f.path, f.reason)).collect(),
    }
}

/// A trace id whose sampling key is `key` (56 bits).
fn trace_with_key(key: u64) -> [u8; 16] {
    let mut t = [0xabu8; 16];
    for (i, b) in key.to_be_bytes().iter().skip(1).enumerate() {
        t[9 + i] = *b;
    }
    t
}

/// Keys just inside and just outside rate `r`.
fn kept_trace(r: f64) -> [u8; 16] {
    trace_with_key(threshold(r))
}
fn dropped_trace(r: f64) -> [u8; 16] {
    trace_with_key(threshold(r) - 1)
}

fn get<'a>(path: &'a str) -> RequestFacts<'a> {
    RequestFacts {
        method: Some("GET"),
        path: Some(path),
        status: Some(200),
        duration_ns: Some(5 * MS),
        ..RequestFacts::default()
    }
}

fn keep(reason: KeepReason, adjusted_count: f64) -> Decision {
    Decision::Keep {
        adjusted_count,
        reason,
    }
}

#[test]
fn no_section_keeps_everything() {
    let p = SamplingPolicy::default();
    assert!(!p.is_enabled());
    assert_eq!(p.version().len(), 16);
    assert!(p.version().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(SamplingPolicy::from_json(b"").unwrap(), p);
    assert_eq!(SamplingPolicy::from_json(b" null ").unwrap(), p);
    let mut s = Sampler::new(p, T0);
    for f in [
        get("/healthz"),
        get("/api"),
        RequestFacts::default(),
        RequestFacts {
            trace_id: Some(dropped_trace(0.5)),
            ..get("/x")
        },
    ] {
        assert_eq!(s.decide(&f, T0), keep(KeepReason::NotSampled, 1.0));
    }
    let t = s.take_tally(T0 + S);
    assert_eq!((t.seen, t.kept, t.dropped()), (4, 4, 0));
}

#[test]
fn pinned_versions() {
    // A change of the canonical form (or of the engine) must be deliberate: these are what
    // records carry. (23f6…: always_keep.grpc_statuses joined the canonical form.)
    assert_eq!(SamplingPolicy::default().version(), "35e07b11a9aa59df");
    assert_eq!(policy("{}").version(), "23f623590ac736c5");
}

#[test]
fn empty_section_drops_only_health_checks_and_counts_them() {
    let p = policy("{}");
    assert!(p.is_enabled());
    assert_ne!(p.version(), SamplingPolicy::default().version());
    assert_eq!(p.default_rate(), 1.0);
    let mut s = Sampler::new(p, T0);
    for path in [
        "/healthz",
        "/readyz",
        "/livez",
        "/livez/",
        "/healthz?full=1",
    ] {
        assert_eq!(
            s.decide(&get(path), T0),
            Decision::Drop(DropReason::HealthCheck),
            "{path}"
        );
    }
    assert_eq!(
        s.decide(&get("/healthz/deep"), T0),
        keep(KeepReason::Sampled, 1.0)
    );
    // A failing health check is an error: kept.
    let failing = RequestFacts {
        status: Some(503),
        ..get("/readyz")
    };
    assert_eq!(s.decide(&failing, T0), keep(KeepReason::ErrorStatus, 1.0));
    let t = s.take_tally(T0 + S);
    assert_eq!(t.dropped_health_check, 5);
    assert_eq!(t.kept, 2);
    assert_eq!(t.by_route[NO_ROUTE].health_check, 5);
}

#[test]
fn each_always_keep_class_beats_rate_zero() {
    let p = policy(
        r#"{"default_rate": 0.0,
            "always_keep": {"latency_ms": 2000, "methods": ["delete"], "paths": ["/admin*", "/users/{id}/keys"],
                            "response_flags": "any"}}"#,
    );
    let k = |f: RequestFacts<'_>| p.classify(&f);
    assert_eq!(
        k(get("/api")),
        Decision::Drop(DropReason::SampledOut),
        "baseline: rate 0 drops"
    );
    let cases: Vec<(RequestFacts<'_>, KeepReason)> = vec![
        (
            RequestFacts {
                status: Some(500),
                ..get("/a")
            },
            KeepReason::ErrorStatus,
        ),
        (
            RequestFacts {
                status: Some(599),
                ..get("/a")
            },
            KeepReason::ErrorStatus,
        ),
        (
            RequestFacts {
                status: Some(401),
                ..get("/a")
            },
            KeepReason::Status,
        ),
        (
            RequestFacts {
                status: Some(403),
                ..get("/a")
            },
            KeepReason::Status,
        ),
        (
            RequestFacts {
                status: Some(429),
                ..get("/a")
            },
            KeepReason::Status,
        ),
        (
            RequestFacts {
                response_flags: 1 << 5,
                ..get("/a")
            },
            KeepReason::ResponseFlags,
        ),
        (
            RequestFacts {
                duration_ns: Some(2000 * MS + 1),
                ..get("/a")
            },
            KeepReason::Latency,
        ),
        (
            RequestFacts {
                method: Some("DELETE"),
                ..get("/a")
            },
            KeepReason::Method,
        ),
        (
            RequestFacts {
                method: Some("Delete"),
                ..get("/a")
            },
            KeepReason::Method,
        ),
        (get("/admin/users"), KeepReason::Path),
        (get("/users/42/keys"), KeepReason::Path),
        (
            RequestFacts {
                route: Some("/users/{id}/keys"),
                ..get("/elsewhere")
            },
            KeepReason::Path,
        ),
    ];
    for (f, why) in cases {
        assert_eq!(k(f), keep(why, 1.0), "{f:?}");
    }
    // Just below the thresholds: dropped.
    for f in [
        RequestFacts {
            status: Some(404),
            ..get("/a")
        },
        RequestFacts {
            status: Some(499),
            ..get("/a")
        },
        RequestFacts {
            duration_ns: Some(2000 * MS),
            ..get("/a")
        },
        get("/users/42/keys/extra"),
        get("/api/admin"),
    ] {
        assert_eq!(k(f), Decision::Drop(DropReason::SampledOut), "{f:?}");
    }
}

#[test]
fn configurable_statuses_and_flags() {
    let p = policy(
        r#"{"default_rate": 0, "always_keep": {"status_min": 400, "statuses": [302],
            "response_flags": ["UF", "uh"]}}"#,
    );
    let st = |s| {
        p.classify(&RequestFacts {
            status: Some(s),
            ..get("/a")
        })
    };
    assert_eq!(st(404), keep(KeepReason::ErrorStatus, 1.0));
    assert_eq!(st(302), keep(KeepReason::Status, 1.0));
    assert_eq!(st(301), Decision::Drop(DropReason::SampledOut));
    let fl = |m| {
        p.classify(&RequestFacts {
            response_flags: m,
            ..get("/a")
        })
    };
    assert_eq!(fl(1 << 1), keep(KeepReason::ResponseFlags, 1.0), "UH");
    assert_eq!(fl(1 << 5), keep(KeepReason::ResponseFlags, 1.0), "UF");
    assert_eq!(
        fl(1 << 14),
        Decision::Drop(DropReason::SampledOut),
        "DC not listed"
    );

    let none =
        policy(r#"{"default_rate": 0, "always_keep": {"statuses": [], "response_flags": "none"}}"#);
    for f in [
        RequestFacts {
            status: Some(401),
            ..get("/a")
        },
        RequestFacts {
            response_flags: u64::MAX,
            ..get("/a")
        },
    ] {
        assert_eq!(none.classify(&f), Decision::Drop(DropReason::SampledOut));
    }
    // 5xx cannot be switched off.
    assert_eq!(
        none.classify(&RequestFacts {
            status: Some(502),
            ..get("/a")
        }),
        keep(KeepReason::ErrorStatus, 1.0)
    );
    let e = errors(r#"{"always_keep": {"status_min": 501}}"#);
    assert_eq!(e[0].0, "$.sampling.always_keep.status_min");
}

#[test]
fn rates_adjusted_counts_and_golden_decisions() {
    let p = policy(r#"{"default_rate": 0.1}"#);
    let f = |t: [u8; 16]| RequestFacts {
        trace_id: Some(t),
        ..get("/a")
    };
    assert_eq!(
        p.classify(&f(kept_trace(0.1))),
        keep(KeepReason::Sampled, 10.0)
    );
    assert_eq!(
        p.classify(&f(dropped_trace(0.1))),
        Decision::Drop(DropReason::SampledOut)
    );
    // Golden: the W3C example trace id is dropped at 10%, kept at 25% (adjusted count 4).
    let w3c = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    assert_eq!(p.classify(&f(w3c)), Decision::Drop(DropReason::SampledOut));
    let q = policy(r#"{"default_rate": 0.25}"#);
    assert_eq!(q.classify(&f(w3c)), keep(KeepReason::Sampled, 4.0));
    // Golden: request ids (sha256, first 7 bytes) when there is no trace.
    let r = |id| RequestFacts {
        request_id: Some(id),
        ..get("/a")
    };
    // sha256("abc") starts ba7816…: key ≥ 0.9·2^56 ⇔ first byte ≥ 0xe6; 0xba is kept at 0.3.
    assert_eq!(
        p.classify(&r("abc")),
        Decision::Drop(DropReason::SampledOut)
    );
    assert_eq!(
        policy(r#"{"default_rate": 0.3}"#).classify(&r("abc")),
        keep(KeepReason::Sampled, 1.0 / 0.3)
    );
    // The trace id wins over the request id.
    assert_eq!(
        p.classify(&RequestFacts {
            request_id: Some("abc"),
            ..f(kept_trace(0.1))
        }),
        keep(KeepReason::Sampled, 10.0)
    );
    // No key: kept, counted once.
    assert_eq!(p.classify(&get("/a")), keep(KeepReason::NoSamplingKey, 1.0));
    // Rate 0 and 1 need no key.
    assert_eq!(
        policy(r#"{"default_rate": 0}"#).classify(&get("/a")),
        Decision::Drop(DropReason::SampledOut)
    );
    assert_eq!(
        policy(r#"{"default_rate": 1}"#).classify(&get("/a")),
        keep(KeepReason::Sampled, 1.0)
    );
}

#[test]
fn rule_precedence() {
    let p = policy(
        r#"{"default_rate": 0.9, "rules": [
            {"method": "GET", "rate": 0.01},
            {"service": "checkout*", "rate": 0.02},
            {"service": "checkout", "rate": 0.03},
            {"service": "checkout", "method": "get", "rate": 0.04},
            {"route": "/api*", "rate": 0.05},
            {"route": "/api/v1/search*", "rate": 0.06},
            {"route": "/api/v1/{x}", "rate": 0.07},
            {"route": "/api/v1/orders", "rate": 0.08},
            {"route": "/api*", "method": "POST", "rate": 0.09},
            {"route": "/api*", "service": "checkout", "rate": 0.10},
            {"route": "/api*", "service": "checkout", "method": "POST", "rate": 0.11},
            {"service": "billing", "method": "GET", "rate": 0.12},
            {"route": "/t/{a}/x", "rate": 0.13},
            {"route": "/t/x/{b}", "rate": 0.14}
        ]}"#,
    );
    let rate = |method: &str, path: &str, service: Option<&str>| {
        p.rate_for(&RequestFacts {
            method: Some(method),
            path: Some(path),
            service,
            ..RequestFacts::default()
        })
    };
    assert_eq!(rate("PUT", "/other", None), 0.9, "no rule: default");
    assert_eq!(rate("GET", "/other", None), 0.01, "method only");
    assert_eq!(
        rate("PUT", "/other", Some("checkout-v2")),
        0.02,
        "service prefix"
    );
    assert_eq!(
        rate("PUT", "/other", Some("checkout")),
        0.03,
        "exact service beats prefix"
    );
    assert_eq!(
        rate("GET", "/other", Some("checkout")),
        0.04,
        "service+method beats service"
    );
    assert_eq!(
        rate("GET", "/api/x", Some("billing")),
        0.05,
        "route beats service+method"
    );
    assert_eq!(rate("GET", "/other", Some("billing")), 0.12);
    assert_eq!(rate("PUT", "/api/v1/search/q", None), 0.06, "longer prefix");
    assert_eq!(
        rate("PUT", "/api/v1/users", None),
        0.07,
        "template beats prefix"
    );
    assert_eq!(
        rate("PUT", "/api/v1/search", None),
        0.07,
        "template beats longer prefix"
    );
    assert_eq!(
        rate("PUT", "/api/v1/orders", None),
        0.08,
        "exact beats template"
    );
    assert_eq!(
        rate("POST", "/api/v1/orders", None),
        0.09,
        "route+method beats route"
    );
    assert_eq!(rate("POST", "/api/x", Some("checkout")), 0.11, "all three");
    assert_eq!(
        rate("PUT", "/api/v1/orders", Some("checkout")),
        0.10,
        "route+service"
    );
    // Equally specific (templates with two literal segments): the rule listed first.
    assert_eq!(rate("PUT", "/t/x/x", None), 0.13);
    assert_eq!(rate("PUT", "/t/y/x", None), 0.13);
    assert_eq!(rate("PUT", "/t/x/y", None), 0.14);
    // The route (templated) matches too.
    assert_eq!(
        p.rate_for(&RequestFacts {
            method: Some("PUT"),
            path: Some("/a/b"),
            route: Some("/api/v1/orders"),
            ..RequestFacts::default()
        }),
        0.08
    );
}

#[test]
fn rule_order_only_matters_between_ties() {
    let a = policy(r#"{"rules": [{"route": "/a*", "rate": 0.5}, {"method": "GET", "rate": 0.2}]}"#);
    let b = policy(r#"{"rules": [{"method": "GET", "rate": 0.2}, {"route": "/a*", "rate": 0.5}]}"#);
    assert_eq!(a.version(), b.version(), "same effective order");
    let c =
        policy(r#"{"rules": [{"route": "/a/x*", "rate": 0.5}, {"route": "/a/y*", "rate": 0.2}]}"#);
    let d =
        policy(r#"{"rules": [{"route": "/a/y*", "rate": 0.2}, {"route": "/a/x*", "rate": 0.5}]}"#);
    assert_ne!(c.version(), d.version(), "ties are broken by config order");
}

#[test]
fn version_tracks_the_effective_policy() {
    let v = |j: &str| policy(j).version().to_owned();
    let base = v(r#"{"default_rate": 0.1}"#);
    assert_ne!(base, v(r#"{"default_rate": 0.2}"#));
    assert_ne!(
        base,
        v(r#"{"default_rate": 0.1, "rate_cap": {"records_per_second": 10}}"#)
    );
    assert_ne!(base, v(r#"{"default_rate": 0.1, "drop": {"paths": []}}"#));
    assert_ne!(
        base,
        v(r#"{"default_rate": 0.1, "always_keep": {"latency_ms": 5}}"#)
    );
    assert_ne!(
        base,
        v(r#"{"default_rate": 0.1, "always_keep": {"response_flags": "none"}}"#)
    );
    assert_ne!(
        base,
        v(r#"{"default_rate": 0.1, "rules": [{"method": "GET", "rate": 0.1}]}"#)
    );
    // Defaults spelled out are the defaults; sets are sets.
    assert_eq!(
        base,
        v(
            r#"{"default_rate": 0.1, "always_keep": {"status_min": 500, "statuses": [429, 401, 403, 401],
              "response_flags": "any"}, "drop": {"paths": ["/readyz", "/livez/", "/healthz"]}}"#
        )
    );
    assert_eq!(
        v(r#"{"always_keep": {"methods": ["DELETE", "patch"], "response_flags": ["UH", "UF"]}}"#),
        v(r#"{"always_keep": {"methods": ["PATCH", "delete"], "response_flags": ["UF", "UH"]}}"#)
    );
    assert_eq!(
        v(r#"{"rate_cap": {"records_per_second": 10}}"#),
        v(r#"{"rate_cap": {"records_per_second": 10, "burst": 10}}"#)
    );
}

#[test]
fn reports_every_problem_with_its_path() {
    let e = errors(
        r#"{
          "default_rate": 1.5,
          "rules": [
            {"rate": 0.5},
            {"route": "api*", "rate": 0.1},
            {"route": "/a", "rate": "half"},
            {"route": "/b"},
            {"service": "*", "rate": 0.1},
            {"method": "GE T", "rate": 0.1},
            {"route": "/c", "rate": 0.1, "weight": 2},
            {"route": "/c", "rate": 0.2},
            7
          ],
          "always_keep": {"status_min": 600, "statuses": [200, 42, "x"], "latency_ms": 0,
                          "methods": [1], "paths": ["/a*b"], "response_flags": ["UF", "XX"], "extra": 1},
          "drop": {"paths": "/healthz"},
          "rate_cap": {"burst": 0},
          "bogus": true
        }"#,
    );
    let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    let want = [
        "$.sampling.default_rate",
        "$.sampling.rules[0]",
        "$.sampling.rules[1].route",
        "$.sampling.rules[2].rate",
        "$.sampling.rules[3].rate",
        "$.sampling.rules[4].service",
        "$.sampling.rules[5].method",
        "$.sampling.rules[6].weight",
        "$.sampling.rules[7]",
        "$.sampling.rules[8]",
        "$.sampling.always_keep.status_min",
        "$.sampling.always_keep.statuses[1]",
        "$.sampling.always_keep.statuses[2]",
        "$.sampling.always_keep.latency_ms",
        "$.sampling.always_keep.methods[0]",
        "$.sampling.always_keep.paths[0]",
        "$.sampling.always_keep.response_flags[1]",
        "$.sampling.always_keep.extra",
        "$.sampling.drop.paths",
        "$.sampling.rate_cap.burst",
        "$.sampling.rate_cap.records_per_second",
        "$.sampling.bogus",
    ];
    for w in want {
        assert!(paths.contains(&w), "missing {w} in {e:#?}");
    }
    assert_eq!(paths.len(), want.len(), "{e:#?}");
    let reason = |p: &str| e.iter().find(|(x, _)| x == p).unwrap().1.clone();
    assert!(reason("$.sampling.default_rate").contains("0.0 to 1.0, got 1.5"));
    assert!(reason("$.sampling.rules[0]").contains("at least one of route, service, method"));
    assert!(reason("$.sampling.rules[3].rate").starts_with("required"));
    assert!(reason("$.sampling.rules[7]").contains("same route, service and method as rules[6]"));
    assert!(
        reason("$.sampling.always_keep.response_flags[1]").contains("unknown Envoy response flag")
    );
    assert!(reason("$.sampling.rate_cap.records_per_second").starts_with("required"));
    assert!(reason("$.sampling.bogus").starts_with("unknown field"));
}

#[test]
fn wrong_shapes() {
    assert_eq!(errors("[1]")[0].0, "$.sampling");
    assert!(errors("{nope")[0].1.starts_with("not valid JSON"));
    assert_eq!(errors(r#"{"rules": {}}"#)[0].0, "$.sampling.rules");
    assert_eq!(
        errors(r#"{"always_keep": []}"#)[0].0,
        "$.sampling.always_keep"
    );
    assert_eq!(
        errors(r#"{"always_keep": {"response_flags": "some"}}"#)[0].0,
        "$.sampling.always_keep.response_flags"
    );
    assert_eq!(errors(r#"{"rate_cap": 5}"#)[0].0, "$.sampling.rate_cap");
    let many = format!(
        r#"{{"rules": [{}]}}"#,
        (0..=MAX_RULES)
            .map(|i| format!(r#"{{"route": "/r{i}", "rate": 0.5}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(errors(&many)[0].0, "$.sampling.rules");
    // Nulls are absent fields.
    let p = policy(
        r#"{"default_rate": null, "rules": null, "rate_cap": null, "always_keep": {"latency_ms": null}}"#,
    );
    assert_eq!(p.version(), policy("{}").version());
}

#[test]
fn rate_cap_with_an_injected_clock() {
    let p = policy(r#"{"rate_cap": {"records_per_second": 10, "burst": 5}}"#);
    assert_eq!(
        p.rate_cap(),
        Some(RateCap {
            records_per_second: 10,
            burst: 5
        })
    );
    let mut s = Sampler::new(p, T0);
    let ok = get("/a");
    let d: Vec<bool> = (0..8).map(|_| s.decide(&ok, T0).is_keep()).collect();
    assert_eq!(d, [true, true, true, true, true, false, false, false]);
    assert_eq!(
        s.decide(&ok, T0),
        Decision::Drop(DropReason::RateCap {
            adjusted_count: 1.0
        })
    );
    // 100 ms: one token.
    assert!(s.decide(&ok, T0 + 100 * MS).is_keep());
    assert!(!s.decide(&ok, T0 + 100 * MS).is_keep());
    // Errors bypass the cap, and use up the tokens that come back.
    let err = RequestFacts {
        status: Some(500),
        ..get("/a")
    };
    for _ in 0..1000 {
        assert_eq!(
            s.decide(&err, T0 + 200 * MS),
            keep(KeepReason::ErrorStatus, 1.0)
        );
    }
    assert!(
        !s.decide(&ok, T0 + 200 * MS).is_keep(),
        "the flood took the token"
    );
    // Health checks never touch the bucket.
    assert_eq!(
        s.decide(&get("/healthz"), T0 + 10 * S),
        Decision::Drop(DropReason::HealthCheck)
    );
    let t = s.take_tally(T0 + 10 * S);
    assert_eq!(t.seen, 8 + 1 + 2 + 1000 + 1 + 1);
    assert_eq!(t.kept, 5 + 1 + 1000);
    assert_eq!(t.kept_always, 1000);
    assert_eq!(t.dropped_rate_cap, 3 + 1 + 1 + 1);
    assert_eq!(t.dropped_rate_cap_adjusted, 6.0);
    assert_eq!(t.dropped_health_check, 1);
    assert_eq!(t.seen, t.kept + t.dropped());
    // After the pause the burst is back.
    let d: Vec<bool> = (0..6)
        .map(|_| s.decide(&ok, T0 + 10 * S).is_keep())
        .collect();
    assert_eq!(d, [true, true, true, true, true, false]);
}

#[test]
fn capped_sampled_records_keep_their_adjusted_count_in_the_tally() {
    let p = policy(r#"{"default_rate": 0.25, "rate_cap": {"records_per_second": 1, "burst": 1}}"#);
    let mut s = Sampler::new(p, T0);
    let f = RequestFacts {
        trace_id: Some(kept_trace(0.25)),
        ..get("/a")
    };
    assert_eq!(s.decide(&f, T0), keep(KeepReason::Sampled, 4.0));
    assert_eq!(
        s.decide(&f, T0),
        Decision::Drop(DropReason::RateCap {
            adjusted_count: 4.0
        })
    );
    let out = RequestFacts {
        trace_id: Some(dropped_trace(0.25)),
        ..get("/a")
    };
    assert_eq!(s.decide(&out, T0), Decision::Drop(DropReason::SampledOut));
    let t = s.tally();
    assert_eq!(t.estimated_requests(), 8.0);
    assert_eq!((t.kept, t.dropped_sampled, t.dropped_rate_cap), (1, 1, 1));
}

#[test]
fn two_samplers_agree_on_every_trace() {
    let json = r#"{"default_rate": 0.1, "rules": [{"route": "/api/v1/search*", "rate": 0.01},
                   {"method": "POST", "rate": 0.5}]}"#;
    // Parsed separately, as two Envoys would.
    let mut a = Sampler::new(policy(json), T0);
    let mut b = Sampler::new(policy(json), T0 + 12345);
    let mut x = 0x243f_6a88_85a3_08d3u64;
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut kept = 0;
    for i in 0..20_000u64 {
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&next().to_be_bytes());
        t[8..].copy_from_slice(&next().to_be_bytes());
        let id = format!("{:016x}", next());
        let (method, path) = match i % 3 {
            0 => ("GET", "/api/v1/search/q"),
            1 => ("POST", "/orders"),
            _ => ("GET", "/home"),
        };
        let f = RequestFacts {
            trace_id: (!i.is_multiple_of(4)).then_some(t),
            request_id: Some(&id),
            method: Some(method),
            path: Some(path),
            status: Some(200),
            ..RequestFacts::default()
        };
        // The gateway sees the request at one time, the backend a little later.
        let da = a.decide(&f, T0 + i * MS);
        let db = b.decide(&f, T0 + i * MS + 7 * MS);
        assert_eq!(da, db, "hop disagreement on {f:?}");
        kept += usize::from(da.is_keep());
    }
    assert!((3_500..4_700).contains(&kept), "{kept}");
    assert_eq!(a.take_tally(T0), {
        let mut t = b.take_tally(T0);
        t.start_ns = T0;
        t
    });
}

#[test]
fn tally_take_resets_and_exports_attributes() {
    let mut s = Sampler::new(policy(r#"{"default_rate": 0}"#), T0);
    s.decide(
        &RequestFacts {
            route: Some("/users/{id}"),
            ..get("/users/1")
        },
        T0,
    );
    s.decide(&get("/healthz"), T0);
    s.decide(
        &RequestFacts {
            status: Some(503),
            ..get("/x")
        },
        T0,
    );
    let version = s.policy().version().to_owned();
    let t = s.take_tally(T0 + 5 * S);
    assert_eq!((t.start_ns, t.end_ns), (T0, T0 + 5 * S));
    assert_eq!(t.policy_version, version);
    assert_eq!(t.seen, 3);
    assert!(s.tally().is_empty());
    assert_eq!(
        s.tally().start_ns,
        T0 + 5 * S,
        "the next interval starts where this ended"
    );

    let mut attrs = Vec::new();
    t.for_each_attribute(|k, v| {
        attrs.push((
            k.to_owned(),
            match v {
                AttrValue::Str(s) => s.to_owned(),
                AttrValue::Int(i) => i.to_string(),
                AttrValue::Double(d) => d.to_string(),
            },
        ));
    });
    let a = |k: &str| attrs.iter().find(|(x, _)| x == k).unwrap().1.clone();
    assert_eq!(a("meshlog.dropped.sampled"), "1");
    assert_eq!(a("meshlog.dropped.health_check"), "1");
    assert_eq!(a("meshlog.dropped.rate_cap"), "0");
    assert_eq!(a("meshlog.sampling.kept"), "1");
    assert_eq!(a("meshlog.sampling.kept.always"), "1");
    assert_eq!(a("meshlog.sampling.seen"), "3");
    assert_eq!(a("meshlog.sampling.interval.start_ns"), T0.to_string());
    assert_eq!(
        a("meshlog.sampling.interval.end_ns"),
        (T0 + 5 * S).to_string()
    );
    assert_eq!(a("meshlog.sampling.policy_version"), version);
    let by_route: serde_json::Value =
        serde_json::from_str(&a("meshlog.sampling.by_route")).unwrap();
    assert_eq!(by_route["/users/{id}"]["sampled"], 1);
    assert_eq!(by_route[NO_ROUTE]["seen"], 2);
    assert_eq!(by_route[NO_ROUTE]["health_check"], 1);
}

#[test]
fn tally_routes_are_bounded() {
    let mut s = Sampler::new(policy("{}"), T0);
    let routes: Vec<String> = (0..200).map(|i| format!("/r{i}")).collect();
    for r in &routes {
        s.decide(
            &RequestFacts {
                route: Some(r),
                ..get(r)
            },
            T0,
        );
    }
    let t = s.take_tally(T0);
    assert_eq!(t.by_route.len(), MAX_TALLY_ROUTES + 1);
    assert_eq!(t.by_route[OTHER_ROUTE].seen, 200 - MAX_TALLY_ROUTES as u64);
    assert_eq!(t.by_route.values().map(|r| r.seen).sum::<u64>(), 200);
}

#[test]
fn replacing_the_policy_closes_the_interval() {
    let old = policy(r#"{"default_rate": 0.5}"#);
    let old_version = old.version().to_owned();
    let mut s = Sampler::new(old, T0);
    s.decide(&get("/healthz"), T0 + 1);
    let t = s.replace_policy(policy(r#"{"default_rate": 0.2}"#), T0 + 2);
    assert_eq!(t.policy_version, old_version);
    assert_eq!((t.seen, t.end_ns), (1, T0 + 2));
    assert_ne!(s.tally().policy_version, old_version);
    assert_eq!(s.policy().default_rate(), 0.2);
}

#[test]
fn facts_from_a_record() {
    let rec = AccessRecord {
        status: Some(200),
        path: Some("/a".into()),
        response_flags: Some("UF,URX".into()),
        request_id: Some("abc".into()),
        ..AccessRecord::default()
    };
    let f = RequestFacts::from_record(&rec);
    assert_eq!(f.response_flags, (1 << 5) | (1 << 15));
    assert_eq!(f.request_id, Some("abc"));
    assert_eq!(flags_from_codes(""), 0);
    assert_eq!(flags_from_codes("UF, NOPE"), 1 << 5);
    assert_eq!(
        flags_from_codes(&crate::envoy::response_flags(0x2aaa_aaaa)),
        0x2aaa_aaaa
    );
    assert_eq!(KeepReason::NoSamplingKey.name(), "no_sampling_key");
    assert_eq!(
        DropReason::RateCap {
            adjusted_count: 1.0
        }
        .name(),
        "rate_cap"
    );
}

#[test]
fn every_failed_grpc_call_is_kept_by_default_and_the_list_is_configurable() {
    // gRPC failures answer HTTP 200: only their gRPC status tells them apart.
    let grpc = |code: Option<u32>| RequestFacts {
        trace_id: Some(dropped_trace(0.1)),
        grpc_status: code,
        ..get("/shop.v1.Orders/Get")
    };
    let p = policy(r#"{"default_rate": 0.1}"#);
    let mut s = Sampler::new(p, T0);
    for code in 1..=16 {
        assert_eq!(
            s.decide(&grpc(Some(code)), T0),
            keep(KeepReason::GrpcStatus, 1.0),
            "code {code}"
        );
    }
    assert_eq!(KeepReason::GrpcStatus.name(), "grpc_status");
    assert!(KeepReason::GrpcStatus.is_always());
    // OK and no status are sampled like anything else.
    for code in [Some(0), None] {
        assert_eq!(
            s.decide(&grpc(code), T0),
            Decision::Drop(DropReason::SampledOut)
        );
    }
    // Numbers or names; [] keeps none.
    let p =
        policy(r#"{"default_rate": 0.1, "always_keep": {"grpc_statuses": ["unavailable", 13]}}"#);
    assert_eq!(p.always_keep(&grpc(Some(14))), Some(KeepReason::GrpcStatus));
    assert_eq!(p.always_keep(&grpc(Some(13))), Some(KeepReason::GrpcStatus));
    assert_eq!(p.always_keep(&grpc(Some(7))), None);
    assert_ne!(p.version(), policy(r#"{"default_rate": 0.1}"#).version());
    let none = policy(r#"{"always_keep": {"grpc_statuses": []}}"#);
    assert_eq!(none.always_keep(&grpc(Some(2))), None);
    assert_eq!(
        errors(r#"{"always_keep": {"grpc_statuses": [17, "NOPE", -1, 2]}}"#)
            .into_iter()
            .map(|(p, _)| p)
            .collect::<Vec<_>>(),
        [
            "$.sampling.always_keep.grpc_statuses[0]",
            "$.sampling.always_keep.grpc_statuses[1]",
            "$.sampling.always_keep.grpc_statuses[2]"
        ]
    );
}
