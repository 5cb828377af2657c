//! Bearer API tokens. Tokens are random strings shown once; the store keeps only their SHA-256.
//! A viewer reads; a creator also submits segments, selects attempts and acts on reviews; only an
//! admin changes policies, budgets, scene types and servers.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use retake_store::{ApiToken, Role};
use sha2::{Digest, Sha256};

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
    let token = new_token();
    store.create_token(name, role, &hash_token(&token)).await?;
    Ok(token)
}

/// The caller, authenticated by `Authorization: Bearer <token>` (or `?access_token=` for the
/// browser's EventSource and media elements, which cannot set headers).
#[derive(Debug, Clone)]
pub struct Caller(pub ApiToken);

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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = match header {
            Some(h) => h.strip_prefix("Bearer ").map(str::trim).map(str::to_owned),
            None => parts.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("access_token=").map(|t| t.to_owned()))
            }),
        };
        let Some(token) = token.filter(|t| !t.is_empty() && t.len() < 512) else {
            return Err(ApiError::Unauthorized);
        };
        match state.store.token_by_hash(&hash_token(&token)).await? {
            Some(t) => Ok(Caller(t)),
            None => Err(ApiError::Unauthorized),
        }
    }
}
