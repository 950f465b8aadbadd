//! The credential library: vendor tokens recognized by their public prefix, kept as data.
//!
//! Each [`CredentialRule`] is one row: an id, the vendor, the [`Kind`] it is counted and acted on
//! as, the anchor (the token's fixed prefix), the alphabet and length range of the body after
//! the anchor, and a validation (the vendor's checksum where it has one, else a shape check).
//! Facts come from the vendors' documentation and public secret-scanner rule descriptions.
//!
//! Matching costs nothing per byte per rule: anchors start at word starts, so at each word start
//! one lookup in a bit table of the anchors' first three bytes (hashed) rejects almost every
//! position, and where
//! it passes one anchored Aho–Corasick search (a DFA over every anchor, built once per process,
//! shared by every policy) finds the longest anchor there; only the rows with that anchor are
//! validated, longest anchor first. The body is the maximal run of the row's alphabet after the
//! anchor and must be within the row's length range.

use super::Kind;
use super::scan::{Finding, at, is_alnum};
use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};
use std::sync::OnceLock;

/// The bytes a token body may consist of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// `A-Z a-z 0-9`
    Alnum,
    /// `A-Z a-z 0-9 _`
    AlnumUs,
    /// `A-Z a-z 0-9 _ -` (base64url without padding)
    AlnumUsDash,
    /// `A-Z a-z 0-9 -`
    AlnumDash,
    /// `A-Z a-z 0-9 _ - .`
    AlnumUsDashDot,
    /// `A-Z a-z 0-9 .`
    AlnumDot,
    /// `A-Z a-z 0-9 _ - =` (base64url with padding)
    B64Url,
    /// `A-Z a-z 0-9 + / =` (base64)
    B64,
    /// `0-9 a-f`
    Hex,
    /// `0-9 a-f -`
    HexDash,
    /// `0-9 a-f A-F`
    HexAnyCase,
    /// `A-Z 0-9`
    UpperDigit,
    /// `a-z 0-9`
    LowerDigit,
    /// `A-Z 0-9 .`
    UpperDigitDot,
    /// `A-Z a-z 0-9 $`
    AlnumDollar,
    /// `A-Z a-z 0-9 _ - /` (a webhook path)
    UrlPath,
    /// `A-Z a-z 0-9 _ - %` (a percent-encoded token)
    AlnumPct,
}

/// Every alphabet, in declaration order (`as usize` is the index).
const ALPHABETS: [Alphabet; 17] = [
    Alphabet::Alnum,
    Alphabet::AlnumUs,
    Alphabet::AlnumUsDash,
    Alphabet::AlnumDash,
    Alphabet::AlnumUsDashDot,
    Alphabet::AlnumDot,
    Alphabet::B64Url,
    Alphabet::B64,
    Alphabet::Hex,
    Alphabet::HexDash,
    Alphabet::HexAnyCase,
    Alphabet::UpperDigit,
    Alphabet::LowerDigit,
    Alphabet::UpperDigitDot,
    Alphabet::AlnumDollar,
    Alphabet::UrlPath,
    Alphabet::AlnumPct,
];

/// For each byte, a bit per alphabet holding it: a body's run reads one lookup per byte.
// Evaluated at compile time: an index out of bounds fails the build, it cannot panic.
#[allow(clippy::indexing_slicing)]
const BODY: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        while k < ALPHABETS.len() {
            if ALPHABETS[k].holds(b as u8) {
                t[b] |= 1 << (ALPHABETS[k] as u32);
            }
            k += 1;
        }
        b += 1;
    }
    t
};

impl Alphabet {
    /// Whether `b` may be in a body.
    #[inline]
    pub fn contains(self, b: u8) -> bool {
        BODY.get(usize::from(b)).copied().unwrap_or(0) >> (self as u32) & 1 != 0
    }

    /// The definition [`BODY`] is built from.
    const fn holds(self, b: u8) -> bool {
        let an = b.is_ascii_alphanumeric();
        match self {
            Alphabet::Alnum => an,
            Alphabet::AlnumUs => an || b == b'_',
            Alphabet::AlnumUsDash => an || b == b'_' || b == b'-',
            Alphabet::AlnumDash => an || b == b'-',
            Alphabet::AlnumUsDashDot => an || matches!(b, b'_' | b'-' | b'.'),
            Alphabet::AlnumDot => an || b == b'.',
            Alphabet::B64Url => an || matches!(b, b'_' | b'-' | b'='),
            Alphabet::B64 => an || matches!(b, b'+' | b'/' | b'='),
            Alphabet::Hex => b.is_ascii_digit() || matches!(b, b'a'..=b'f'),
            Alphabet::HexDash => b.is_ascii_digit() || matches!(b, b'a'..=b'f') || b == b'-',
            Alphabet::HexAnyCase => b.is_ascii_hexdigit(),
            Alphabet::UpperDigit => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Alphabet::LowerDigit => b.is_ascii_lowercase() || b.is_ascii_digit(),
            Alphabet::UpperDigitDot => b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.',
            Alphabet::AlnumDollar => an || b == b'$',
            Alphabet::UrlPath => an || matches!(b, b'_' | b'-' | b'/'),
            Alphabet::AlnumPct => an || matches!(b, b'_' | b'-' | b'%'),
        }
    }

    /// Stable name (documentation, tests).
    pub const fn name(self) -> &'static str {
        match self {
            Alphabet::Alnum => "A-Za-z0-9",
            Alphabet::AlnumUs => "A-Za-z0-9_",
            Alphabet::AlnumUsDash => "A-Za-z0-9_-",
            Alphabet::AlnumDash => "A-Za-z0-9-",
            Alphabet::AlnumUsDashDot => "A-Za-z0-9_-.",
            Alphabet::AlnumDot => "A-Za-z0-9.",
            Alphabet::B64Url => "A-Za-z0-9_-=",
            Alphabet::B64 => "A-Za-z0-9+/=",
            Alphabet::Hex => "0-9a-f",
            Alphabet::HexDash => "0-9a-f-",
            Alphabet::HexAnyCase => "0-9a-fA-F",
            Alphabet::UpperDigit => "A-Z0-9",
            Alphabet::LowerDigit => "a-z0-9",
            Alphabet::UpperDigitDot => "A-Z0-9.",
            Alphabet::AlnumDollar => "A-Za-z0-9$",
            Alphabet::UrlPath => "A-Za-z0-9_-/",
            Alphabet::AlnumPct => "A-Za-z0-9_-%",
        }
    }
}

