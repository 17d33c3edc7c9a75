//! Extractors that authenticate and rate-limit: take [`AuthUser`], [`AdminUser`],
//! [`RateLimitedUser`] or [`AuthAttempt`] as a handler argument and the check is done; and
//! `Option<AppJson<T>>` for an optional JSON body.

use std::ops::Deref;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{
    FromRequest, FromRequestParts, OptionalFromRequest, OptionalFromRequestParts, Request,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use super::HttpState;
use super::limits::InFlight;
use super::perimeter::ClientIp;
use crate::auth::{AuthUser, IssuedSession, SESSION_COOKIE};
use crate::error::ErrorCode;
use crate::error::{AppError, AppJson};
use crate::ops::error_reports::RequestTrace;

/// The value of the `aimake_session` cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The token of an `Authorization: Bearer …` header; `Some("")` for a malformed one, so a
/// broken header never falls back to the cookie.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?;
    let value = value.to_str().unwrap_or("");
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
        _ => Some(""),
    }
}

/// `Set-Cookie` for a new session: HttpOnly, SameSite=Lax, Secure on an https public URL.
pub fn session_set_cookie(session: &IssuedSession, secure: bool) -> HeaderValue {
    cookie_header(&session.token, session.max_age_s, secure)
}

/// `Set-Cookie` that removes the session cookie.
pub fn session_clear_cookie(secure: bool) -> HeaderValue {
    cookie_header("", 0, secure)
}

fn cookie_header(value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&cookie).expect("session tokens are URL-safe ASCII")
}

async fn authenticate(parts: &mut Parts, state: &HttpState) -> Result<Option<AuthUser>, AppError> {
    if let Some(user) = parts.extensions.get::<AuthUser>() {
        return Ok(Some(user.clone()));
    }
    let user = match bearer(&parts.headers) {
        Some(token) => state.app.auth.authenticate_token(token).await?,
        None => match session_cookie(&parts.headers) {
            Some(cookie) => state.app.auth.authenticate_session(cookie).await?,
            None => None,
        },
    };
    if let Some(user) = &user {
        // The user's share of the in-flight slots, whichever addresses they come from.
        if let Some(in_flight) = parts.extensions.get::<Arc<InFlight>>() {
            state.limits.enter_user(in_flight, user.id)?;
        }
        // Later extractors of the same request (and the log) reuse it.
        parts.extensions.insert(user.clone());
        tracing::Span::current().record("user_id", tracing::field::display(user.id));
        if state.reports.is_some()
            && let Some(trace) = parts.extensions.get::<Arc<RequestTrace>>()
        {
            trace.set_user(user.id);
        }
    }
    Ok(user)
}

/// Any signed-in, enabled user (session cookie or API token); else 401 `unauthenticated`.
impl FromRequestParts<HttpState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, AppError> {
        authenticate(parts, state)
            .await?
            .ok_or_else(|| AppError::Unauthenticated("Sign in to continue".into()))
    }
}

/// `Option<AuthUser>`: for routes that serve everyone but know who is signed in.
impl OptionalFromRequestParts<HttpState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Option<Self>, AppError> {
        authenticate(parts, state).await
    }
}

/// A signed-in admin; a signed-in user gets 403 `forbidden`. Every `/api/admin/*` handler
/// takes one.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl Deref for AdminUser {
    type Target = AuthUser;

    fn deref(&self) -> &AuthUser {
        &self.0
    }
}

impl FromRequestParts<HttpState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, AppError> {
        let user =
            <AuthUser as FromRequestParts<HttpState>>::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(AppError::Forbidden {
                code: ErrorCode::Forbidden,
                message: "Only admins can do this".into(),
            });
        }
        Ok(Self(user))
    }
}

/// A signed-in user within their per-user budget for expensive creations
/// (`limits.creations_per_minute`); beyond it 429 `rate_limited` with `Retry-After`.
/// Take it instead of [`AuthUser`] on endpoints that start costly work.
#[derive(Debug, Clone)]
pub struct RateLimitedUser(pub AuthUser);

impl Deref for RateLimitedUser {
    type Target = AuthUser;

    fn deref(&self) -> &AuthUser {
        &self.0
    }
}

impl FromRequestParts<HttpState> for RateLimitedUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, AppError> {
        let user =
            <AuthUser as FromRequestParts<HttpState>>::from_request_parts(parts, state).await?;
        state.limits.check_user(user.id)?;
        Ok(Self(user))
    }
}

/// A setup, login or registration attempt within the strict per-IP budget
/// (`limits.auth_requests_per_minute`). Put it first among a handler's arguments, so the
/// check comes before any body is read or password hashed.
#[derive(Debug, Clone, Copy)]
pub struct AuthAttempt;

impl FromRequestParts<HttpState> for AuthAttempt {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, AppError> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        state.limits.check_auth(ip)?;
        Ok(Self)
    }
}

/// An optional JSON body: none (or only whitespace) is `None`, whatever the `Content-Type`;
/// anything else must be JSON of the expected shape.
impl<T, S> OptionalFromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, AppError> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|r| match r.status() {
                StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
                _ => AppError::invalid(r.body_text()),
            })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&body)
            .map(|value| Some(AppJson(value)))
            .map_err(|e| AppError::invalid(format!("Invalid JSON body: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        n: Option<i64>,
    }

    async fn optional(body: &'static str) -> Result<Option<Body>, AppError> {
        let req = Request::builder()
            .method("POST")
            .body(axum::body::Body::from(body))
            .unwrap();
        let found = <Option<AppJson<Body>> as FromRequest<()>>::from_request(req, &()).await?;
        Ok(found.map(|AppJson(b)| b))
    }

    #[tokio::test]
    async fn an_optional_json_body_may_be_absent_but_not_malformed() {
        assert_eq!(optional("").await.unwrap(), None);
        assert_eq!(optional(" \n").await.unwrap(), None);
        assert_eq!(
            optional(r#"{"n": 3}"#).await.unwrap(),
            Some(Body { n: Some(3) }),
            "no Content-Type needed"
        );
        for bad in ["{", r#"{"m": 1}"#] {
            let err = optional(bad).await.unwrap_err();
            assert_eq!(err.code(), "invalid_request");
            assert!(err.to_string().starts_with("Invalid JSON body: "), "{err}");
        }
    }

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = with(header::COOKIE, "theme=dark; aimake_session=abc; lang=en");
        assert_eq!(session_cookie(&h), Some("abc"));
        assert_eq!(
            session_cookie(&with(header::COOKIE, "aimake_sessionx=1")),
            None
        );
        assert_eq!(
            session_cookie(&with(header::COOKIE, "aimake_session=")),
            None
        );
    }

    #[test]
    fn a_malformed_authorization_header_never_falls_back_to_the_cookie() {
        assert_eq!(
            bearer(&with(header::AUTHORIZATION, "Bearer amk_x")),
            Some("amk_x")
        );
        assert_eq!(
            bearer(&with(header::AUTHORIZATION, "bearer  amk_x ")),
            Some("amk_x")
        );
        assert_eq!(bearer(&with(header::AUTHORIZATION, "Basic Zm9v")), Some(""));
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn session_cookies_carry_the_security_attributes() {
        let s = IssuedSession {
            token: "tok".into(),
            max_age_s: 60,
        };
        let plain = session_set_cookie(&s, false);
        assert_eq!(
            plain,
            "aimake_session=tok; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        assert!(
            session_set_cookie(&s, true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(
            session_clear_cookie(false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }
}
