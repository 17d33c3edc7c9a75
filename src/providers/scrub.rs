//! Provider error text made safe to show and to log: every configured secret and anything
//! shaped like a credential is masked, and the text is cut to a readable length.
//!
//! Providers echo requests back in their errors (a proxy quoting the `Authorization` header,
//! a gateway printing the signed request), so nothing a provider says reaches a user, a job
//! row or a log line without passing through [`Scrubber::message`].

use std::sync::{Arc, LazyLock};

use regex_lite::Regex;

use crate::config::{Config, Secret};

/// Longest message kept, in characters: a provider's sentence, not its HTML error page.
pub const MAX_CHARS: usize = 300;

/// What a secret becomes.
const MASK: &str = "[redacted]";

/// Configured values shorter than this are not masked as such: a three-letter test key
/// would mask ordinary words. The credential shapes below still apply to them.
const MIN_SECRET_CHARS: usize = 6;

/// Credential shapes, most specific first, with their replacement. `$1` keeps the label.
static SHAPES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // Tencent Cloud's signed header, whole: `TC3-HMAC-SHA256 Credential=AKID…/…,
        // SignedHeaders=…, Signature=<hex>`; then a bare credential or signature.
        (
            r"(?i)TC3-HMAC-SHA256\s+Credential=[^\s,;]*(?:\s*,\s*SignedHeaders=[^\s,]*)?(?:\s*,\s*Signature=[0-9a-f]*)?",
            "TC3-HMAC-SHA256 [redacted]",
        ),
        (r"(?i)\b(Credential|Signature)=[^\s,;&]+", "$1=[redacted]"),
        // A header or field that carries a key, in `Name: value`, `name=value` or JSON form.
        (
            r#"(?i)\b(authorization|proxy-authorization)("?\s*[:=]\s*"?)[^"\r\n]+"#,
            "$1$2[redacted]",
        ),
        (
            r#"(?i)\b(xi-api-key|x-api-key|api[_-]?key|secret[_-]?key|secret[_-]?id|access[_-]?key(?:[_-]?id)?|x-tc-token|token)("?\s*[:=]\s*"?)[^\s"',;&}]+"#,
            "$1$2[redacted]",
        ),
        (r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", "$1 [redacted]"),
        // Key formats: OpenAI `sk-…`, ElevenLabs `sk_…`, Tencent SecretIds `AKID…`.
        (r"\bsk-[A-Za-z0-9_\-]{6,}", MASK),
        (r"\bsk_[A-Za-z0-9]{16,}", MASK),
        (r"\bAKID[A-Za-z0-9]{8,}", MASK),
    ]
    .into_iter()
    .map(|(re, with)| (Regex::new(re).expect("the credential patterns compile"), with))
    .collect()
});

/// Masks secrets in text from outside. Cheap to clone; one per process, built from the whole
/// config so any provider's key is masked in any provider's error.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Arc<[String]>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