/// What a body must satisfy besides alphabet and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing more: the anchor and the shape are specific enough.
    None,
    /// At least one letter and one digit (anchors that are also words: `key-`, `secret_`).
    Mixed,
    /// At least one digit and one upper-case letter (OpenAI's bare `sk-`).
    DigitUpper,
    /// GitHub's format: a 36-character body whose last 6 characters are the CRC-32 of the first
    /// 30 in base62. A body without a valid checksum (older formats, tokens from other
    /// generators) still matches when it looks random: letters and digits, at least 3.5 bits per
    /// character.
    GithubCrc32,
}

impl Check {
    /// Stable name (documentation, tests).
    pub const fn name(self) -> &'static str {
        match self {
            Check::None => "none",
            Check::Mixed => "letters+digits",
            Check::DigitUpper => "digit+upper",
            Check::GithubCrc32 => "crc32/base62",
        }
    }
}

/// One credential format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialRule {
    /// Stable id (`github-pat-classic`).
    pub id: &'static str,
    /// Who issues it.
    pub vendor: &'static str,
    /// Counted and acted on as this kind.
    pub kind: Kind,
    /// The fixed prefix, case-sensitive.
    pub anchor: &'static str,
    /// The body's alphabet.
    pub alphabet: Alphabet,
    /// Shortest body.
    pub min: u16,
    /// Longest body.
    pub max: u16,
    /// Extra validation.
    pub check: Check,
    /// Whether the redacted span starts after the anchor (webhook URLs: the host stays).
    pub after_anchor: bool,
}

#[allow(clippy::too_many_arguments)]
const fn r(
    id: &'static str,
    vendor: &'static str,
    kind: Kind,
    anchor: &'static str,
    alphabet: Alphabet,
    min: u16,
    max: u16,
    check: Check,
) -> CredentialRule {
    CredentialRule {
        id,
        vendor,
        kind,
        anchor,
        alphabet,
        min,
        max,
        check,
        after_anchor: false,
    }
}

const fn hook(
    id: &'static str,
    vendor: &'static str,
    kind: Kind,
    anchor: &'static str,
) -> CredentialRule {
    CredentialRule {
        id,
        vendor,
        kind,
        anchor,
        alphabet: Alphabet::UrlPath,
        min: 10,
        max: 512,
        check: Check::None,
        after_anchor: true,
    }
}

use Alphabet::*;
use Check::{DigitUpper, GithubCrc32, Mixed, None as Plain};
use Kind::{
    AnthropicKey, ApiKey, AwsAccessKey, GithubToken, GitlabToken, GoogleApiKey, OpenaiKey,
    PrivateKey, SlackToken, SlackWebhook, StripeKey,
};

/// Open-ended maximum body length.
const OPEN: u16 = 1024;

