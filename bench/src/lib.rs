//! Shared helpers for meshlog's criterion benchmarks (`benches/redact.rs`).
//!
//! The benchmark answers "how fast is meshlog's redaction, next to what people use today?" on the
//! labelled PII corpus (`MESHLOG_CORPUS`, else `<workspace root>/../shared/corpus/pii-requests.jsonl`,
//! else the generated one, `tests/src/corpus_gen.rs`): meshlog's engine
//! (`meshlog_core::redact`) and Vector's VRL `redact` function run on the same strings in the same
//! process. Speed alone says little about a redactor, so this crate also counts, per engine, the
//! corpus secrets still readable in its output and the benign values it destroyed.
//!
//! What is here: loading the corpus ([`load_corpus`]), the inputs in each engine's shape
//! ([`HttpInput`], [`VrlRedact::target`]), each engine applied the way it is used in production
//! ([`meshlog_default`], [`meshlog_text`], [`VrlRedact::run`]) and the leak / false-positive
//! count ([`Quality`]).

use meshlog_core::redact::{RedactionPolicy, Summary};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use vrl::compiler::runtime::Runtime;
use vrl::compiler::{Program, TargetValue, TimeZone};
use vrl::value::{ObjectMap, Secrets, Value};

/// A labelled secret of a corpus request.
#[derive(Debug, Clone, Deserialize)]
pub struct Secret {
    /// Kind label (`email`, `card`, `aws`, …; see the corpus README).
    pub kind: String,
    /// The secret as the client meant it (the request may carry it encoded).
    pub value: String,
}

/// One line of the corpus.
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    /// Corpus id (`p00042`).
    pub id: String,
    /// HTTP method.
    pub method: String,
    /// Path with query, as sent.
    pub path: String,
    /// Request headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// Values that must not be readable in any stored record.
    pub secrets: Vec<Secret>,
    /// Values that should survive wherever their field is logged.
    pub benign: Vec<String>,
}

/// The labelled corpus generator shared with the tests.
#[path = "../../tests/src/corpus_gen.rs"]
mod corpus_gen;

/// Where the shared corpus lives: `<workspace root>/../shared/corpus/pii-requests.jsonl`.
pub fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("shared")
        .join("corpus")
        .join("pii-requests.jsonl")
}

/// Which corpus [`load_corpus`] reads: `MESHLOG_CORPUS` when set, else the shared corpus when it
/// is beside the repository (the numbers in `results.md` are on it), else the generated one.
pub fn corpus_source() -> Option<PathBuf> {
    match std::env::var("MESHLOG_CORPUS") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => Some(corpus_path()).filter(|p| p.exists()),
    }
}

/// The whole corpus (see [`corpus_source`]). Panics when a named file is missing or unreadable.
pub fn load_corpus() -> Vec<Request> {
    let Some(path) = corpus_source() else {
        return corpus_gen::corpus()
            .into_iter()
            .map(|r| Request {
                id: r.id,
                method: r.method,
                path: r.path,
                headers: r.headers.into_iter().collect(),
                secrets: r
                    .secrets
                    .into_iter()
                    .map(|(kind, value)| Secret { kind, value })
                    .collect(),
                benign: r.benign,
            })
            .collect();
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the PII corpus at {}: {e}", path.display()));
    let corpus: Vec<Request> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{}:{}: not a corpus request: {e}", path.display(), i + 1)
            })
        })
        .collect();
    assert!(!corpus.is_empty(), "{}: empty corpus", path.display());
    corpus
}

/// One request as the filter sees it: path and query split at the first `?` (an empty query is
/// no query, as in `meshlog_core::capture`), headers in order.
#[derive(Debug, Clone)]
pub struct HttpInput {
    /// `url.path` before redaction.
    pub path: String,
    /// `url.query` before redaction, without the `?`.
    pub query: Option<String>,
    /// Request headers (name, value).
    pub headers: Vec<(String, String)>,
}

impl HttpInput {
    /// Splits a corpus request.
    pub fn new(req: &Request) -> HttpInput {
        let (path, query) = match req.path.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned()).filter(|q| !q.is_empty())),
            None => (req.path.clone(), None),
        };
        HttpInput {
            path,
            query,
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
        }
    }

    /// The strings every engine is given: path, query (if any), each header value.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str())
            .chain(self.query.as_deref())
            .chain(self.headers.iter().map(|(_, v)| v.as_str()))
    }

    /// Input size: path + query + header values, in bytes.
    pub fn bytes(&self) -> u64 {
        self.fields().map(|f| f.len() as u64).sum()
    }
}

/// The corpus in the filter's shape.
pub fn http_inputs(corpus: &[Request]) -> Vec<HttpInput> {
    corpus.iter().map(HttpInput::new).collect()
}