impl Scrubber {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.expose().trim().to_string())
            .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self {
            secrets: secrets.into(),
        }
    }

    /// Every secret in the config: provider keys, the language model's key, both S3
    /// credentials, the error-reporting DSN and the alert notifiers' URLs, keys and passwords.
    pub fn from_config(config: &Config) -> Self {
        let p = &config.providers;
        let notifiers: Vec<Secret> = config
            .alerts
            .notifiers
            .iter()
            .flat_map(|n| n.secrets())
            .collect();
        Self::new(
            [
                &p.openai.api_key,
                &p.elevenlabs.api_key,
                &p.tencent.secret_id,
                &p.tencent.secret_key,
                &config.llm.api_key,
                &config.storage.s3.access_key,
                &config.storage.s3.secret_key,
                &config.backup.s3.access_key,
                &config.backup.s3.secret_key,
                &config.sentry.dsn,
            ]
            .into_iter()
            .flatten()
            .chain(&notifiers),
        )
    }

    /// `text` with secrets and credential shapes masked, whole.
    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        for (re, with) in SHAPES.iter() {
            if let std::borrow::Cow::Owned(masked) = re.replace_all(&out, *with) {
                out = masked;
            }
        }
        out
    }

    /// `text` cleaned, trimmed and cut to [`MAX_CHARS`] on a character boundary: what a user
    /// or a log line may see of a provider's error. Masks before cutting, so a cut can never
    /// leave part of a secret unmasked.
    pub fn message(&self, text: &str) -> String {
        let clean = self.clean(text);
        let clean = clean.trim();
        match clean.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => format!("{}…", &clean[..cut]),
            None => clean.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber(secrets: &[&str]) -> Scrubber {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        Scrubber::new(&secrets)
    }

    #[test]
    fn configured_secrets_are_masked_wherever_they_appear() {
        let s = scrubber(&["plainkey-0042", "wJalrXUtnFEMI/K7MDENG", "abc"]);
        assert_eq!(
            s.message("bad request: key plainkey-0042 (plainkey-0042) and wJalrXUtnFEMI/K7MDENG"),
            "bad request: key [redacted] ([redacted]) and [redacted]"
        );
        assert_eq!(
            s.message("abc stays: too short to be a key"),
            "abc stays: too short to be a key"
        );
    }

    #[test]
    fn every_credential_shape_is_masked_and_the_rest_still_reads() {
        let s = Scrubber::default();
        let cases = [
            (
                "invalid input; got header Authorization: Bearer sk-proj-AbCdEf0123456789",
                "Authorization: [redacted]",
                "sk-proj",
            ),
            (
                r#"{"headers":{"authorization":"Bearer abc.def-ghi"}} is not allowed"#,
                "is not allowed",
                "abc.def",
            ),
            (
                "token Bearer eyJhbGciOi.eyJzdWIi.sig rejected",
                "Bearer [redacted] rejected",
                "eyJhbG",
            ),
            (
                "quota: sk-live0123456789 spent",
                "quota: [redacted] spent",
                "live0123",
            ),
            (
                "bad voice for key sk_0123456789abcdef0123456789abcdef",
                "bad voice for key [redacted]",
                "0123456789abcdef",
            ),
            (
                "request headers: xi-api-key: 9f8e7d6c5b4a; content-type: application/json",
                "xi-api-key: [redacted]; content-type",
                "9f8e7d",
            ),
            (
                r#"{"xi-api-key":"9f8e7d6c5b4a","text":"hi"}"#,
                r#""xi-api-key":"[redacted]""#,
                "9f8e7d",
            ),
            (
                "InvalidParameter: TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3/2026-12-06/tts/tc3_request, SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c is stale",
                "InvalidParameter: TC3-HMAC-SHA256 [redacted] is stale",
                "2230eefd",
            ),
            (
                "SecretId AKIDz8krbsJ5yKBZQpn74WFkmLPx3 is unknown",
                "SecretId [redacted] is unknown",
                "z8krbs",
            ),
            (
                "GET /v1/x?api_key=s3cr3tvalue&page=2 failed",
                "api_key=[redacted]&page=2 failed",
                "s3cr3t",
            ),
        ];
        for (text, kept, gone) in cases {
            let out = s.message(text);
            assert!(out.contains(kept), "{text:?} became {out:?}");
            assert!(!out.contains(gone), "{text:?} became {out:?}");
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_after_masking() {
        let s = scrubber(&["k-0123456789"]);
        let long = "语音合成失败 ".repeat(100);
        let out = s.message(&long);
        assert_eq!(out.chars().count(), MAX_CHARS + 1, "{out}");
        assert!(out.ends_with('…'));

        // A secret straddling the cut is masked, not cut in half.
        let text = format!("{}k-0123456789 tail", "é".repeat(MAX_CHARS - 5));
        let out = s.message(&text);
        assert!(!out.contains("k-012"), "{out}");
        assert_eq!(s.message("  short  "), "short");
    }
}