/// Every credential format, one row each.
#[rustfmt::skip]
pub static CREDENTIAL_RULES: &[CredentialRule] = &[
    // AWS
    r("aws-access-key-id", "AWS", AwsAccessKey, "AKIA", UpperDigit, 16, 16, Plain),
    r("aws-temp-access-key-id", "AWS", AwsAccessKey, "ASIA", UpperDigit, 16, 16, Plain),
    r("aws-bearer-key-id", "AWS", AwsAccessKey, "ABIA", UpperDigit, 16, 16, Plain),
    r("aws-context-key-id", "AWS", AwsAccessKey, "ACCA", UpperDigit, 16, 16, Plain),
    r("aws-eks-token", "AWS", ApiKey, "k8s-aws-v1.", AlnumUsDash, 100, OPEN, Plain),
    // GitHub
    r("github-pat-classic", "GitHub", GithubToken, "ghp_", AlnumUs, 30, 255, GithubCrc32),
    r("github-oauth", "GitHub", GithubToken, "gho_", AlnumUs, 30, 255, GithubCrc32),
    r("github-user-to-server", "GitHub", GithubToken, "ghu_", AlnumUs, 30, 255, GithubCrc32),
    r("github-server-to-server", "GitHub", GithubToken, "ghs_", AlnumUs, 30, 255, GithubCrc32),
    r("github-refresh", "GitHub", GithubToken, "ghr_", AlnumUs, 30, 255, GithubCrc32),
    r("github-pat-fine-grained", "GitHub", GithubToken, "github_pat_", AlnumUs, 22, 255, Plain),
    // GitLab
    r("gitlab-pat", "GitLab", GitlabToken, "glpat-", AlnumUsDash, 20, 255, Plain),
    r("gitlab-pipeline-trigger", "GitLab", GitlabToken, "glptt-", AlnumUsDash, 20, 255, Plain),
    r("gitlab-runner-auth", "GitLab", GitlabToken, "glrt-", AlnumUsDash, 20, 255, Plain),
    r("gitlab-deploy-token", "GitLab", GitlabToken, "gldt-", AlnumUsDash, 20, 255, Plain),
    r("gitlab-runner-registration", "GitLab", GitlabToken, "GR1348941", AlnumUsDash, 20, 255, Plain),
    r("gitlab-ci-job-token", "GitLab", GitlabToken, "glcbt-", AlnumUsDash, 20, 255, Plain),
    r("gitlab-oauth-secret", "GitLab", GitlabToken, "gloas-", AlnumUsDash, 64, 255, Plain),
    r("gitlab-incoming-mail", "GitLab", GitlabToken, "glimt-", AlnumUsDash, 25, 255, Plain),
    r("gitlab-feed-token", "GitLab", GitlabToken, "glft-", AlnumUsDash, 20, 255, Plain),
    r("gitlab-scim-token", "GitLab", GitlabToken, "glsoat-", AlnumUsDash, 20, 255, Plain),
    r("gitlab-feature-flags", "GitLab", GitlabToken, "glffct-", AlnumUsDash, 20, 255, Plain),
    r("gitlab-agent-token", "GitLab", GitlabToken, "glagent-", AlnumUsDash, 50, 255, Plain),
    // Slack
    r("slack-bot-token", "Slack", SlackToken, "xoxb-", AlnumDash, 10, 255, Plain),
    r("slack-user-token", "Slack", SlackToken, "xoxp-", AlnumDash, 10, 255, Plain),
    r("slack-app-token-legacy", "Slack", SlackToken, "xoxa-", AlnumDash, 10, 255, Plain),
    r("slack-refresh-token", "Slack", SlackToken, "xoxr-", AlnumDash, 10, 255, Plain),
    r("slack-session-token", "Slack", SlackToken, "xoxs-", AlnumDash, 10, 255, Plain),
    r("slack-rotating-token", "Slack", SlackToken, "xoxe-", AlnumDash, 10, 255, Plain),
    r("slack-oauth-token", "Slack", SlackToken, "xoxo-", AlnumDash, 10, 255, Plain),
    r("slack-config-access", "Slack", SlackToken, "xoxe.xoxp-", AlnumDash, 10, 255, Plain),
    r("slack-config-bot", "Slack", SlackToken, "xoxe.xoxb-", AlnumDash, 10, 255, Plain),
    r("slack-app-level-token", "Slack", SlackToken, "xapp-", AlnumDash, 20, 255, Plain),
    hook("slack-webhook", "Slack", SlackWebhook, "hooks.slack.com/services/"),
    hook("slack-workflow-webhook", "Slack", SlackWebhook, "hooks.slack.com/workflows/"),
    hook("slack-trigger-webhook", "Slack", SlackWebhook, "hooks.slack.com/triggers/"),
    // Stripe
    r("stripe-secret-live", "Stripe", StripeKey, "sk_live_", Alnum, 10, 255, Plain),
    r("stripe-secret-test", "Stripe", StripeKey, "sk_test_", Alnum, 10, 255, Plain),
    r("stripe-restricted-live", "Stripe", StripeKey, "rk_live_", Alnum, 10, 255, Plain),
    r("stripe-restricted-test", "Stripe", StripeKey, "rk_test_", Alnum, 10, 255, Plain),
    r("stripe-publishable-live", "Stripe", StripeKey, "pk_live_", Alnum, 10, 255, Plain),
    r("stripe-publishable-test", "Stripe", StripeKey, "pk_test_", Alnum, 10, 255, Plain),
    r("stripe-webhook-secret", "Stripe", StripeKey, "whsec_", B64, 20, 255, Plain),
    // Google
    r("gcp-api-key", "Google", GoogleApiKey, "AIza", AlnumUsDash, 35, OPEN, Plain),
    r("gcp-oauth-client-secret", "Google", ApiKey, "GOCSPX-", AlnumUsDash, 28, 28, Plain),
    r("gcp-oauth-access-token", "Google", ApiKey, "ya29.", AlnumUsDashDot, 30, OPEN, Mixed),
    r("gcs-hmac-access-id", "Google", ApiKey, "GOOG1", UpperDigit, 56, 56, Plain),
    // OpenAI and other model APIs
    r("openai-project-key", "OpenAI", OpenaiKey, "sk-proj-", AlnumUsDash, 20, OPEN, Plain),
    r("openai-service-account-key", "OpenAI", OpenaiKey, "sk-svcacct-", AlnumUsDash, 20, OPEN, Plain),
    r("openai-admin-key", "OpenAI", OpenaiKey, "sk-admin-", AlnumUsDash, 20, OPEN, Plain),
    r("openai-user-key", "OpenAI", OpenaiKey, "sk-", AlnumUsDash, 20, OPEN, DigitUpper),
    r("openrouter-key", "OpenRouter", ApiKey, "sk-or-v1-", Hex, 64, 64, Plain),
    r("anthropic-api-key", "Anthropic", AnthropicKey, "sk-ant-api03-", AlnumUsDash, 20, OPEN, Plain),
    r("anthropic-admin-key", "Anthropic", AnthropicKey, "sk-ant-admin01-", AlnumUsDash, 20, OPEN, Plain),
    r("anthropic-key", "Anthropic", AnthropicKey, "sk-ant-", AlnumUsDash, 20, OPEN, Plain),
    r("huggingface-token", "Hugging Face", ApiKey, "hf_", Alnum, 30, 40, Mixed),
    r("huggingface-org-token", "Hugging Face", ApiKey, "api_org_", Alnum, 30, 40, Mixed),
    r("groq-api-key", "Groq", ApiKey, "gsk_", Alnum, 52, 52, Mixed),
    r("perplexity-api-key", "Perplexity", ApiKey, "pplx-", Alnum, 48, 48, Mixed),
    r("replicate-api-token", "Replicate", ApiKey, "r8_", Alnum, 37, 37, Mixed),
    r("xai-api-key", "xAI", ApiKey, "xai-", Alnum, 80, 80, Mixed),
    r("langsmith-personal-token", "LangChain", ApiKey, "lsv2_pt_", AlnumUs, 40, 48, Mixed),
    r("langsmith-service-key", "LangChain", ApiKey, "lsv2_sk_", AlnumUs, 40, 48, Mixed),
    r("tavily-api-key", "Tavily", ApiKey, "tvly-", AlnumDash, 32, 48, Mixed),
    r("firecrawl-api-key", "Firecrawl", ApiKey, "fc-", Hex, 32, 32, Mixed),
    r("fireworks-api-key", "Fireworks AI", ApiKey, "fw_", Alnum, 24, 48, Mixed),
    r("pinecone-api-key", "Pinecone", ApiKey, "pcsk_", AlnumUs, 60, 120, Mixed),
    r("elevenlabs-api-key", "ElevenLabs", ApiKey, "sk_", Hex, 48, 48, Mixed),
    // Package registries and source hosting
    r("npm-access-token", "npm", ApiKey, "npm_", Alnum, 36, 36, Mixed),
    r("pypi-upload-token", "PyPI", ApiKey, "pypi-AgEIcHlwaS5vcmc", AlnumUsDash, 50, OPEN, Plain),
    r("pypi-test-upload-token", "PyPI", ApiKey, "pypi-AgENdGVzdC5weXBpLm9yZw", AlnumUsDash, 50, OPEN, Plain),
    r("rubygems-api-key", "RubyGems", ApiKey, "rubygems_", Hex, 48, 48, Plain),
    r("clojars-token", "Clojars", ApiKey, "CLOJARS_", LowerDigit, 60, 60, Mixed),
    r("docker-hub-pat", "Docker", ApiKey, "dckr_pat_", AlnumUsDash, 27, 64, Plain),
    r("docker-hub-oat", "Docker", ApiKey, "dckr_oat_", AlnumUsDash, 27, 64, Plain),
    r("bitbucket-app-password", "Atlassian", ApiKey, "ATBB", Alnum, 32, 64, Mixed),
    r("atlassian-api-token", "Atlassian", ApiKey, "ATATT3", B64Url, 180, 255, Plain),
    r("jfrog-api-key", "JFrog", ApiKey, "AKCp", Alnum, 69, 80, Mixed),
    r("jfrog-reference-token", "JFrog", ApiKey, "cmVmdGtuOjAxOj", Alnum, 50, 80, Plain),
    r("sourcegraph-access-token", "Sourcegraph", ApiKey, "sgp_", AlnumUs, 40, 80, Mixed),
    r("sonar-user-token", "SonarSource", ApiKey, "squ_", Hex, 40, 40, Mixed),
    r("sonar-project-token", "SonarSource", ApiKey, "sqp_", Hex, 40, 40, Mixed),
    r("sonar-analysis-token", "SonarSource", ApiKey, "sqa_", Hex, 40, 40, Mixed),
    r("buildkite-agent-token", "Buildkite", ApiKey, "bkua_", Hex, 40, 40, Mixed),
    r("circleci-pat", "CircleCI", ApiKey, "CCIPAT_", AlnumUs, 40, 80, Mixed),
    r("octopus-deploy-api-key", "Octopus Deploy", ApiKey, "API-", UpperDigit, 26, 32, Mixed),
    r("readme-api-key", "ReadMe", ApiKey, "rdme_", LowerDigit, 70, 70, Mixed),
    r("postman-api-key", "Postman", ApiKey, "PMAK-", HexDash, 59, 59, Mixed),
    r("frameio-token", "Frame.io", ApiKey, "fio-u-", AlnumUsDash, 64, 64, Plain),
    r("figma-pat", "Figma", ApiKey, "figd_", AlnumUsDash, 40, 48, Mixed),
    r("linear-api-key", "Linear", ApiKey, "lin_api_", Alnum, 40, 40, Mixed),
    r("linear-oauth-token", "Linear", ApiKey, "lin_oauth_", Hex, 64, 64, Mixed),
    r("notion-integration-secret", "Notion", ApiKey, "secret_", Alnum, 43, 43, Mixed),
    r("notion-token", "Notion", ApiKey, "ntn_", Alnum, 46, 46, Mixed),
    r("typeform-pat", "Typeform", ApiKey, "tfp_", AlnumUsDashDot, 44, 60, Mixed),
    r("contentful-pat", "Contentful", ApiKey, "CFPAT-", AlnumUsDash, 43, 43, Plain),
    r("infracost-api-key", "Infracost", ApiKey, "ico-", Alnum, 32, 32, Mixed),
    r("prefect-api-key", "Prefect", ApiKey, "pnu_", Alnum, 36, 36, Mixed),
    r("harness-pat", "Harness", ApiKey, "pat.", AlnumUsDashDot, 60, 80, Mixed),
    r("harness-sat", "Harness", ApiKey, "sat.", AlnumUsDashDot, 60, 80, Mixed),
    r("hubspot-pat-na1", "HubSpot", ApiKey, "pat-na1-", HexDash, 36, 36, Mixed),
    r("hubspot-pat-eu1", "HubSpot", ApiKey, "pat-eu1-", HexDash, 36, 36, Mixed),
    // Cloud and hosting
    r("digitalocean-pat", "DigitalOcean", ApiKey, "dop_v1_", Hex, 64, 64, Mixed),
    r("digitalocean-oauth", "DigitalOcean", ApiKey, "doo_v1_", Hex, 64, 64, Mixed),
    r("digitalocean-refresh", "DigitalOcean", ApiKey, "dor_v1_", Hex, 64, 64, Mixed),
    r("databricks-token", "Databricks", ApiKey, "dapi", Hex, 32, 32, Mixed),
    r("heroku-api-key", "Heroku", ApiKey, "HRKU-", AlnumUsDash, 60, 70, Plain),
    r("alibaba-access-key-id", "Alibaba Cloud", ApiKey, "LTAI", Alnum, 20, 24, Mixed),
    r("scaleway-access-key", "Scaleway", ApiKey, "SCW", UpperDigit, 17, 17, Mixed),
    r("cloudflare-origin-ca-key", "Cloudflare", ApiKey, "v1.0-", HexDash, 150, 180, Mixed),
    r("flyio-macaroon", "Fly.io", ApiKey, "fm2_", B64Url, 100, OPEN, Plain),
    r("flyio-macaroon-v1", "Fly.io", ApiKey, "fm1r_", B64Url, 100, OPEN, Plain),
    r("netlify-pat", "Netlify", ApiKey, "nfp_", Alnum, 36, 40, Mixed),
    r("supabase-access-token", "Supabase", ApiKey, "sbp_", Hex, 40, 40, Mixed),
    r("supabase-secret-key", "Supabase", ApiKey, "sb_secret_", AlnumUsDash, 30, 64, Plain),
    r("vercel-pat", "Vercel", ApiKey, "vcp_", Alnum, 24, 64, Mixed),
    r("vercel-integration-token", "Vercel", ApiKey, "vci_", Alnum, 24, 64, Mixed),
    r("vercel-app-access-token", "Vercel", ApiKey, "vca_", Alnum, 24, 64, Mixed),
    r("vercel-app-refresh-token", "Vercel", ApiKey, "vcr_", Alnum, 24, 64, Mixed),
    r("vercel-api-key", "Vercel", ApiKey, "vck_", Alnum, 24, 64, Mixed),
    r("pulumi-access-token", "Pulumi", ApiKey, "pul-", Hex, 40, 40, Mixed),
    r("render-api-key", "Render", ApiKey, "rnd_", Alnum, 32, 32, Mixed),
    r("deno-deploy-token", "Deno", ApiKey, "ddp_", Alnum, 36, 36, Mixed),
    r("neon-api-key", "Neon", ApiKey, "napi_", LowerDigit, 64, 64, Mixed),
    r("planetscale-token", "PlanetScale", ApiKey, "pscale_tkn_", AlnumUsDashDot, 32, 64, Plain),
    r("planetscale-oauth", "PlanetScale", ApiKey, "pscale_oauth_", AlnumUsDashDot, 32, 64, Plain),
    r("planetscale-password", "PlanetScale", ApiKey, "pscale_pw_", AlnumUsDashDot, 32, 64, Plain),
    r("openshift-token", "Red Hat", ApiKey, "sha256~", AlnumUsDash, 43, 43, Plain),
    r("tailscale-key", "Tailscale", ApiKey, "tskey-", AlnumDash, 30, 100, Mixed),
    r("defined-networking-key", "Defined Networking", ApiKey, "dnkey-", AlnumUsDash, 50, 80, Plain),
    r("akamai-client-token", "Akamai", ApiKey, "akab-", AlnumDash, 33, 33, Mixed),
    r("yandex-api-key", "Yandex", ApiKey, "AQVN", AlnumUsDash, 35, 38, Mixed),
    r("yandex-access-token", "Yandex", ApiKey, "y0_", AlnumUsDash, 55, 80, Mixed),
    r("yandex-iam-token", "Yandex", ApiKey, "t1.", AlnumUsDashDot, 80, OPEN, Mixed),
    r("dynatrace-api-token", "Dynatrace", ApiKey, "dt0c01.", UpperDigitDot, 89, 89, Plain),
    r("dynatrace-platform-token", "Dynatrace", ApiKey, "dt0s16.", UpperDigitDot, 80, 100, Plain),
    r("dynatrace-oauth-client", "Dynatrace", ApiKey, "dt0s02.", UpperDigitDot, 80, 100, Plain),
    r("intra42-secret-us", "42", ApiKey, "s-s4t2ud-", Hex, 64, 64, Mixed),
    r("intra42-secret-af", "42", ApiKey, "s-s4t2af-", Hex, 64, 64, Mixed),
    r("scalingo-api-token", "Scalingo", ApiKey, "tk-us-", AlnumUsDash, 48, 48, Plain),
    // Secrets managers
    r("doppler-personal-token", "Doppler", ApiKey, "dp.pt.", Alnum, 40, 50, Mixed),
    r("doppler-service-token", "Doppler", ApiKey, "dp.st.", AlnumUsDashDot, 40, 80, Mixed),
    r("doppler-service-account", "Doppler", ApiKey, "dp.sa.", Alnum, 40, 50, Mixed),
    r("doppler-cli-token", "Doppler", ApiKey, "dp.ct.", Alnum, 40, 50, Mixed),
    r("doppler-scim-token", "Doppler", ApiKey, "dp.scim.", Alnum, 40, 50, Mixed),
    r("doppler-audit-token", "Doppler", ApiKey, "dp.audit.", Alnum, 40, 50, Mixed),
    r("vault-service-token", "HashiCorp", ApiKey, "hvs.", AlnumUsDash, 24, OPEN, Mixed),
    r("vault-batch-token", "HashiCorp", ApiKey, "hvb.", AlnumUsDash, 24, OPEN, Mixed),
    r("vault-recovery-token", "HashiCorp", ApiKey, "hvr.", AlnumUsDash, 24, OPEN, Mixed),
    r("onepassword-service-account", "1Password", ApiKey, "ops_eyJ", B64Url, 100, OPEN, Plain),
    r("age-secret-key", "age", PrivateKey, "AGE-SECRET-KEY-1", UpperDigit, 58, 58, Plain),
    // Observability
    r("grafana-cloud-token", "Grafana", ApiKey, "glc_", B64Url, 32, 400, Mixed),
    r("grafana-service-account", "Grafana", ApiKey, "glsa_", AlnumUs, 41, 41, Mixed),
    r("sentry-org-token", "Sentry", ApiKey, "sntrys_", B64Url, 60, OPEN, Plain),
    r("sentry-user-token", "Sentry", ApiKey, "sntryu_", Hex, 64, 64, Mixed),
    r("newrelic-user-key", "New Relic", ApiKey, "NRAK-", UpperDigit, 27, 27, Mixed),
    r("newrelic-admin-key", "New Relic", ApiKey, "NRAA-", HexAnyCase, 27, 27, Mixed),
    r("newrelic-insert-key", "New Relic", ApiKey, "NRII-", AlnumUsDash, 32, 32, Plain),
    r("newrelic-browser-key", "New Relic", ApiKey, "NRJS-", Hex, 19, 19, Mixed),
    r("honeycomb-ingest-key", "Honeycomb", ApiKey, "hcaik_", Alnum, 58, 64, Mixed),
    r("honeycomb-classic-ingest", "Honeycomb", ApiKey, "hcxik_", Alnum, 58, 64, Mixed),
    r("coralogix-send-key", "Coralogix", ApiKey, "cxtp_", Alnum, 30, 30, Mixed),
    r("axiom-api-token", "Axiom", ApiKey, "xaat-", HexDash, 36, 36, Mixed),
    r("axiom-personal-token", "Axiom", ApiKey, "xapt-", HexDash, 36, 36, Mixed),
    r("posthog-personal-key", "PostHog", ApiKey, "phx_", Alnum, 43, 47, Mixed),
    r("posthog-project-key", "PostHog", ApiKey, "phc_", Alnum, 43, 47, Mixed),
    r("statsig-server-secret", "Statsig", ApiKey, "secret-", Alnum, 43, 43, Mixed),
    // Messaging and e-mail
    r("sendgrid-api-key", "Twilio SendGrid", ApiKey, "SG.", AlnumUsDashDot, 66, 66, Plain),
    r("twilio-api-key", "Twilio", ApiKey, "SK", Hex, 32, 32, Mixed),
    r("mailgun-private-key", "Mailgun", ApiKey, "key-", Hex, 32, 32, Mixed),
    r("mailgun-public-key", "Mailgun", ApiKey, "pubkey-", Hex, 32, 32, Mixed),
    r("brevo-api-key", "Brevo", ApiKey, "xkeysib-", AlnumDash, 81, 81, Mixed),
    r("brevo-smtp-key", "Brevo", ApiKey, "xsmtpsib-", AlnumDash, 81, 81, Mixed),
    r("resend-api-key", "Resend", ApiKey, "re_", AlnumUs, 32, 40, DigitUpper),
    r("onesignal-app-key", "OneSignal", ApiKey, "os_v2_app_", LowerDigit, 100, 120, Mixed),
    r("klaviyo-private-key", "Klaviyo", ApiKey, "pk_", Hex, 32, 34, Mixed),
    r("teams-webhook", "Microsoft", ApiKey, "webhook.office.com/webhookb2/", HexDash, 36, 36, Mixed).after(),
    hook("discord-webhook", "Discord", ApiKey, "discord.com/api/webhooks/"),
    hook("discordapp-webhook", "Discord", ApiKey, "discordapp.com/api/webhooks/"),
    hook("zapier-webhook", "Zapier", ApiKey, "hooks.zapier.com/hooks/catch/"),
    // Payments and commerce
    r("shopify-access-token", "Shopify", ApiKey, "shpat_", HexAnyCase, 32, 32, Mixed),
    r("shopify-custom-app-token", "Shopify", ApiKey, "shpca_", HexAnyCase, 32, 32, Mixed),
    r("shopify-private-app-token", "Shopify", ApiKey, "shppa_", HexAnyCase, 32, 32, Mixed),
    r("shopify-shared-secret", "Shopify", ApiKey, "shpss_", HexAnyCase, 32, 32, Mixed),
    r("square-access-token", "Square", ApiKey, "EAAA", AlnumUsDash, 60, 60, Mixed),
    r("square-legacy-token", "Square", ApiKey, "sq0atp-", AlnumUsDash, 22, 22, Plain),
    r("square-oauth-secret", "Square", ApiKey, "sq0csp-", AlnumUsDash, 43, 43, Plain),
    r("braintree-production-token", "PayPal Braintree", ApiKey, "access_token$production$", AlnumDollar, 40, 60, Mixed),
    r("braintree-sandbox-token", "PayPal Braintree", ApiKey, "access_token$sandbox$", AlnumDollar, 40, 60, Mixed),
    r("plaid-access-production", "Plaid", ApiKey, "access-production-", HexDash, 36, 36, Mixed),
    r("plaid-access-sandbox", "Plaid", ApiKey, "access-sandbox-", HexDash, 36, 36, Mixed),
    r("checkout-sandbox-secret", "Checkout.com", ApiKey, "sk_sbox_", AlnumUsDash, 26, 40, Mixed),
    r("razorpay-live-key", "Razorpay", ApiKey, "rzp_live_", Alnum, 14, 14, Mixed),
    r("razorpay-test-key", "Razorpay", ApiKey, "rzp_test_", Alnum, 14, 14, Mixed),
    r("flutterwave-secret-test", "Flutterwave", ApiKey, "FLWSECK_TEST-", AlnumDash, 32, 40, Mixed),
    r("flutterwave-secret-live", "Flutterwave", ApiKey, "FLWSECK-", AlnumDash, 32, 40, Mixed),
    r("flutterwave-encryption-key", "Flutterwave", ApiKey, "FLWSECK_TEST", HexAnyCase, 12, 12, Mixed),
    r("duffel-live-token", "Duffel", ApiKey, "duffel_live_", B64Url, 43, 43, Plain),
    r("duffel-test-token", "Duffel", ApiKey, "duffel_test_", B64Url, 43, 43, Plain),
    r("easypost-api-key", "EasyPost", ApiKey, "EZAK", Alnum, 54, 54, Mixed),
    r("easypost-test-key", "EasyPost", ApiKey, "EZTK", Alnum, 54, 54, Mixed),
    r("shippo-live-token", "Shippo", ApiKey, "shippo_live_", Hex, 40, 40, Mixed),
    r("shippo-test-token", "Shippo", ApiKey, "shippo_test_", Hex, 40, 40, Mixed),
    r("woocommerce-consumer-key", "WooCommerce", ApiKey, "ck_", Hex, 40, 40, Mixed),
    r("woocommerce-consumer-secret", "WooCommerce", ApiKey, "cs_", Hex, 40, 40, Mixed),
    r("ramp-client-id", "Ramp", ApiKey, "ramp_id_", Alnum, 40, 48, Mixed),
    r("ramp-client-secret", "Ramp", ApiKey, "ramp_sec_", Alnum, 40, 48, Mixed),
    // Social, maps, misc.
    r("facebook-access-token-m", "Meta", ApiKey, "EAAM", Alnum, 100, OPEN, Mixed),
    r("facebook-access-token-c", "Meta", ApiKey, "EAAC", Alnum, 100, OPEN, Mixed),
    r("twitter-bearer-token", "X", ApiKey, "AAAAAAAAAAAAAAAAAAAAA", AlnumPct, 50, OPEN, Mixed),
    r("mapbox-secret-token", "Mapbox", ApiKey, "sk.eyJ", AlnumUsDashDot, 80, OPEN, Plain),
    r("dropbox-short-lived-token", "Dropbox", ApiKey, "sl.", AlnumUsDash, 130, OPEN, Mixed),
    r("adafruit-io-key", "Adafruit", ApiKey, "aio_", Alnum, 28, 28, Mixed),
    r("fauna-secret", "Fauna", ApiKey, "fnA", AlnumUsDash, 37, 40, Mixed),
];

