//! Serving a stored video: resolve the attempt's reference inside the media store (nothing
//! outside it), then stream the object, or one byte range of it, with the headers a `<video>`
//! element needs to seek.

use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use retake_engine::media::{MediaError, MediaStore};

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::NotInStore(m) => ApiError::NotFound(m),
            MediaError::NotFound => ApiError::NotFound(e.to_string()),
            MediaError::BadRange => ApiError::RangeNotSatisfiable(e.to_string()),
            MediaError::Store { .. } => {
                tracing::warn!(error = %e, "the media store failed; answering 503");
                ApiError::Unavailable {
                    message: e.to_string(),
                    storage_full: false,
                }
            }
        }
    }
}

/// The object `reference` names, whole (200) or the one byte range asked for (206).
pub async fn serve(
    store: &MediaStore,
    reference: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let path = store.locate(reference)?;
    let meta = store.head(&path).await?;
    let size = meta.size;
    let range = match headers.get(header::RANGE).map(|v| v.to_str()) {
        None => None,
        Some(Ok(r)) => {
            let ranges = http_range_header::parse_range_header(r)
                .and_then(|p| p.validate(size))
                .map_err(|_| {
                    ApiError::RangeNotSatisfiable(format!(
                        "the requested byte range `{r}` is outside the video ({size} bytes)"
                    ))
                })?;
            // One range is what players ask for; several are answered with the whole video.
            match ranges.as_slice() {
                [one] => Some(*one.start()..*one.end() + 1),
                _ => None,
            }
        }
        Some(Err(_)) => {
            return Err(ApiError::RangeNotSatisfiable(
                "the Range header is not ASCII".into(),
            ))
        }
    };
    let got = store.get(&path, range.clone()).await?;
    let mime = mime_guess::from_path(path.as_ref()).first_or_octet_stream();
    let mut res = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, mime.as_ref())
        .header(
            header::LAST_MODIFIED,
            meta.last_modified
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
        );
    if let Some(tag) = meta
        .e_tag
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        res = res.header(header::ETAG, tag);
    }
    let res = match range {
        Some(r) => res
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_LENGTH, r.end - r.start)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
            ),
        None => res
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size),
    };
    res.body(Body::from_stream(got.into_stream()))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("media response: {e}")))
}
