//! Redaction: what of a request may be logged, and in which form.
//!
//! Runs inside Envoy's Wasm VM before anything leaves the proxy, so it is pure, allocation-shy
//! (values without findings are borrowed, not copied) and never panics. A [`RedactionPolicy`] is
//! compiled once from the `redaction` section of the plugin configuration; the filter then calls
//! one method per field and collects a [`Summary`] per record:
//!
//! | field | method |
//! |---|---|
//! | `url.path`, `http.route` | [`RedactionPolicy::path`] → [`RedactedPath`] |
//! | `url.query` | [`RedactionPolicy::query`] |
//! | request / response headers | [`RedactionPolicy::request_header`], [`RedactionPolicy::response_header`] |
//! | request / response trailers | [`RedactionPolicy::request_trailer`], [`RedactionPolicy::response_trailer`] |
//! | `client.address` | [`RedactionPolicy::client_ip`] |
//! | any other string (user agent, request id, gRPC message) | [`RedactionPolicy::text`] |
//! | any other URL | [`RedactionPolicy::url`] |
//!
//! Every method returns `None` when a `drop` action fired: leave the field out of the record.
//! Records should carry `summary.iter()` (count per kind, named by [`Kind::name`]) and
//! [`RedactionPolicy::version`].
//!
//! # What is detected
//!
//! Built-in detectors are hand-written single-pass scanners (no regexes), each with its checksum
//! where one exists: e-mail; payment card (Luhn, issuer prefix); US SSN (issued ranges); phone
//! (E.164, NANP, `00…`, national `0…`, never bare digit strings); IBAN (mod-97, country length);
//! IPv4/IPv6 (in text and in client-address headers); JWT/JWE; `Bearer`/`Basic` credentials;
//! `scheme://user:pass@`; AWS access key ids and secret keys (exactly 40 base64 characters, mixed
//! case, random-looking, or any such token next to an access key id; 40 hex digits such as SHA-1
//! never match); GitHub, GitLab, Slack (tokens and webhook URLs), Stripe, Google API,
//! OpenAI-style and Anthropic-style keys; PEM private keys; other long random tokens (32+
//! base64url characters with upper, lower and digits, ≥ 4.2 bits/char and frequent character-class
//! changes, so camelCase identifiers survive); and values under sensitive keys (`token=`,
//! `password:`), in queries and in text. Custom patterns add more. Detection runs on every
//! spelling a value may mean (as sent; percent-decoded in paths and text; form-decoded in queries,
//! and with `+` kept as a plus; decoded twice when double-encoded), and the replacement covers
//! exactly the bytes that encoded the finding: the rest of the value is logged as it was sent.
//!
//! Known limits: bare 9-digit SSNs and other national ids without separators are caught only as the
//! whole value of a neutral query key or JSON field (see `natid`) or under a sensitive key
//! (`ssn=`), not inside free text; bare 10-digit national phone numbers only under a sensitive key
//! (`phone=`); a 40-character AWS secret glued to more base64 (`/`, `+`)
//! in free text is a longer token and left to the high-entropy rule; names and postal addresses
//! are only caught under sensitive keys (`firstname=`, `address=`).
//!
//! # Headers
//!
//! Default deny: only names in `headers.request` / `headers.response` are logged (defaults:
//! [`DEFAULT_REQUEST_HEADERS`], [`DEFAULT_RESPONSE_HEADERS`]). A logged header is treated by its
//! [`HeaderClass`]: credential-bearing headers never appear in clear (`Bearer [REDACTED:bearer]`,
//! `session=[REDACTED:cookie]; theme=[REDACTED:cookie]`), client-address headers are anonymized,
//! URL headers are handled as URLs, everything else goes through the detectors.
//!
//! # Paths
//!
//! With the default `keep_raw_path: false` the logged path is the *templated* path: identifier
//! segments (numbers, UUIDs, ULIDs, long hex, id-like and token-like strings) become `{id}`,
//! `{uuid}`, `{ulid}`, `{hex}`, `{token}`; a configured template that matches replaces the whole
//! path; other segments stay, with detected values replaced by their markers. That is what most
//! users expect from an audit log: *which* endpoint was called, not which customer's id was in
//! the URL (ids are personal data too). `keep_raw_path: true` logs the path as sent with only the
//! detected values replaced, for operators who need the ids. Either way the route (`http.route`)
//! is the template.
//!
//! # Configuration reference (`"redaction"`)
//!
//! Every field is optional; a missing section is the secure default. Unknown fields and invalid
//! values are errors, all reported at once with their JSON path.
//!
//! ```json
//! {
//!   "detectors": { "<kind>": "mask" | "hash" | "partial" | "drop" | "off" },
//!   "hmac_key": "…", "hmac_key_id": "k1",
//!   "custom": [ { "name": "employee_id", "pattern": "EMP-[0-9]{6}", "action": "mask" } ],
//!   "headers": { "request": ["user-agent", "x-b3-*"], "response": ["content-type"],
//!                "credential": ["x-my-token-header"], "url_origin_only": false },
//!   "trailers": { "request": ["grpc-status", "grpc-message"],
//!                 "response": ["grpc-status", "grpc-message", "x-cost-*"] },
//!   "query": { "sensitive_keys": ["member_no"], "allow_keys": ["state"] },
//!   "path": { "templates": ["/api/v1/users/{user}/orders/{order}", "/static/{file*}"],
//!             "keep_raw_path": false, "template_ids": true },
//!   "ip": { "ipv4_prefix": 24, "ipv6_prefix": 48 },
//!   "max_value_bytes": 16384
//! }
//! ```
//!
//! - `detectors`: object, kind name ([`Kind::name`]) → action ([`Action`]). Default `mask` for
//!   every kind, `partial` for `ip` (truncation). `off` switches a detector off (not allowed for
//!   `cookie` and `credential`: credential headers are always redacted; for `bearer`/`basic`,
//!   `off` only stops detection in text, the `Authorization` header is still masked). `partial`
//!   is defined for `card`, `ssn`, `phone` (last 4 digits), `iban` (country and last 4), `email`
//!   (domain), `ip` (prefix truncation), `url_credentials` (user kept) and the vendor-token kinds
//!   (public prefix kept); elsewhere it is an error. `drop` drops the whole field (header, path,
//!   query, text field) from the record. `secret_param: "off"` disables the sensitive-key rule.
//!   `oversize` (values longer than `max_value_bytes`): `mask`, `hash`, `drop` or `off` (scan
//!   whatever the length).
//! - `hmac_key`: string, 16 to 1024 bytes (use 32+ random characters), no default. Required when
//!   any action is `hash`. Never part of the policy version.
//! - `hmac_key_id`: string, 1 to 32 of `A-Z a-z 0-9 _ - .`, default `"k1"`. Written into every hash
//!   (`hmac:k1:3f9a…`, 16 bytes as 32 hex); change it when the key changes.
//! - `custom`: array (at most 64) of objects: `name` (required, `[a-z][a-z0-9_]{0,31}`, not a
//!   built-in kind, unique: the marker reads `[REDACTED:<name>]`), `pattern` (required, regex-lite
//!   syntax, at most 1024 characters, must not match the empty string), `action` (`mask` default,
//!   `hash`, `drop`, `off`). Matched against decoded values after the built-ins; counted as
//!   `custom`.
//! - `headers.request`, `headers.response`: arrays of header names (case-insensitive; a trailing
//!   `*` matches a prefix, `"*"` alone every header: credential headers are still redacted and
//!   everything else still scanned). Replace the default allowlists.
//! - `headers.credential`: array of header names treated as credential-bearing, in addition to
//!   [`BUILTIN_CREDENTIAL_HEADERS`] and any name containing a credential word (`token`, `secret`,
//!   `key`, `password`, `session`, `auth`, `signature`, …). Default empty.
//! - `headers.url_origin_only`: boolean, default `false`. URL headers ([`URL_HEADERS`]: `Referer`,
//!   `Origin`, `Location`, …) keep only `scheme://host[:port]`, the host through the detectors;
//!   userinfo (counted as `url_credentials`), path, query and fragment are left out. A relative
//!   reference (`/path`), which has no origin of its own, drops the header; a value that is not a
//!   URL (`Origin: null`) goes through the text detectors.
//! - `trailers.request`, `trailers.response`: arrays of trailer names, as for headers (prefixes,
//!   `"*"`). Default [`DEFAULT_TRAILERS`] for both: `grpc-status` and `grpc-message`; every other
//!   trailer is default-deny. A logged trailer's value is redacted like a header of that name.
//!   Envoy lets a module read request trailers only in the HTTP-filter mode.
//! - `query.sensitive_keys`: array of extra sensitive names (compared by their compact form, `Member-No`
//!   = `member_no` = `memberno`, exactly or as a word). Default empty; the built-in rules always apply.
//! - `query.allow_keys`: array of names exempt from the sensitive-key rule (compact form, exact),
//!   e.g. `state` when it means a US state. Detectors still run on their values. Default empty.
//! - `path.templates`: array (at most 1024) of route templates: start with `/`, literal segments,
//!   `{name}` for one segment, `{name*}` as the last segment for the rest. The matching template
//!   with the most literal segments wins (ties: first listed). Default empty.
//! - `path.keep_raw_path`: boolean, default `false` (see Paths).
//! - `path.template_ids`: boolean, default `true`: template identifier segments. With `false` only
//!   configured templates and detector hits shape the route.
//! - `ip.ipv4_prefix`: integer 0 to 32, default 24; `ip.ipv6_prefix`: integer 0 to 128, default
//!   48: bits kept by `partial` (IPv4-mapped IPv6 counts as IPv4).
//! - `max_value_bytes`: integer 256 to 1048576, default 16384: a longer value (a header, a path, a
//!   query, one query value) is replaced whole (`[REDACTED:oversize]`) instead of scanned.

mod action;
mod attr;
mod creds;
mod decode;
mod detect;
mod engine;
mod header;
mod ip;
mod keys;
mod kind;
mod memo;
mod names;
mod natid;
mod numeric;
mod path;
mod policy;
mod query;
mod scan;
mod syntax;
mod token;
mod url;

pub use action::Action;
pub use creds::{Alphabet, CREDENTIAL_RULES, Check, CredentialRule};
pub use header::{HeaderClass, IP_HEADERS, URL_HEADERS};
pub use kind::{Kind, Summary};
pub use path::RedactedPath;
/// Reads the `redaction` section for `FilterConfig::from_json`:
/// `redact::parse(root.section("redaction", &mut errs), &mut errs)`.
pub(crate) use policy::parse;
pub use policy::{
    BUILTIN_CREDENTIAL_HEADERS, DEFAULT_MAX_VALUE_BYTES, DEFAULT_REQUEST_HEADERS,
    DEFAULT_RESPONSE_HEADERS, DEFAULT_TRAILERS, RedactionPolicy,
};