/// Total input bytes of `inputs` (what one benchmark iteration processes).
pub fn total_bytes(inputs: &[HttpInput]) -> u64 {
    inputs.iter().map(HttpInput::bytes).sum()
}

/// What meshlog logs of one request under a policy. `None`: the field is not logged (a `drop`
/// action fired, or the header is not allowlisted).
#[derive(Debug)]
pub struct Logged<'a> {
    /// `url.path`.
    pub path: Option<Cow<'a, str>>,
    /// `http.route` (the filter falls back to the path when `None`).
    pub route: Option<String>,
    /// `url.query`.
    pub query: Option<Cow<'a, str>>,
    /// Request headers (name, logged value).
    pub headers: Vec<(&'a str, Option<Cow<'a, str>>)>,
    /// Redactions per kind.
    pub summary: Summary,
}

impl Logged<'_> {
    /// Every stored string.
    pub fn strings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        out.extend(self.path.as_deref().map(str::to_owned));
        out.extend(self.route.clone());
        out.extend(self.query.as_deref().map(str::to_owned));
        out.extend(
            self.headers
                .iter()
                .filter_map(|(_, v)| v.as_deref().map(str::to_owned)),
        );
        out
    }
}

/// meshlog with `policy`, applied the way `meshlog_core::capture::capture_http` applies it: the
/// path through [`RedactionPolicy::path`], the query through [`RedactionPolicy::query`], each
/// header through [`RedactionPolicy::request_header`] (allowlist, then treatment by name).
///
/// The filter reads `user-agent` and `x-request-id` as their own attributes and redacts them with
/// [`RedactionPolicy::text`]; both are allowlisted text-class headers, so `request_header` runs
/// the same detectors on them.
pub fn meshlog_default<'a>(policy: &RedactionPolicy, input: &'a HttpInput) -> Logged<'a> {
    let mut summary = Summary::new();
    let p = policy.path(&input.path, &mut summary);
    let query = input
        .query
        .as_deref()
        .and_then(|q| policy.query(q, &mut summary));
    let headers = input
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), policy.request_header(n, v, &mut summary)))
        .collect();
    Logged {
        path: p.path,
        route: p.route,
        query,
        headers,
        summary,
    }
}

/// meshlog's generic detector path: [`RedactionPolicy::text`] on each of [`HttpInput::fields`].
pub fn meshlog_text<'a>(
    policy: &RedactionPolicy,
    input: &'a HttpInput,
    summary: &mut Summary,
) -> Vec<Option<Cow<'a, str>>> {
    input.fields().map(|f| policy.text(f, summary)).collect()
}

/// The VRL program: what a Vector user writes to redact an access-log string with the stdlib
/// `redact` function. The built-in SSN filter plus one regex per secret kind of the corpus, written
/// the way such rules are usually written (gitleaks-style token prefixes, RFC-ish e-mail, digit
/// runs for cards and phones), not tuned to the corpus. Cookies and API-key headers are not
/// covered: a VRL user deletes those headers by name (`del(.headers.cookie)`), which a per-string
/// `redact` cannot do.
pub const VRL_PROGRAM: &str = r#"
redact(string!(.s), filters: [
    # JWT (before the generic rules: its segments would otherwise be cut up)
    r'eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*',
    # Authorization: Bearer <token>
    r'(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+',
    # AWS access key id
    r'\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b',
    # GitHub tokens
    r'\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b',
    r'\bgithub_pat_[A-Za-z0-9_]{22,}',
    # Slack tokens and webhooks
    r'\bxox[abposr]-[A-Za-z0-9-]{10,}',
    r'https://hooks\.slack\.com/services/[A-Za-z0-9/]+',
    # Stripe keys
    r'\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}',
    # Google API key
    r'AIza[0-9A-Za-z_-]{35}',
    # secrets in query parameters (also covers aws_secret_access_key=)
    r'(?i)(?:password|passwd|pwd|secret|token|api_?key|access_?key)=[^&\s]+',
    # credentials in URLs
    r'://[^/:@\s]+:[^/@\s]+@',
    # e-mail
    r'[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}',
    # IBAN
    r'\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b',
    # payment card: 13 to 19 digits, optionally grouped
    r'\b(?:\d[ -]?){12,18}\d\b',
    # US SSN (built in)
    "us_social_security_number",
    # phone: NANP, and international with a leading +
    r'(?:\+\d{1,3}[ .-]?)?\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b',
    r'\+\d{1,3}(?:[ .-]?\d{2,4}){2,5}',
    # IPv4
    r'\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b'
])
"#;

/// [`VRL_PROGRAM`], compiled once, and what it needs to run.
pub struct VrlRedact {
    program: Program,
    runtime: Runtime,
    timezone: TimeZone,
}

