//! `/api/setup`, `/api/auth/*`, `/api/me` and `/api/tokens`: signing in and one's own account.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::json;

use super::HttpState;
use super::extract::{AuthAttempt, RateLimitedUser, session_clear_cookie, session_set_cookie};
use super::params::parse_id;
use super::perimeter::ClientIp;
use crate::auth::{AuthUser, ClientInfo, IssuedSession, Me, NewAccount};
use crate::error::{AppJson, Result};
use crate::pagination::PageQuery;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/setup", get(setup_status).post(setup))
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/me", get(me).patch(update_me))
        .route("/api/me/password", put(change_password))
        .route("/api/tokens", get(list_tokens).post(create_token))
        .route("/api/tokens/{id}", delete(revoke_token))
}

fn client_info(ip: ClientIp, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: Some(ip.0.to_string()),
        address: Some(super::limits::rate_key(ip.0).to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

fn secure_cookies(state: &AppState) -> bool {
    state.links.is_https()
}

/// The user plus the cookie that signs them in.
fn signed_in(state: &AppState, status: StatusCode, me: Me, session: &IssuedSession) -> Response {
    let cookie = session_set_cookie(session, secure_cookies(state));
    (status, [(header::SET_COOKIE, cookie)], AppJson(me)).into_response()
}

#[tracing::instrument(skip_all)]
async fn setup_status(State(state): State<AppState>) -> Result<Response> {
    let needed = state.auth.setup_needed().await?;
    let registration = state.auth.registration();
    Ok(AppJson(json!({ "needed": needed, "registration": registration })).into_response())
}

#[derive(Deserialize)]
struct SetupBody {
    setup_token: String,
    #[serde(flatten)]
    account: NewAccount,
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn setup(
    _: AuthAttempt,
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    AppJson(body): AppJson<SetupBody>,
) -> Result<Response> {
    let (me, session) = state
        .auth
        .setup(&body.setup_token, body.account, client_info(ip, &headers))
        .await?;
    Ok(signed_in(&state, StatusCode::CREATED, me, &session))
}

#[derive(Deserialize)]
struct RegisterBody {
    #[serde(flatten)]
    account: NewAccount,
    #[serde(default)]
    invite_code: Option<String>,
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn register(
    _: AuthAttempt,
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    AppJson(body): AppJson<RegisterBody>,
) -> Result<Response> {
    let (me, session) = state
        .auth
        .register(body.account, body.invite_code, client_info(ip, &headers))
        .await?;
    Ok(signed_in(&state, StatusCode::CREATED, me, &session))
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn login(
    _: AuthAttempt,
    State(http): State<HttpState>,
    ip: ClientIp,
    headers: HeaderMap,
    AppJson(body): AppJson<LoginBody>,
) -> Result<Response> {
    let client = client_info(ip, &headers);
    let (me, session) =
        super::sign_in::login(&http, &body.email, body.password, ip.0, client).await?;
    Ok(signed_in(&http.app, StatusCode::OK, me, &session))
}

/// Always clears the cookie; revokes the session when there is one.
#[tracing::instrument(skip_all)]
async fn logout(State(state): State<AppState>, user: Option<AuthUser>) -> Result<Response> {
    if let Some(user) = user {
        state.auth.logout(&user).await?;
    }
    let cookie = session_clear_cookie(secure_cookies(&state));
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[tracing::instrument(skip_all)]
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<AppJson<Me>> {
    Ok(AppJson(state.auth.me(&user).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    /// Missing: unchanged; `null` or blank: cleared.
    #[serde(default, deserialize_with = "crate::patch::present")]
    display_name: Option<Option<String>>,
}

#[tracing::instrument(skip_all)]
async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<ProfileBody>,
) -> Result<AppJson<Me>> {
    Ok(AppJson(match body.display_name {
        Some(name) => state.auth.update_profile(&user, name).await?,
        None => state.auth.me(&user).await?,
    }))
}

#[derive(Deserialize)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Other sessions are signed out; this one stays.
#[tracing::instrument(skip_all)]
async fn change_password(
    _: AuthAttempt,
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<PasswordBody>,
) -> Result<StatusCode> {
    state
        .auth
        .change_password(&user, body.current_password, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all)]
async fn list_tokens(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageQuery>,
) -> Result<Response> {
    let page = state.auth.list_tokens(&user, &page.request()?).await?;
    Ok(AppJson(page).into_response())
}

#[derive(Deserialize)]
struct TokenBody {
    name: String,
}

/// The response is the only place the token's secret ever appears.
#[tracing::instrument(skip_all)]
async fn create_token(
    State(state): State<AppState>,
    user: RateLimitedUser,
    AppJson(body): AppJson<TokenBody>,
) -> Result<Response> {
    let created = state.auth.create_token(&user, &body.name).await?;
    let mut response = (StatusCode::CREATED, AppJson(created)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[tracing::instrument(skip_all)]
async fn revoke_token(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    state.auth.revoke_token(&user, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
