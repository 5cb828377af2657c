//! API tokens (admin) and browser sessions. A token is shown once, when created; the list shows
//! every token with its role, expiry, last use and revocation, never the token itself.

use crate::auth::{hash_token, issue_token, new_token, Caller, SESSION_COOKIE, SESSION_TTL};
use crate::dto::{CreateTokenBody, CreatedToken};
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::json::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use retake_store::{ApiToken, Role};
use serde::{Deserialize, Serialize};

/// The longest a token may be made to last.
const MAX_EXPIRY: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// Parse a token lifetime such as `30d`, `12h` or `90m` (1 minute to 10 years).
pub fn parse_expiry(s: &str) -> Result<chrono::Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like 30d, 12h or 90m ({e})"))?;
    if d < std::time::Duration::from_secs(60) || d > MAX_EXPIRY {
        return Err(format!(
            "must be between 1 minute and 10 years (e.g. 30d); got `{s}`"
        ));
    }
    chrono::Duration::from_std(d).map_err(|e| e.to_string())
}

/// Create an API token (admin). The token is in the response once and never again.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = CreateTokenBody,
    responses((status = 201, body = CreatedToken), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<CreateTokenBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    if b.name.trim().is_empty() || b.name.len() > 100 {
        return Err(ApiError::validation("name", "must have 1..=100 characters"));
    }
    let expires_at = match b.expires_in.as_deref() {
        Some(s) => {
            Some(Utc::now() + parse_expiry(s).map_err(|m| ApiError::validation("expires_in", m))?)
        }
        None => None,
    };
    let (token, record) = issue_token(state.store.as_ref(), b.role, &b.name, expires_at).await?;
    tracing::info!(token_id = record.id, name = %record.name, role = record.role.as_str(), by = %caller.actor(), "token created");
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            token,
            id: record.id,
            name: record.name,
            role: record.role,
            expires_at: record.expires_at,
        }),
    ))
}

/// Every token (admin): role, expiry, last use (to the minute) and revocation. Never the token.
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, body = [ApiToken]), (status = 403, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<ApiToken>>> {
    caller.require(Role::Admin)?;
    Ok(axum::Json(state.store.list_tokens().await?))
}

/// Revoke a token (admin): it and every browser session signed in with it stop working at once.
/// Revoking a revoked token changes nothing.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 200, body = ApiToken), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ApiToken>> {
    caller.require(Role::Admin)?;
    let t = state.store.revoke_token(id).await?;
    tracing::info!(token_id = t.id, name = %t.name, by = %caller.actor(), "token revoked");
    Ok(axum::Json(t))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// An API token; the browser keeps only the session cookie, never the token.
    pub token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub name: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// Sign a browser in with a token: answers with an HttpOnly, SameSite=Lax session cookie that
/// every later request (the event stream and videos included) carries instead of the token.
/// The session ends after 7 days, when the token expires or is revoked, or on sign-out.
#[utoipa::path(post, path = "/api/session", tag = "tokens", request_body = SessionBody,
    responses((status = 201, body = SessionView, headers(("set-cookie" = String, description = "retake_session=…; HttpOnly; SameSite=Lax; Path=/"))),
        (status = 401, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<SessionBody>,
) -> ApiResult<Response> {
    let t = b.token.trim();
    if t.is_empty() || t.len() >= 512 {
        return Err(ApiError::validation(
            "token",
            "must be an API token (rtk_…)",
        ));
    }
    let now = Utc::now();
    let token = state
        .store
        .token_by_hash(&hash_token(t))
        .await?
        .ok_or_else(|| ApiError::TokenRefused("the server does not know this token".into()))?;
    if let Some(why) = token.refusal(now) {
        return Err(ApiError::TokenRefused(why));
    }
    let expires_at = token
        .expires_at
        .map_or(now + SESSION_TTL, |e| e.min(now + SESSION_TTL));
    let secret = new_token();
    state
        .store
        .create_session(token.id, &hash_token(&secret), expires_at)
        .await?;
    state.store.touch_token(token.id, now).await?;
    let cookie = cookie::Cookie::build((SESSION_COOKIE, secret))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .secure(behind_https(&headers))
        .max_age(cookie::time::Duration::seconds(
            (expires_at - now).num_seconds().max(1),
        ))
        .build();
    let mut res = (
        StatusCode::CREATED,
        axum::Json(SessionView {
            name: token.name,
            role: token.role,
            expires_at,
        }),
    )
        .into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie.to_string())
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("session cookie: {e}")))?,
    );
    Ok(res)
}

/// Sign out: ends this browser's session and clears its cookie. Answers 204 even without one.
#[utoipa::path(delete, path = "/api/session", tag = "tokens", responses((status = 204)))]
pub async fn sign_out(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let (parts, _) = req.into_parts();
    if let Some(v) = crate::auth::cookie_value(&parts, SESSION_COOKIE) {
        state.store.delete_session(&hash_token(&v)).await?;
    }
    let gone = cookie::Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&gone.to_string())
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("session cookie: {e}")))?,
    );
    Ok(res)
}

/// Marks the cookie `Secure` when the request came over HTTPS (directly or through a proxy that
/// says so), so a plain-HTTP local install still works.
fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}
