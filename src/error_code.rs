//! `ErrorCode`: every `code` the API answers in `{"error": {"code", …}}` and a failed job
//! records on its audio, in one list (the table in docs/api.md). A leaf module, so every layer
//! can name a code without reaching into the HTTP error type.

use std::fmt;

use serde::{Serialize, Serializer};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// A machine-readable error code; clients switch on it (docs/api.md, Errors).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the docs' table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The code for a wire string, for codes stored with a failed job.
            pub fn parse(code: &str) -> Option<Self> {
                match code {
                    $($code => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// A malformed body, field, query or request head.
    InvalidRequest = "invalid_request",
    /// A text over `tts.max_chars`.
    TextTooLong = "text_too_long",
    /// A voice no provider has, or no voice for the text's language.
    UnknownVoice = "unknown_voice",
    /// The provider refused the request itself.
    ProviderRejected = "provider_rejected",
    /// A model name the manifest does not have.
    UnknownModel = "unknown_model",
    /// A notifier name `alerts.notifiers` does not have.
    UnknownNotifier = "unknown_notifier",
    /// A `/v1` model name the gateway does not route.
    ModelNotFound = "model_not_found",
    Unauthenticated = "unauthenticated",
    /// Unknown email or wrong password, the same answer for both.
    InvalidCredentials = "invalid_credentials",
    Forbidden = "forbidden",
    /// A cookie-authenticated write from a foreign origin.
    CsrfRejected = "csrf_rejected",
    RegistrationClosed = "registration_closed",
    InvalidInvite = "invalid_invite",
    AccountDisabled = "account_disabled",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    /// The request body stopped arriving.
    BodyTimeout = "body_timeout",
    Conflict = "conflict",
    PayloadTooLarge = "payload_too_large",
    UriTooLong = "uri_too_long",
    UnsupportedMediaType = "unsupported_media_type",
    RangeNotSatisfiable = "range_not_satisfiable",
    RateLimited = "rate_limited",
    /// The month's character quota would be exceeded.
    QuotaExceeded = "quota_exceeded",
    ProviderRateLimited = "provider_rate_limited",
    HeadersTooLarge = "headers_too_large",
    /// A server fault; the message says nothing more.
    Internal = "internal",
    /// Too many requests in flight, for the server or for this client.
    Overloaded = "overloaded",
    /// No response head within `server.request_timeout_s`.
    Timeout = "timeout",
    ProviderUnavailable = "provider_unavailable",
    ProviderTimeout = "provider_timeout",
    ProviderNetwork = "provider_network",
    ProviderError = "provider_error",
    ProviderBadAudio = "provider_bad_audio",
    ProviderAuth = "provider_auth",
    ProviderQuota = "provider_quota",
    ProviderFailed = "provider_failed",
    /// A bare 503 raised below the handlers.
    Unavailable = "unavailable",
    /// A job's output could not be decoded.
    BadAudio = "bad_audio",
    /// A job that was canceled before it finished.
    Canceled = "canceled",
    /// A job that could not read or write the object store.
    Storage = "storage",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_from_its_wire_string_and_no_two_share_one() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code} is not snake_case"
            );
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    #[test]
    fn a_code_serializes_as_its_wire_string() {
        assert_eq!(
            serde_json::to_string(&ErrorCode::QuotaExceeded).unwrap(),
            "\"quota_exceeded\""
        );
    }

    #[test]
    fn every_code_is_in_the_api_docs_error_table_or_its_job_error_list() {
        let docs = include_str!("../docs/api.md");
        for &code in ErrorCode::ALL {
            assert!(
                docs.contains(&format!("`{code}`")),
                "docs/api.md does not mention `{code}`"
            );
        }
    }
}
