//! The sampling engine end to end: estimation accuracy on generated traffic (every error kept,
//! totals re-estimated from adjusted counts), hop consistency, and properties over random
//! policies and requests (always-kept classes are kept, every request is accounted for).

use meshlog_core::sample::{
    Decision, DropReason, KeepReason, RequestFacts, Sampler, SamplingPolicy,
};
use proptest::prelude::*;

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * S;

fn policy(json: &str) -> SamplingPolicy {
    match SamplingPolicy::from_json(json.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// SplitMix64: a fixed, well-known generator, so the traffic (and the test) is reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn trace_id(&mut self) -> [u8; 16] {
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&self.next().to_be_bytes());
        t[8..].copy_from_slice(&self.next().to_be_bytes());
        t
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

/// One generated request: what the sampler sees.
struct Req {
    trace_id: Option<[u8; 16]>,
    request_id: String,
    method: &'static str,
    path: &'static str,
    status: i64,
}

/// `n` requests: 2% 5xx, ~1% 401/403/429, some 404s, 20% without a trace id (sampled on the
/// request id instead), three routes.
fn traffic(n: usize, seed: u64) -> Vec<Req> {
    let mut g = SplitMix(seed);
    (0..n)
        .map(|_| {
            let r = g.next();
            let status = match r % 1000 {
                0..=19 => 500 + (r >> 32) as i64 % 5,
                20..=22 => 401,
                23..=25 => 403,
                26..=28 => 429,
                29..=79 => 404,
                _ => 200,
            };
            let (method, path) = match (r >> 16) % 3 {
                0 => ("GET", "/api/v1/items/7"),
                1 => ("POST", "/api/v1/orders"),
                _ => ("GET", "/"),
            };
            let trace_id = (!(r >> 8).is_multiple_of(5)).then(|| g.trace_id());
            Req {
                trace_id,
                request_id: g.uuid(),
                method,
                path,
                status,
            }
        })
        .collect()
}

fn facts(r: &Req) -> RequestFacts<'_> {
    RequestFacts {
        trace_id: r.trace_id,
        request_id: Some(&r.request_id),
        method: Some(r.method),
        path: Some(r.path),
        status: Some(r.status),
        duration_ns: Some(3 * MS),
        ..RequestFacts::default()
    }
}

