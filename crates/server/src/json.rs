//! A JSON body extractor whose rejections use the API's error shape and name the offending field
//! (via `serde_path_to_error`). Bodies are capped at 1 MiB.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

pub const MAX_BODY: usize = 1 << 20;

pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !json_type {
            return Err(ApiError::BadRequest { field: None, message: "expected a JSON body with Content-Type: application/json".into() });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest { field: None, message: format!("cannot read the body: {e}") }
            }
        })?;
        parse(&bytes).map(Json)
    }
}

/// Parse JSON, turning shape errors into a 400 (syntax, wrong type) or 422 (a value a policy or
/// domain type refused), naming the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let field = field_of(&path, &msg);
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest { field: None, message: format!("malformed JSON: {msg}") },
            Category::Data if is_domain_error(&msg) => ApiError::Validation { field: Some(field), message: strip_position(&msg) },
            Category::Data => ApiError::BadRequest { field: Some(field), message: strip_position(&msg) },
        }
    })
}

/// Domain types (`RetryPolicy`, `PolicyOverrides`) report `field: message`; serde's own errors
/// ("invalid type", "unknown field", "missing field") are shape errors.
fn is_domain_error(msg: &str) -> bool {
    !(msg.starts_with("invalid type")
        || msg.starts_with("unknown field")
        || msg.starts_with("missing field")
        || msg.starts_with("invalid value")
        || msg.starts_with("unknown variant")
        || msg.starts_with("invalid length"))
}

fn field_of(path: &str, msg: &str) -> String {
    // "unknown field `x`": the field is x, inside `path`.
    let named = msg.split('`').nth(1).filter(|_| msg.starts_with("unknown field") || msg.starts_with("missing field"));
    // Domain errors start with "field: message".
    let domain = msg.split_once(':').map(|(f, _)| f.trim()).filter(|f| !f.contains(' ') && !f.is_empty());
    let leaf = named.or(domain);
    match (path, leaf) {
        (".", Some(l)) | ("", Some(l)) => l.to_owned(),
        (p, Some(l)) if !p.ends_with(l) && (named.is_some()) => format!("{p}.{l}"),
        (".", None) | ("", None) => "body".to_owned(),
        (p, Some(l)) if domain.is_some() && !p.ends_with(l) => format!("{p}.{l}").trim_start_matches('.').to_owned(),
        (p, _) => p.to_owned(),
    }
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retake_core::RetryPolicy;

    #[test]
    fn names_fields() {
        let e = parse::<RetryPolicy>(br#"{"max_attempts": 11}"#).unwrap_err();
        match e {
            ApiError::Validation { field, message } => {
                assert_eq!(field.as_deref(), Some("max_attempts"));
                assert!(message.contains("1..=10"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match parse::<RetryPolicy>(br#"{"bogus": 1}"#).unwrap_err() {
            ApiError::BadRequest { field, .. } => assert_eq!(field.as_deref(), Some("bogus")),
            other => panic!("{other:?}"),
        }
        match parse::<RetryPolicy>(br#"{"max_attempts": "three"}"#).unwrap_err() {
            ApiError::BadRequest { field, .. } => assert_eq!(field.as_deref(), Some("max_attempts")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse::<RetryPolicy>(b"{"), Err(ApiError::BadRequest { .. })));
    }
}
