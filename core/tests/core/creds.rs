//! The credential library through the public API: a token of every row, planted in every
//! context a request has (text, query under a neutral and a sensitive key, raw and templated
//! path, logged text headers, a URL header's path, query and fragment, authorization), never
//! survives in any spelling, and is counted as the row's kind wherever a detector (not a
//! structural rule) had to find it.

use crate::corpus_gen::{self, Rng};
use meshlog_core::redact::{
    CREDENTIAL_RULES, Check, CredentialRule, Kind, RedactionPolicy, Summary,
};

/// A valid token of `rule`, from the row's anchor, alphabet, length range and check.
fn token(rule: &CredentialRule, r: &mut Rng) -> String {
    let alpha = rule.alphabet_bytes();
    let n = if rule.check == Check::GithubCrc32 {
        30
    } else {
        r.range(
            usize::from(rule.min),
            usize::from(rule.max).min(usize::from(rule.min) + 40),
        )
    };
    let mut body: Vec<u8> = (0..n).map(|_| alpha[r.below(alpha.len())]).collect();
    // Shape checks: an upper-case letter (or any letter), a digit and a lower-case letter.
    let find = |f: fn(&u8) -> bool| alpha.iter().copied().find(f);
    let want = [
        find(u8::is_ascii_uppercase).or_else(|| find(u8::is_ascii_alphabetic)),
        find(u8::is_ascii_digit),
        find(u8::is_ascii_lowercase),
    ];
    let at = r.below(n.saturating_sub(3).max(1));
    for (k, w) in want.into_iter().enumerate() {
        if let (Some(w), Some(slot)) = (w, body.get_mut(at + k)) {
            *slot = w;
        }
    }
    if rule.check == Check::GithubCrc32 {
        let sum = corpus_gen::base62(corpus_gen::crc32(&body), 6);
        body.extend_from_slice(sum.as_bytes());
    }
    format!("{}{}", rule.anchor, String::from_utf8(body).unwrap())
}

/// The part that must not survive: the whole token, or what follows a webhook's host.
fn secret_part<'a>(rule: &CredentialRule, tok: &'a str) -> &'a str {
    if rule.after_anchor {
        &tok[rule.anchor.len()..]
    } else {
        tok
    }
}

fn leaked(out: &str, secret: &str) -> bool {
    let enc = corpus_gen::pct(secret);
    out.contains(secret) || out.contains(&enc) || out.contains(&enc.replace("%20", "+"))
}

#[test]
fn every_rule_in_every_context_is_redacted() {
    let default = RedactionPolicy::default();
    let raw = RedactionPolicy::from_json(
        br#"{"path": {"keep_raw_path": true, "template_ids": false},
             "headers": {"request": ["user-agent", "x-request-id", "referer", "x-note", "authorization"]}}"#,
    )
    .unwrap();
    let mut rng = Rng::new(0x00c0_ffee);
    let mut planted = 0;
    for rule in CREDENTIAL_RULES {
        for _ in 0..2 {
            let tok = token(rule, &mut rng);
            let secret = secret_part(rule, &tok);
            let enc = corpus_gen::pct(&tok);
            // (context, output, whether the row's kind must be what counted it)
            let mut outs: Vec<(&str, String, bool)> = Vec::new();
            for (name, p) in [("default", &default), ("raw", &raw)] {
                let mut s = Summary::new();
                let t = p
                    .text(&format!("note: saw {tok} twice"), &mut s)
                    .unwrap()
                    .into_owned();
                outs.push(("text", t, s.get(rule.kind) > 0));
                let mut s = Summary::new();
                let q = p
                    .query(&format!("page=2&q={enc}&sort=asc"), &mut s)
                    .unwrap()
                    .into_owned();
                outs.push(("query neutral key", q, s.get(rule.kind) > 0));
                let mut s = Summary::new();
                let q = p
                    .query(&format!("api_key={enc}"), &mut s)
                    .unwrap()
                    .into_owned();
                outs.push(("query sensitive key", q, true));
                let mut s = Summary::new();
                let raw_path = format!("/v1/keys/{enc}/rotate");
                let rp = p.path(&raw_path, &mut s);
                let path = format!("{:?} {:?}", rp.path, rp.route);
                outs.push(("path", path, name == "default" || s.get(rule.kind) > 0));
                for h in ["user-agent", "x-request-id", "x-note"] {
                    let mut s = Summary::new();
                    let value = format!("client {tok}");
                    let v = p.request_header(h, &value, &mut s);
                    let counted = v.is_none() || s.get(rule.kind) > 0;
                    outs.push(("text header", format!("{v:?}"), counted));
                }
                let mut s = Summary::new();
                let referer =
                    format!("https://app.example.com/cb/{enc}?next=/home&q={enc}#t={enc}");
                let v = p.request_header("referer", &referer, &mut s);
                outs.push((
                    "referer",
                    format!("{v:?}"),
                    s.get(rule.kind) > 0 || v.is_none(),
                ));
                let mut s = Summary::new();
                let value = format!("token {tok}");
                let v = p.request_header("authorization", &value, &mut s);
                outs.push(("authorization", format!("{v:?}"), true));
            }
            for (ctx, out, counted) in &outs {
                planted += 1;
                assert!(
                    !leaked(out, secret),
                    "{} in {ctx}: {tok} survived in {out}",
                    rule.id
                );
                assert!(
                    *counted,
                    "{} in {ctx}: not counted as {}: {out}",
                    rule.id,
                    rule.kind.name()
                );
            }
        }
    }
    assert_eq!(
        planted,
        CREDENTIAL_RULES.len() * 2 * 18,
        "9 contexts, 2 policies, 2 tokens per row"
    );
}

#[test]
fn the_library_covers_the_vendors_of_issue_12() {
    let anchors: Vec<&str> = CREDENTIAL_RULES.iter().map(|r| r.anchor).collect();
    for a in [
        "ghp_",
        "gho_",
        "npm_",
        "xoxb-",
        "sk_live_",
        "rk_live_",
        "AKIA",
        "ASIA",
        "AIza",
        "SK",
        "SG.",
        "shpat_",
        "glpat-",
        "pypi-AgEIcHlwaS5vcmc",
        "hf_",
        "sk-proj-",
        "sk-ant-api03-",
        "dop_v1_",
        "dp.pt.",
        "dapi",
        "ATATT3",
        "key-",
        "PMAK-",
        "glc_",
        "glsa_",
        "hvs.",
        "hvb.",
        "HRKU-",
        "lin_api_",
        "secret_",
        "sntrys_",
    ] {
        assert!(anchors.contains(&a), "missing {a}");
    }
    assert!(CREDENTIAL_RULES.len() >= 150);
    // Every kind a row uses is a real, configurable kind.
    for r in CREDENTIAL_RULES {
        assert_eq!(Kind::from_name(r.kind.name()), Some(r.kind));
    }
}