impl CredentialRule {
    const fn after(mut self) -> Self {
        self.after_anchor = true;
        self
    }

    /// The body's alphabet as bytes, in ascending order.
    pub fn alphabet_bytes(&self) -> Vec<u8> {
        (0u8..=127).filter(|b| self.alphabet.contains(*b)).collect()
    }
}

/// The automaton over all anchors and, per anchor pattern, the rows to try there (every row
/// whose anchor is a prefix of that pattern, longest anchor first).
struct Index {
    ac: AhoCorasick,
    rows: Vec<Vec<u16>>,
    /// Bits set by the first three bytes of every anchor (hashed, see [`Index::slot`]): a clear
    /// bit means no anchor starts there.
    starts: Vec<u64>,
}

/// Bits in [`Index::starts`]: with a few hundred anchors almost every other word start hashes to
/// a clear bit.
const START_BITS: usize = 1 << 16;

impl Index {
    #[inline]
    fn slot(b0: u8, b1: u8, b2: u8) -> (usize, u64) {
        let h =
            (u32::from(b0) << 16 | u32::from(b1) << 8 | u32::from(b2)).wrapping_mul(0x9E37_79B1);
        let n = (h >> 16) as usize % START_BITS;
        (n >> 6, 1u64 << (n & 63))
    }