#[test]
fn ten_percent_keeps_every_error_and_estimates_within_3_percent() {
    const N: usize = 100_000;
    let reqs = traffic(N, 0x5eed_0000_0000_0001);
    let true_errors = reqs.iter().filter(|r| r.status >= 500).count();
    assert!(
        (1_800..2_200).contains(&true_errors),
        "generator: {true_errors}"
    );

    let p = policy(r#"{"default_rate": 0.1}"#);
    // A second hop with the same policy, parsed on its own.
    let mut hop1 = Sampler::new(p.clone(), T0);
    let mut hop2 = Sampler::new(policy(r#"{"default_rate": 0.1}"#), T0);
    let (mut est_total, mut est_errors) = (0.0f64, 0.0f64);
    let (mut kept, mut kept_errors) = (0usize, 0usize);
    for (i, r) in reqs.iter().enumerate() {
        let now = T0 + i as u64 * 10_000;
        let f = facts(r);
        let d = hop1.decide(&f, now);
        assert_eq!(d, hop2.decide(&f, now + MS), "hops disagree");
        if let Decision::Keep {
            adjusted_count,
            reason,
        } = d
        {
            kept += 1;
            est_total += adjusted_count;
            if r.status >= 500 {
                assert_eq!(reason, KeepReason::ErrorStatus);
                assert_eq!(adjusted_count, 1.0);
                kept_errors += 1;
                est_errors += adjusted_count;
            }
        }
    }
    assert_eq!(kept_errors, true_errors, "every error kept");

    let rel = (est_total - N as f64).abs() / N as f64;
    assert!(
        rel <= 0.03,
        "estimated total {est_total} is {:.2}% off",
        rel * 100.0
    );
    let true_rate = true_errors as f64 / N as f64;
    let est_rate = est_errors / est_total;
    assert!(
        (est_rate - true_rate).abs() <= 0.03 * true_rate,
        "error rate {est_rate} vs {true_rate}"
    );
    // What adjusted counts are for: the naive rate over kept records is wildly off.
    let naive = kept_errors as f64 / kept as f64;
    println!(
        "kept {kept} of {N}; errors {true_errors}, all kept; estimated total {est_total:.0} \
         ({:+.2}%); error rate {:.4}% estimated {:.4}% (naive {:.2}%)",
        (est_total / N as f64 - 1.0) * 100.0,
        true_rate * 100.0,
        est_rate * 100.0,
        naive * 100.0
    );
    assert!(naive > 5.0 * true_rate, "naive {naive}");
    assert!(kept < N / 5, "sampling did sample: {kept}");

    let t = hop1.take_tally(T0 + 10 * S);
    assert_eq!(t.seen, N as u64);
    assert_eq!(t.kept, kept as u64);
    assert_eq!(t.seen, t.kept + t.dropped());
    assert_eq!(t.dropped_health_check + t.dropped_rate_cap, 0);
    assert!((t.estimated_requests() - est_total).abs() < 1e-6);
    assert!(t.kept_always as usize >= true_errors);
}

#[test]
fn per_route_rates_estimate_each_route() {
    const N: usize = 60_000;
    let reqs = traffic(N, 42);
    let p = policy(
        r#"{"default_rate": 0.5, "rules": [{"route": "/api/v1/items/{id}", "rate": 0.02},
            {"method": "POST", "rate": 0.2}]}"#,
    );
    let mut s = Sampler::new(p, T0);
    let mut est = [0.0f64; 3];
    let mut truth = [0usize; 3];
    for (i, r) in reqs.iter().enumerate() {
        let k = match r.path {
            "/api/v1/items/7" => 0,
            "/api/v1/orders" => 1,
            _ => 2,
        };
        truth[k] += 1;
        if let Some(a) = s.decide(&facts(r), T0 + i as u64).adjusted_count() {
            est[k] += a;
        }
    }
    for k in 0..3 {
        let rel = (est[k] - truth[k] as f64).abs() / truth[k] as f64;
        // 2% of ~20,000 is ~400 sampled records (plus the always-kept): ±15% is > 3 sigma.
        let tol = [0.15, 0.05, 0.03][k];
        assert!(rel <= tol, "route {k}: {} vs {}", est[k], truth[k]);
    }
}

#[test]
fn health_checks_are_dropped_at_rate_one_and_counted() {
    let mut s = Sampler::new(policy(r#"{"drop": {"paths": ["/healthz", "/ping*"]}}"#), T0);
    let mut kept = 0;
    for (i, path) in ["/healthz", "/ping/deep", "/api", "/healthz/", "/readyz"]
        .iter()
        .cycle()
        .take(500)
        .enumerate()
    {
        let d = s.decide(
            &RequestFacts {
                path: Some(path),
                status: Some(200),
                ..RequestFacts::default()
            },
            T0 + i as u64 * MS,
        );
        kept += usize::from(d.is_keep());
    }
    let t = s.take_tally(T0 + S);
    assert_eq!(kept, 200, "/api and /readyz (not on this list)");
    assert_eq!(t.dropped_health_check, 300);
    assert_eq!(t.seen, t.kept + t.dropped());
}

// -------------------------------------------------------------------------------------------
// Properties over random policies and request streams.

const STATUSES: &[Option<i64>] = &[
    None,
    Some(0),
    Some(200),
    Some(204),
    Some(302),
    Some(400),
    Some(401),
    Some(403),
    Some(404),
    Some(429),
    Some(499),
    Some(500),
    Some(502),
    Some(503),
    Some(599),
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "delete", "PATCH"];
const PATHS: &[&str] = &[
    "/",
    "/healthz",
    "/readyz",
    "/api/v1/search",
    "/api/v1/search/x",
    "/admin",
    "/admin/keys/1",
    "/home",
];

#[derive(Debug, Clone)]
struct GenReq {
    trace: Option<[u8; 16]>,
    request_id: Option<String>,
    status: Option<i64>,
    method: &'static str,
    path: &'static str,
    flags: u64,
    duration_ms: u64,
    gap_ns: u64,
}

impl GenReq {
    /// Around the latency threshold: exactly on it (not above), or 1 ns past.
    fn duration_ns(&self) -> u64 {
        self.duration_ms * MS + self.gap_ns % 2
    }
}

fn gen_req() -> impl Strategy<Value = GenReq> {
    (
        proptest::option::of(any::<[u8; 16]>()),
        proptest::option::of("[a-f0-9-]{0,36}"),
        proptest::sample::select(STATUSES),
        proptest::sample::select(METHODS),
        proptest::sample::select(PATHS),
        prop_oneof![4 => Just(0u64), 1 => Just(1u64 << 5), 1 => any::<u64>()],
        0u64..5_000,
        0u64..50 * MS,
    )
        .prop_map(
            |(trace, request_id, status, method, path, flags, duration_ms, gap_ns)| GenReq {
                trace,
                request_id,
                status,
                method,
                path,
                flags,
                duration_ms,
                gap_ns,
            },
        )
}

#[derive(Debug, Clone)]
struct GenPolicy {
    default_rate: f64,
    search_rate: f64,
    post_rate: f64,
    latency_ms: u64,
    cap: Option<(u64, u64)>,
}

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0]
}

fn gen_policy() -> impl Strategy<Value = GenPolicy> {
    (
        rate(),
        rate(),
        rate(),
        1u64..4_000,
        proptest::option::of((1u64..20, 1u64..20)),
    )
        .prop_map(
            |(default_rate, search_rate, post_rate, latency_ms, cap)| GenPolicy {
                default_rate,
                search_rate,
                post_rate,
                latency_ms,
                cap,
            },
        )
}

impl GenPolicy {
    fn json(&self) -> String {
        let cap = match self.cap {
            Some((rps, burst)) => {
                format!(r#", "rate_cap": {{"records_per_second": {rps}, "burst": {burst}}}"#)
            }
            None => String::new(),
        };
        format!(
            r#"{{"default_rate": {:?}, "rules": [{{"route": "/api/v1/search*", "rate": {:?}}},
                {{"method": "POST", "rate": {:?}}}],
                "always_keep": {{"latency_ms": {}, "methods": ["DELETE"], "paths": ["/admin*"]}}
                {cap}}}"#,
            self.default_rate, self.search_rate, self.post_rate, self.latency_ms
        )
    }

    /// The always-keep classes, computed independently of the engine.
    fn always_kept(&self, r: &GenReq) -> bool {
        r.status
            .is_some_and(|s| s >= 500 || [401, 403, 429].contains(&s))
            || r.flags != 0
            || r.duration_ns() > self.latency_ms * MS
            || r.method.eq_ignore_ascii_case("DELETE")
            || r.path.starts_with("/admin")
    }
}