impl VrlRedact {
    /// Compiles [`VRL_PROGRAM`] against the whole VRL stdlib. Panics with VRL's diagnostics when
    /// it does not compile.
    pub fn new() -> VrlRedact {
        let fns = vrl::stdlib::all();
        let compiled = vrl::compiler::compile(VRL_PROGRAM, &fns).unwrap_or_else(|diags| {
            panic!(
                "the VRL program does not compile:\n{}",
                vrl::diagnostic::Formatter::new(VRL_PROGRAM, diags)
            )
        });
        VrlRedact {
            program: compiled.program,
            runtime: Runtime::default(),
            timezone: TimeZone::default(),
        }
    }

    /// The event for one string: `{"s": value}` (built outside the timed loop, as Vector's events
    /// exist before a remap runs).
    pub fn target(value: &str) -> TargetValue {
        let mut event = ObjectMap::new();
        event.insert("s".into(), Value::from(value));
        TargetValue {
            value: Value::Object(event),
            metadata: Value::Object(ObjectMap::new()),
            secrets: Secrets::default(),
        }
    }

    /// Runs the program on `target`: the redacted string. The program does not modify the
    /// target, so a target can be run again.
    pub fn run(&mut self, target: &mut TargetValue) -> Value {
        let out = self.runtime.resolve(target, &self.program, &self.timezone);
        self.runtime.clear();
        out.unwrap_or_else(|e| panic!("the VRL program failed: {e}"))
    }

    /// Runs the program on one string and returns the result as text.
    pub fn redact_str(&mut self, value: &str) -> String {
        let out = self.run(&mut VrlRedact::target(value));
        match out.to_str_lossy() {
            Some(s) => s.into_owned(),
            None => panic!("the VRL program returned {out:?}, not a string"),
        }
    }
}

impl Default for VrlRedact {
    fn default() -> Self {
        VrlRedact::new()
    }
}

/// Kinds the corpus also counts as leaked when their bare digit/letter sequence appears.
const NUMERIC_KINDS: &[&str] = &["card", "ssn", "phone", "iban"];

/// Percent-decodes `s` (invalid escapes stay as they are); with `plus_is_space`, form-decodes.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The spellings of one request's strings a reader could recover a value from: as stored,
/// percent-decoded, form-decoded. Fields are joined by a newline, so no match spans two fields.
fn spellings<S: AsRef<str>>(fields: &[S]) -> [String; 3] {
    let joined = fields
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("\n");
    let pct = percent_decode(&joined, false);
    let form = percent_decode(&joined, true);
    [joined, pct, form]
}

fn compact(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Whether `value` can be read in any of `sp`; numeric kinds also as their bare sequence.
fn visible(value: &str, numeric: bool, sp: &[String; 3]) -> bool {
    if sp.iter().any(|s| s.contains(value)) {
        return true;
    }
    let bare = compact(value);
    numeric && bare.len() >= 6 && bare != value && sp.iter().any(|s| s.contains(&bare))
}

/// What an engine catches on the corpus.
///
/// - leak (any spelling, the corpus definition): the secret is readable in the request's stored
///   strings as is, percent-decoded or form-decoded, or (card, ssn, phone, iban) as its bare
///   digit/letter sequence;
/// - leak as is: the secret's exact text appears in the stored strings (misses secrets the
///   client sent percent-encoded and the engine left encoded);
/// - benign lost: a benign value readable in the input (same spellings) and no longer in the
///   output.
#[derive(Debug, Default, Clone)]
pub struct Quality {
    /// Secrets in the corpus.
    pub secrets: usize,
    /// Secrets readable in the output in any spelling.
    pub leaks: usize,
    /// Secrets whose exact text is in the output.
    pub leaks_as_is: usize,
    /// Leaks (any spelling) per kind.
    pub leaked_kinds: BTreeMap<String, usize>,
    /// Benign values readable in the input.
    pub benign: usize,
    /// Of those, no longer readable in the output.
    pub benign_lost: usize,
}

impl Quality {
    /// Counts one request: `input` the strings given to the engine, `output` what it stored.
    pub fn add<I: AsRef<str>, O: AsRef<str>>(&mut self, req: &Request, input: &[I], output: &[O]) {
        let inp = spellings(input);
        let out = spellings(output);
        let raw_out = out.first().map(String::as_str).unwrap_or("");
        for s in &req.secrets {
            self.secrets += 1;
            if visible(&s.value, NUMERIC_KINDS.contains(&s.kind.as_str()), &out) {
                self.leaks += 1;
                *self.leaked_kinds.entry(s.kind.clone()).or_default() += 1;
            }
            if raw_out.contains(&s.value) {
                self.leaks_as_is += 1;
            }
        }
        for b in &req.benign {
            if visible(b, false, &inp) {
                self.benign += 1;
                if !visible(b, false, &out) {
                    self.benign_lost += 1;
                }
            }
        }
    }
}

/// One line, `key=value` separated by spaces (parsed by `scripts/bench`).
impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<String> = self
            .leaked_kinds
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        write!(
            f,
            "secrets={} leaks={} leaks_as_is={} benign={} benign_lost={} leaked_kinds={}",
            self.secrets,
            self.leaks,
            self.leaks_as_is,
            self.benign,
            self.benign_lost,
            if kinds.is_empty() {
                "-".to_owned()
            } else {
                kinds.join(",")
            }
        )
    }
}