    /// Whether some anchor may start with `b0 b1 b2`.
    #[inline]
    fn may_start(&self, b0: u8, b1: u8, b2: u8) -> bool {
        let (w, bit) = Self::slot(b0, b1, b2);
        self.starts.get(w).is_some_and(|x| x & bit != 0)
    }
}

fn index() -> Option<&'static Index> {
    static INDEX: OnceLock<Option<Index>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let mut anchors: Vec<&str> = CREDENTIAL_RULES.iter().map(|r| r.anchor).collect();
            anchors.sort_unstable();
            anchors.dedup();
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .start_kind(StartKind::Anchored)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&anchors)
                .ok()?;
            let mut starts = vec![0u64; START_BITS / 64];
            for a in &anchors {
                // An anchor shorter than three bytes starts with every continuation of it.
                let (b0, b1s, b2s) = match a.as_bytes() {
                    [b0, b1, b2, ..] => (*b0, *b1..=*b1, *b2..=*b2),
                    [b0, b1] => (*b0, *b1..=*b1, 0..=u8::MAX),
                    [b0] => (*b0, 0..=u8::MAX, 0..=u8::MAX),
                    [] => continue,
                };
                for b1 in b1s {
                    for b2 in b2s.clone() {
                        let (w, bit) = Index::slot(b0, b1, b2);
                        *starts.get_mut(w)? |= bit;
                    }
                }
            }
            let rows = anchors
                .iter()
                .map(|a| {
                    let mut v: Vec<u16> = (0..CREDENTIAL_RULES.len())
                        .filter(|i| {
                            CREDENTIAL_RULES
                                .get(*i)
                                .is_some_and(|r| a.starts_with(r.anchor))
                        })
                        .filter_map(|i| u16::try_from(i).ok())
                        .collect();
                    v.sort_by_key(|i| {
                        std::cmp::Reverse(
                            CREDENTIAL_RULES
                                .get(usize::from(*i))
                                .map_or(0, |r| r.anchor.len()),
                        )
                    });
                    v
                })
                .collect();
            Some(Index { ac, rows, starts })
        })
        .as_ref()
}

