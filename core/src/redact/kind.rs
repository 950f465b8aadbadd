//! What was redacted: the [`Kind`] of each finding and the per-record [`Summary`].

/// The kind of a redacted value. Each kind has one action in the policy and one counter in the
/// [`Summary`] (and one Envoy counter in the filter: iterate [`Kind::ALL`], name with
/// [`Kind::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// An e-mail address.
    Email,
    /// A payment card number (13 to 19 digits, Luhn-checked, known issuer prefix).
    Card,
    /// A US social security number in an issued range, written `AAA-GG-SSSS` or `AAA GG SSSS`.
    Ssn,
    /// A phone number: E.164 (`+…`), `00…`, NANP with separators, national `0…` with separators.
    Phone,
    /// An IBAN (mod-97 checked, country length checked for known countries).
    Iban,
    /// An IPv4 or IPv6 address: client addresses and addresses found in text.
    Ip,
    /// A JSON Web Token (or JWE): `eyJ…` segments whose header decodes to a JSON object.
    Jwt,
    /// The credential of a `Bearer` authorization (header or text).
    Bearer,
    /// The credential of a `Basic` authorization (header or text).
    Basic,
    /// `user:password` inside a URL (`scheme://user:pass@host`).
    UrlCredentials,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// An AWS secret access key (40 base64 characters, flagged in context or by entropy).
    AwsSecretKey,
    /// A GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// A GitLab token (`glpat-`, `glptt-`, `glrt-`, `gldt-`).
    GitlabToken,
    /// A Slack token (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxe-`).
    SlackToken,
    /// The secret part of a Slack incoming webhook URL (`hooks.slack.com/services/…`).
    SlackWebhook,
    /// A Stripe key (`sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`, `pk_live_`, `pk_test_`, `whsec_`).
    StripeKey,
    /// A Google API key (`AIza` + 35 characters).
    GoogleApiKey,
    /// An OpenAI-style key (`sk-…`, `sk-proj-…`).
    OpenaiKey,
    /// An Anthropic-style key (`sk-ant-…`).
    AnthropicKey,
    /// A token of any other vendor in the credential library ([`CREDENTIAL_RULES`](super::CREDENTIAL_RULES)):
    /// npm, PyPI, Hugging Face, SendGrid, Shopify, DigitalOcean, Doppler, Databricks, …
    ApiKey,
    /// A PEM private key block (`-----BEGIN … PRIVATE KEY-----` … `-----END … PRIVATE KEY-----`).
    PrivateKey,
    /// A long random-looking token (32+ characters, mixed case and digits, high entropy).
    HighEntropy,
    /// A value under a sensitive key: query parameters (`token=`, `password=`, …) and `key=value`
    /// pairs in text.
    SecretParam,
    /// A cookie value (`Cookie`, `Set-Cookie`).
    Cookie,
    /// Any other credential-bearing header value (`x-api-key`, `x-auth-token`, unknown schemes).
    Credential,
    /// A match of a custom pattern (the marker names the pattern).
    Custom,
    /// A value longer than `max_value_bytes`, replaced as a whole without being scanned.
    Oversize,
}

impl Kind {
    /// Number of kinds.
    pub const COUNT: usize = 28;

    /// Every kind, in counter order.
    pub const ALL: [Kind; Kind::COUNT] = [
        Kind::Email,
        Kind::Card,
        Kind::Ssn,
        Kind::Phone,
        Kind::Iban,
        Kind::Ip,
        Kind::Jwt,
        Kind::Bearer,
        Kind::Basic,
        Kind::UrlCredentials,
        Kind::AwsAccessKey,
        Kind::AwsSecretKey,
        Kind::GithubToken,
        Kind::GitlabToken,
        Kind::SlackToken,
        Kind::SlackWebhook,
        Kind::StripeKey,
        Kind::GoogleApiKey,
        Kind::OpenaiKey,
        Kind::AnthropicKey,
        Kind::ApiKey,
        Kind::PrivateKey,
        Kind::HighEntropy,
        Kind::SecretParam,
        Kind::Cookie,
        Kind::Credential,
        Kind::Custom,
        Kind::Oversize,
    ];

    /// Stable snake_case name: the marker text (`[REDACTED:<name>]`), the config key under
    /// `detectors`, and the counter name.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Card => "card",
            Kind::Ssn => "ssn",
            Kind::Phone => "phone",
            Kind::Iban => "iban",
            Kind::Ip => "ip",
            Kind::Jwt => "jwt",
            Kind::Bearer => "bearer",
            Kind::Basic => "basic",
            Kind::UrlCredentials => "url_credentials",
            Kind::AwsAccessKey => "aws_access_key",
            Kind::AwsSecretKey => "aws_secret_key",
            Kind::GithubToken => "github_token",
            Kind::GitlabToken => "gitlab_token",
            Kind::SlackToken => "slack_token",
            Kind::SlackWebhook => "slack_webhook",
            Kind::StripeKey => "stripe_key",
            Kind::GoogleApiKey => "google_api_key",
            Kind::OpenaiKey => "openai_key",
            Kind::AnthropicKey => "anthropic_key",
            Kind::ApiKey => "api_key",
            Kind::PrivateKey => "private_key",
            Kind::HighEntropy => "high_entropy",
            Kind::SecretParam => "secret_param",
            Kind::Cookie => "cookie",
            Kind::Credential => "credential",
            Kind::Custom => "custom",
            Kind::Oversize => "oversize",
        }
    }

    /// The kind called `name` (see [`Kind::name`]).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Position in [`Kind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Kinds whose value is a number written with separators; hashed on their digits only so
    /// `4111 1111 …` and `4111-1111-…` join.
    pub(crate) const fn numeric(self) -> bool {
        matches!(self, Kind::Card | Kind::Ssn | Kind::Phone)
    }
}

/// How many values of each kind were redacted in one record. A fixed array: no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    counts: [u32; Kind::COUNT],
}

impl Summary {
    /// An empty summary.
    pub const fn new() -> Self {
        Summary {
            counts: [0; Kind::COUNT],
        }
    }

    /// Counts one redaction of `kind`.
    pub fn add(&mut self, kind: Kind) {
        if let Some(c) = self.counts.get_mut(kind.index()) {
            *c = c.saturating_add(1);
        }
    }

    /// Redactions of `kind` so far.
    pub fn get(&self, kind: Kind) -> u32 {
        self.counts.get(kind.index()).copied().unwrap_or(0)
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Summary) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// The kinds with a non-zero count, in [`Kind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Kind, u32)> + '_ {
        Kind::ALL
            .iter()
            .zip(self.counts.iter())
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| (*k, *c))
    }

    /// Total redactions.
    pub fn total(&self) -> u32 {
        self.counts.iter().fold(0u32, |a, c| a.saturating_add(*c))
    }

    /// Whether nothing was redacted.
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|c| *c == 0)
    }
}