proptest! {
    #[test]
    fn always_kept_classes_are_kept_and_every_request_is_accounted_for(
        gp in gen_policy(),
        reqs in proptest::collection::vec(gen_req(), 1..150),
    ) {
        let p = SamplingPolicy::from_json(gp.json().as_bytes()).unwrap();
        let mut s = Sampler::new(p, T0);
        let mut now = T0;
        let (mut kept, mut adjusted) = (0u64, 0.0f64);
        for r in &reqs {
            now += r.gap_ns;
            let f = RequestFacts {
                trace_id: r.trace,
                request_id: r.request_id.as_deref(),
                method: Some(r.method),
                path: Some(r.path),
                route: None,
                service: None,
                status: r.status,
                duration_ns: Some(r.duration_ns()),
                response_flags: r.flags,
            };
            let d = s.decide(&f, now);
            if gp.always_kept(r) {
                prop_assert!(
                    matches!(d, Decision::Keep { adjusted_count, reason }
                        if adjusted_count == 1.0 && reason.is_always()),
                    "always-kept request not kept: {:?} -> {:?}", r, d
                );
            } else if r.path == "/healthz" || r.path == "/readyz" {
                prop_assert_eq!(d, Decision::Drop(DropReason::HealthCheck));
            }
            if let Decision::Keep { adjusted_count, .. } = d {
                prop_assert!(adjusted_count >= 1.0 && adjusted_count.is_finite());
                kept += 1;
                adjusted += adjusted_count;
            }
        }
        let t = s.take_tally(now);
        prop_assert_eq!(t.seen, reqs.len() as u64);
        prop_assert_eq!(t.kept + t.dropped(), t.seen);
        prop_assert_eq!(t.kept, kept);
        prop_assert!((t.kept_adjusted - adjusted).abs() < 1e-6);
        prop_assert_eq!(t.by_route.values().map(|r| r.seen).sum::<u64>(), t.seen);
        if gp.cap.is_none() {
            prop_assert_eq!(t.dropped_rate_cap, 0);
        }
    }

    #[test]
    fn decisions_are_a_function_of_the_trace(
        gp in gen_policy(),
        reqs in proptest::collection::vec(gen_req(), 1..50),
    ) {
        // Without a cap, a decision depends on nothing but the policy and the request: not on
        // the time, the VM, or the requests before it.
        let mut gp = gp;
        gp.cap = None;
        let p = SamplingPolicy::from_json(gp.json().as_bytes()).unwrap();
        let mut a = Sampler::new(p.clone(), T0);
        let mut b = Sampler::new(p.clone(), 0);
        for r in reqs.iter().rev() {
            let f = RequestFacts {
                trace_id: r.trace,
                request_id: r.request_id.as_deref(),
                method: Some(r.method),
                path: Some(r.path),
                status: r.status,
                response_flags: r.flags,
                ..RequestFacts::default()
            };
            let da = a.decide(&f, T0 + r.gap_ns);
            prop_assert_eq!(da, b.decide(&f, r.gap_ns * 7));
            prop_assert_eq!(da, p.classify(&f));
        }
    }

    #[test]
    fn any_config_text_is_an_answer_not_a_panic(s in "\\PC{0,200}") {
        let _ = SamplingPolicy::from_json(s.as_bytes());
    }
}