/// Builds the automaton now (at configure time) instead of at the first value.
pub(crate) fn warm() {
    let _ = index();
}

/// Shannon entropy in bits per byte.
fn bits(tok: &[u8]) -> f64 {
    super::token::shannon(tok)
}

fn checked(rule: &CredentialRule, body: &[u8]) -> bool {
    let letter = body.iter().any(u8::is_ascii_alphabetic);
    let digit = body.iter().any(u8::is_ascii_digit);
    match rule.check {
        Check::None => true,
        Check::Mixed => letter && digit,
        Check::DigitUpper => digit && body.iter().any(u8::is_ascii_uppercase),
        Check::GithubCrc32 => github_checksum_ok(body) || (letter && digit && bits(body) >= 3.5),
    }
}

/// Whether the last 6 characters of `body` are the base62 CRC-32 of the rest.
pub(crate) fn github_checksum_ok(body: &[u8]) -> bool {
    let Some(split) = body.len().checked_sub(6) else {
        return false;
    };
    let (data, sum) = body.split_at(split);
    let mut v = crc32fast_like(data);
    let mut want = [0u8; 6];
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for slot in want.iter_mut().rev() {
        *slot = A.get((v % 62) as usize).copied().unwrap_or(b'0');
        v /= 62;
    }
    want == sum
}

