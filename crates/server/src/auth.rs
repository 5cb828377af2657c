//! Who is calling. API clients send `Authorization: Bearer <token>`; browsers sign in once with a
//! token (`POST /api/session`) and then carry an HttpOnly session cookie, so no token ever
//! appears in a URL the UI builds (SSE, video). Tokens are random strings shown once; the store
//! keeps only their SHA-256, and so it does for sessions.
//!
//! A viewer reads; a creator also submits segments, selects attempts and acts on reviews; only an
//! admin changes policies, budgets, scene types, servers and tokens.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use chrono::{DateTime, Utc};
use retake_store::{ApiToken, Role, TOKEN_TOUCH_INTERVAL_SECONDS};
use sha2::{Digest, Sha256};

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "retake_session";
/// How long a browser session lasts (never beyond its token's own expiry).
pub const SESSION_TTL: chrono::Duration = chrono::Duration::days(7);

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn new_token() -> String {
    format!(
        "rtk_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Create a token with `role` and return it (the only time it is visible).
pub async fn create_token(
    store: &dyn retake_store::Store,
    role: Role,
    name: &str,
) -> Result<String, retake_store::StoreError> {
    issue_token(store, role, name, None)
        .await
        .map(|(token, _)| token)
}

/// Create a token that stops working at `expires_at` (if given); returns it and its record.
pub async fn issue_token(
    store: &dyn retake_store::Store,
    role: Role,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(String, ApiToken), retake_store::StoreError> {
    let token = new_token();
    let record = store
        .create_token(name, role, &hash_token(&token), expires_at)
        .await?;
    Ok((token, record))
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Bearer,
    Session,
    /// `?access_token=`, for clients that cannot set a header. The UI never uses it.
    QueryToken,
}

/// The caller: the token they act with, however they presented it.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiToken, pub Credential);

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.role.at_least(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {} role; your token `{}` is {}",
                role.as_str(),
                self.0.name,
                self.0.role.as_str()
            )))
        }
    }
    pub fn actor(&self) -> String {
        format!("{} ({})", self.0.name, self.0.role.as_str())
    }
}

/// The value of cookie `name` in the request, if any.
pub fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A cookie-authenticated write must come from this site: SameSite=Lax already keeps the cookie
/// off cross-site POSTs; an `Origin` naming another host is refused as well.
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/') == host)
        .unwrap_or(false)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let at = Utc::now();
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let (token, credential) = if let Some(h) = bearer {
            let t = h.strip_prefix("Bearer ").map(str::trim).unwrap_or("");
            (lookup_token(state, t).await?, Credential::Bearer)
        } else if let Some(cookie) = cookie_value(parts, SESSION_COOKIE) {
            if !matches!(parts.method, Method::GET | Method::HEAD) && !same_origin(parts) {
                return Err(ApiError::Forbidden(
                    "a request signed in with a session cookie must come from this site".into(),
                ));
            }
            let Some((_, token)) = state.store.session_by_hash(&hash_token(&cookie)).await? else {
                return Err(ApiError::TokenRefused(
                    "your session has ended; sign in again".into(),
                ));
            };
            (token, Credential::Session)
        } else {
            let q = parts.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("access_token=").map(|t| t.to_owned()))
            });
            match q {
                Some(t) => (lookup_token(state, &t).await?, Credential::QueryToken),
                None => return Err(ApiError::Unauthorized),
            }
        };
        if let Some(why) = token.refusal(at) {
            return Err(ApiError::TokenRefused(why));
        }
        touch(state, &token, at);
        Ok(Caller(token, credential))
    }
}

async fn lookup_token(state: &AppState, token: &str) -> Result<ApiToken, ApiError> {
    if token.is_empty() || token.len() >= 512 {
        return Err(ApiError::Unauthorized);
    }
    state
        .store
        .token_by_hash(&hash_token(token))
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// Record the use, at most once a minute per token: most requests write nothing. The write runs
/// in the background, one per token at a time, so a request never waits for the writer (on
/// SQLite it queues behind whatever the engine or a large submission is writing).
fn touch(state: &AppState, token: &ApiToken, at: DateTime<Utc>) {
    let fresh = token
        .last_used_at
        .is_some_and(|t| (at - t).num_seconds() < TOKEN_TOUCH_INTERVAL_SECONDS);
    if fresh
        || !state
            .token_touches
            .lock()
            .expect("token touches")
            .insert(token.id)
    {
        return;
    }
    let (store, touches) = (state.store.clone(), state.token_touches.clone());
    let id = token.id;
    tokio::spawn(async move {
        if let Err(e) = store.touch_token(id, at).await {
            tracing::warn!(token_id = id, error = %e, "could not record the token's last use");
        }
        touches.lock().expect("token touches").remove(&id);
    });
}
