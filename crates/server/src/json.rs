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
            return Err(ApiError::BadRequest {
                field: None,
                message: "expected a JSON body with Content-Type: application/json".into(),
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest {
                    field: None,
                    message: format!("cannot read the body: {e}"),
                }
            }
        })?;
        // Every request body is an object; serde would also take a struct as an array of its
        // fields in order (`["name"]`), which no client means.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(ApiError::BadRequest {
                field: Some("body".into()),
                message: "the body must be a JSON object".into(),
            });
        }
        parse(&bytes).map(Json)
    }
}

/// Parse JSON, turning shape errors into a 400 (syntax, wrong type) or 422 (a value a policy or
/// domain type refused), naming the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let normalized = integral_numbers(bytes);
    let bytes = normalized.as_deref().unwrap_or(bytes);
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let field = field_of(&path, &msg);
        use serde_json::error::Category;
        match inner.classify() {
            // `1e400` is valid JSON syntax that no f64 holds: say which field it was.
            Category::Syntax if msg.starts_with("number out of range") => ApiError::BadRequest {
                field: Some(field),
                message: strip_position(&msg),
            },
            Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest {
                field: None,
                message: format!("malformed JSON: {msg}"),
            },
            Category::Data if is_domain_error(&msg) => ApiError::Validation {
                field: Some(field),
                message: strip_position(&msg),
            },
            Category::Data => ApiError::BadRequest {
                field: Some(field),
                message: strip_position(&msg),
            },
        }
    })?;
    // A document followed by anything but whitespace is not JSON.
    de.end().map_err(|e| ApiError::BadRequest {
        field: None,
        message: format!("malformed JSON: {e}"),
    })?;
    // PostgreSQL cannot store NUL in text or JSONB; refuse it the same way on every store.
    if bytes.windows(6).any(|w| w == br"\u0000") {
        if let Some(field) = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| nul_field(&v, ""))
        {
            return Err(ApiError::Validation {
                field: Some(field),
                message: "must not contain NUL characters (\\u0000)".into(),
            });
        }
    }
    Ok(value)
}

/// Objects whose numbers are the caller's own (generation parameters, workflows, QA details),
/// where `7.0` and `7` mean different things and are kept as sent.
const FREE_FORM: [&str; 7] = [
    "parameters",
    "default_parameters",
    "workflow_template",
    "backend_config",
    "details",
    "options",
    "config",
];

/// JSON Schema counts `3.0` as an integer; serde does not. The body with every integral number
/// written as an integer (outside the free-form objects), or `None` when nothing changes or
/// the body is not JSON (then the parser reports the error itself).
fn integral_numbers(bytes: &[u8]) -> Option<Vec<u8>> {
    use serde_json::Value;
    fn walk(v: &mut Value, changed: &mut bool) {
        match v {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() <= (1u64 << 53) as f64 {
                    *v = Value::from(f as i64);
                    *changed = true;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, changed)),
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if !FREE_FORM.contains(&k.as_str()) {
                        walk(x, changed);
                    }
                }
            }
            _ => {}
        }
    }
    if !bytes.contains(&b'.') && !bytes.iter().any(|b| *b == b'e' || *b == b'E') {
        return None;
    }
    let mut v: Value = serde_json::from_slice(bytes).ok()?;
    let mut changed = false;
    walk(&mut v, &mut changed);
    changed.then(|| serde_json::to_vec(&v).ok()).flatten()
}

/// The path of the first string or key holding a NUL character.
fn nul_field(v: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_field(x, &format!("{path}[{i}]"))),
        Value::Object(o) => o.iter().find_map(|(k, x)| {
            let key = k.replace('\0', "\\u0000");
            let p = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            if k.contains('\0') {
                Some(p)
            } else {
                nul_field(x, &p)
            }
        }),
        _ => None,
    }
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
    let f = field_at(path, msg);
    // An empty key (`{"": 1}`, path `policy.`) must not make an empty or dangling field name.
    match f.trim_end_matches('.') {
        "" => "body".to_owned(),
        f => f.to_owned(),
    }
}

fn field_at(path: &str, msg: &str) -> String {
    // The path of an unknown field already ends with its key, which may itself hold backticks
    // that would cut the one quoted in the message short.
    if msg.starts_with("unknown field") && !path.is_empty() && path != "." {
        return path.to_owned();
    }
    // "unknown field `x`": the field is x, inside `path`.
    let named = msg
        .split('`')
        .nth(1)
        .filter(|n| !n.is_empty())
        .filter(|_| msg.starts_with("unknown field") || msg.starts_with("missing field"));
    // Domain errors start with "field: message".
    let domain = msg
        .split_once(':')
        .map(|(f, _)| f.trim())
        .filter(|f| !f.contains(' ') && !f.is_empty());
    let leaf = named.or(domain);
    match (path, leaf) {
        (".", Some(l)) | ("", Some(l)) => l.to_owned(),
        (p, Some(l)) if !p.ends_with(l) && (named.is_some()) => format!("{p}.{l}"),
        (".", None) | ("", None) => "body".to_owned(),
        (p, Some(l)) if domain.is_some() && !p.ends_with(l) => {
            format!("{p}.{l}").trim_start_matches('.').to_owned()
        }
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
            ApiError::BadRequest { field, .. } => {
                assert_eq!(field.as_deref(), Some("max_attempts"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse::<RetryPolicy>(b"{"),
            Err(ApiError::BadRequest { .. })
        ));
    }
}