/// CRC-32 (IEEE 802.3, reflected, as in zlib).
fn crc32fast_like(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in data {
        c ^= u32::from(*b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Row `rule` at `i` (where its anchor starts): the finding, if the body fits.
pub(crate) fn match_rule(t: &[u8], i: usize, rule: &CredentialRule) -> Option<Finding> {
    let a = rule.anchor.as_bytes();
    if !t.get(i..).is_some_and(|r| r.starts_with(a)) {
        return None;
    }
    let s = i + a.len();
    let mut e = s;
    while e < t.len() && rule.alphabet.contains(at(t, e)) {
        e += 1;
    }
    let len = e - s;
    if len < usize::from(rule.min) || len > usize::from(rule.max) {
        return None;
    }
    let body = t.get(s..e)?;
    if !checked(rule, body) {
        return None;
    }
    let start = if rule.after_anchor { s } else { i };
    Some(Finding::new(start, e, rule.kind))
}

/// Whether an anchor may start at `i`: the bit-table lookup alone, inlined into the dispatcher,
/// where most word starts stop (the call to [`at_pos`] is only made past it).
#[inline]
pub(crate) fn may_start_at(t: &[u8], i: usize) -> bool {
    index().is_some_and(|idx| idx.may_start(at(t, i), at(t, i + 1), at(t, i + 2)))
}

/// A credential starting at `i` (a word start), for the detectors that are on.
pub(crate) fn at_pos(t: &[u8], i: usize, on: impl Fn(Kind) -> bool) -> Option<Finding> {
    let idx = index()?;
    if !idx.may_start(at(t, i), at(t, i + 1), at(t, i + 2)) {
        return None;
    }
    let prev = if i == 0 { 0 } else { at(t, i - 1) };
    if is_alnum(prev) {
        return None;
    }
    let pat = idx
        .ac
        .try_find(Input::new(t).range(i..).anchored(Anchored::Yes))
        .ok()
        .flatten()?
        .pattern()
        .as_usize();
    for r in idx.rows.get(pat)? {
        let Some(rule) = CREDENTIAL_RULES.get(usize::from(*r)) else {
            continue;
        };
        if on(rule.kind)
            && let Some(f) = match_rule(t, i, rule)
        {
            return Some(f);
        }
    }
    None
}

/// The public prefix of a credential of `kind` (for `partial`): the longest anchor of a row of
/// that kind that `value` starts with.
pub(crate) fn prefix_of(kind: Kind, value: &[u8]) -> Option<&'static str> {
    CREDENTIAL_RULES
        .iter()
        .filter(|r| r.kind == kind && !r.after_anchor && value.starts_with(r.anchor.as_bytes()))
        .map(|r| r.anchor)
        .max_by_key(|a| a.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_table_is_each_alphabet() {
        for a in ALPHABETS {
            let mut n = 0;
            for b in 0..=u8::MAX {
                assert_eq!(a.contains(b), a.holds(b), "{} {b}", a.name());
                n += usize::from(a.contains(b));
            }
            // Every alphabet is named by its bytes: `A-Z` 26, `0-9` 10, `a-f` 6, and the rest.
            assert!(n >= 16, "{}", a.name());
        }
        assert!(Alphabet::Hex.contains(b'f') && !Alphabet::Hex.contains(b'F'));
        assert!(Alphabet::B64.contains(b'=') && !Alphabet::B64.contains(b'-'));
    }

    #[test]
    fn the_library_is_large_and_consistent() {
        assert!(CREDENTIAL_RULES.len() >= 150, "{}", CREDENTIAL_RULES.len());
        let mut ids: Vec<&str> = CREDENTIAL_RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate ids");
        for r in CREDENTIAL_RULES {
            assert!(r.min >= 1 && r.min <= r.max, "{}", r.id);
            assert!(!r.anchor.is_empty(), "{}", r.id);
            assert!(index().is_some());
        }
    }

    #[test]
    fn github_checksum() {
        // A token body built by the published scheme: 30 random characters, CRC-32 in base62.
        let data = b"bciOx9gy1CJdObOIRpFqaDZeV7G5If";
        let mut body = data.to_vec();
        let mut v = crc32fast_like(data);
        let mut sum = [0u8; 6];
        const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        for slot in sum.iter_mut().rev() {
            *slot = A[(v % 62) as usize];
            v /= 62;
        }
        body.extend_from_slice(&sum);
        assert!(github_checksum_ok(&body));
        body[35] = if body[35] == b'a' { b'b' } else { b'a' };
        assert!(!github_checksum_ok(&body));
        assert_eq!(crc32fast_like(b"123456789"), 0xcbf4_3926);
    }
}

#[cfg(test)]
mod row_tests {
    //! One true and one false case per row, generated from the row.
    use super::super::detect::tests::found;
    use super::*;

    /// A deterministic body of `n` bytes of the row's alphabet (an LCG: test data only).
    fn body(rule: &CredentialRule, n: usize, seed: u64) -> Vec<u8> {
        let alpha = rule.alphabet_bytes();
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut v: Vec<u8> = (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                alpha[((x >> 33) as usize) % alpha.len()]
            })
            .collect();
        // Satisfy the shape checks with a letter, a digit and an upper-case letter up front.
        let pick = |f: fn(&u8) -> bool| alpha.iter().copied().find(f);
        let want = [
            pick(u8::is_ascii_uppercase).or_else(|| pick(u8::is_ascii_alphabetic)),
            pick(u8::is_ascii_digit),
            pick(u8::is_ascii_lowercase),
        ];
        for (slot, w) in v.iter_mut().zip(want) {
            if let Some(w) = w {
                *slot = w;
            }
        }
        v
    }

    /// A valid token of the row.
    pub(crate) fn valid(rule: &CredentialRule, seed: u64) -> String {
        let mut b = if rule.check == Check::GithubCrc32 {
            let mut b = body(rule, 30, seed);
            let mut v = crc32fast_like(&b);
            let mut sum = [0u8; 6];
            const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            for slot in sum.iter_mut().rev() {
                *slot = A[(v % 62) as usize];
                v /= 62;
            }
            b.extend_from_slice(&sum);
            b
        } else {
            body(rule, usize::from(rule.min), seed)
        };
        let mut t = rule.anchor.as_bytes().to_vec();
        t.append(&mut b);
        String::from_utf8(t).unwrap()
    }

    #[test]
    fn every_row_matches_a_token_built_from_it() {
        for (n, rule) in CREDENTIAL_RULES.iter().enumerate() {
            let tok = valid(rule, n as u64 + 1);
            let f = match_rule(tok.as_bytes(), 0, rule);
            assert!(f.is_some(), "{}: {tok}", rule.id);
            // Through the scanner, in text: found whole, as the row's kind.
            let want = if rule.after_anchor {
                tok[rule.anchor.len()..].to_string()
            } else {
                tok.clone()
            };
            let got = found(&format!("see {tok} now"));
            assert_eq!(got, [(rule.kind, want)], "{}: {tok}", rule.id);
        }
    }

    #[test]
    fn every_row_rejects_a_near_miss() {
        for (n, rule) in CREDENTIAL_RULES.iter().enumerate() {
            // One character short of the row's shortest body.
            let short = format!(
                "{}{}",
                rule.anchor,
                String::from_utf8(body(rule, usize::from(rule.min) - 1, n as u64 + 7)).unwrap()
            );
            assert_eq!(
                match_rule(short.as_bytes(), 0, rule),
                None,
                "{}: {short}",
                rule.id
            );
            // Glued to a word: not at a word start.
            let tok = valid(rule, n as u64 + 3);
            let glued = format!("x{tok}");
            assert_eq!(at_pos(glued.as_bytes(), 1, |_| true), None, "{}", rule.id);
            match rule.check {
                // Letters only, or no upper case / digit: fails the shape check.
                Check::Mixed | Check::DigitUpper => {
                    let letters: Vec<u8> = rule
                        .alphabet_bytes()
                        .into_iter()
                        .filter(u8::is_ascii_lowercase)
                        .collect();
                    if let Some(l) = letters.first() {
                        let s = format!(
                            "{}{}",
                            rule.anchor,
                            String::from(char::from(*l)).repeat(usize::from(rule.min))
                        );
                        assert_eq!(match_rule(s.as_bytes(), 0, rule), None, "{}: {s}", rule.id);
                    }
                }
                // A wrong checksum on a low-entropy body.
                Check::GithubCrc32 => {
                    let s = format!("{}{}", rule.anchor, "ab".repeat(18));
                    assert_eq!(match_rule(s.as_bytes(), 0, rule), None, "{}: {s}", rule.id);
                }
                Check::None => {}
            }
        }
    }
}
