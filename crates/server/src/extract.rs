//! Path and query extractors whose rejections use the API's error shape.

use crate::error::ApiError;
use axum::extract::{FromRequestParts, Path as AxPath, Query as AxQuery};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        AxPath::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::BadRequest {
                field: Some("path".into()),
                message: format!("invalid path parameter: {}", e.body_text()),
            })
    }
}

pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        AxQuery::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::BadRequest {
                field: Some("query".into()),
                message: format!("invalid query string: {}", e.body_text()),
            })
    }
}

/// The optimistic-concurrency precondition every write to a project, scene type or policy needs:
/// `If-Match: <updated_at>` as returned by a GET. Missing is a 428; a stale value becomes a 412
/// when the store compares it.
pub fn require_if_match(
    headers: &axum::http::HeaderMap,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if_match(headers)?.ok_or(ApiError::PreconditionRequired)
}

/// `If-Match: <updated_at>` when present.
pub fn if_match(
    headers: &axum::http::HeaderMap,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let Some(v) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .unwrap_or("")
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| Some(d.with_timezone(&chrono::Utc)))
        .map_err(|_| ApiError::BadRequest {
            field: Some("If-Match".into()),
            message: "If-Match must be the updated_at value (RFC 3339) returned by GET".into(),
        })
}