/// [`Quality`] of [`meshlog_default`] on the corpus.
pub fn quality_meshlog_default(policy: &RedactionPolicy, corpus: &[Request]) -> Quality {
    let mut q = Quality::default();
    for req in corpus {
        let input = HttpInput::new(req);
        let fields: Vec<&str> = input.fields().collect();
        q.add(req, &fields, &meshlog_default(policy, &input).strings());
    }
    q
}

/// [`Quality`] of [`meshlog_text`] on the corpus.
pub fn quality_meshlog_text(policy: &RedactionPolicy, corpus: &[Request]) -> Quality {
    let mut q = Quality::default();
    for req in corpus {
        let input = HttpInput::new(req);
        let fields: Vec<&str> = input.fields().collect();
        let out: Vec<Cow<'_, str>> = meshlog_text(policy, &input, &mut Summary::new())
            .into_iter()
            .flatten()
            .collect();
        q.add(req, &fields, &out);
    }
    q
}

/// [`Quality`] of [`VrlRedact`] on the corpus.
pub fn quality_vrl(vrl: &mut VrlRedact, corpus: &[Request]) -> Quality {
    let mut q = Quality::default();
    for req in corpus {
        let input = HttpInput::new(req);
        let fields: Vec<&str> = input.fields().collect();
        let out: Vec<String> = fields.iter().map(|f| vrl.redact_str(f)).collect();
        q.add(req, &fields, &out);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(percent_decode("a%2Bb+c%zz%4", false), "a+b+c%zz%4");
        assert_eq!(percent_decode("a%2Bb+c", true), "a+b c");
    }

    #[test]
    fn counts_leaks_in_every_spelling() {
        let req = Request {
            id: "t".into(),
            method: "GET".into(),
            path: "/".into(),
            headers: BTreeMap::new(),
            secrets: vec![
                Secret {
                    kind: "phone".into(),
                    value: "+1-485-340-7053".into(),
                },
                Secret {
                    kind: "card".into(),
                    value: "3732 319487 57497".into(),
                },
                Secret {
                    kind: "email".into(),
                    value: "jo@example.com".into(),
                },
            ],
            benign: vec!["v1.2.3".into(), "ORD42".into()],
        };
        let mut q = Quality::default();
        q.add(
            &req,
            &["q=v1.2.3&o=ORD42"],
            &[
                "phone=%2B1-485-340-7053",
                "373231948757497",
                "[REDACTED]&o=ORD42",
            ],
        );
        assert_eq!((q.secrets, q.leaks, q.leaks_as_is), (3, 2, 0));
        assert_eq!((q.benign, q.benign_lost), (2, 1));
    }

    #[test]
    fn corpus_is_found() {
        let corpus = load_corpus();
        assert!(corpus.iter().all(|r| !r.path.is_empty()));
    }

    #[test]
    fn vrl_program_redacts() {
        let mut vrl = VrlRedact::new();
        assert_eq!(
            vrl.redact_str("ssn=123-45-6789&mail=jo@example.com"),
            "ssn=[REDACTED]&mail=[REDACTED]"
        );
        assert_eq!(vrl.redact_str("v1.2.3"), "v1.2.3");
    }

    #[test]
    fn meshlog_redacts_like_the_filter() {
        let policy = RedactionPolicy::default();
        let req = Request {
            id: "t".into(),
            method: "GET".into(),
            path: "/a?mail=jo@example.com".into(),
            headers: BTreeMap::from([("cookie".into(), "s=1".into())]),
            secrets: vec![],
            benign: vec![],
        };
        let input = HttpInput::new(&req);
        let logged = meshlog_default(&policy, &input);
        assert!(!logged.strings().join(" ").contains("jo@example.com"));
        // Not allowlisted by default: not logged at all.
        assert!(logged.headers.iter().all(|(_, v)| v.is_none()));
        assert_eq!(
            input.bytes(),
            ("/a".len() + "mail=jo@example.com".len() + 3) as u64
        );
    }
}
