//! One error type for every handler, one JSON shape for every error:
//! `{"error": {"code", "message", "field"?, "budget"?}}` (`budget`: the figures of a refused
//! budget). 5xx details are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use retake_store::StoreError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or out-of-range input (422), naming the field and the allowed range.
    #[error("{message}")]
    Validation {
        field: Option<String>,
        message: String,
    },
    /// The body is not valid JSON, or has the wrong shape (400).
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    /// A stale precondition or a uniqueness rule (409).
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// A budget below what the project has already spent and reserved (409 on
    /// `gpu_budget_seconds`), answered with the figures so that a client can show them.
    #[error("a budget of {requested:.1} GPU-s is below what the project has already spent ({spent:.1} GPU-s) and reserved ({reserved:.1} GPU-s); no further attempt could run. Send \"allow_below_spent\": true to set it anyway")]
    BudgetBelowCommitted {
        requested: f64,
        spent: f64,
        reserved: f64,
    },
    /// A write without `If-Match` (428): it could silently overwrite someone else's change.
    #[error("this write needs `If-Match: <updated_at>` with the updated_at value from GET, so that it cannot overwrite a change made since")]
    PreconditionRequired,
    /// `If-Match` no longer matches: someone changed the resource since it was read (412).
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("missing or invalid API token")]
    Unauthorized,
    /// A known token (or its session) that can no longer be used: revoked or expired (401).
    #[error("{0}")]
    TokenRefused(String),
    #[error("{0}")]
    Forbidden(String),
    /// The path exists but not with this method (405; axum's own 405 has no body).
    #[error("this method is not allowed on this path; the Allow header lists the allowed ones")]
    MethodNotAllowed,
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// The database could not take the write (503), or its disk is full (507). Nothing was
    /// stored; the request can be sent again once the cause is gone.
    #[error("{message}")]
    Unavailable { message: String, storage_full: bool },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `validation_failed`, `bad_request`, `not_found`, `conflict`,
    /// `precondition_failed`, `precondition_required`, `unauthorized`, `forbidden`,
    /// `method_not_allowed`, `payload_too_large`, `range_not_satisfiable`, `storage_unavailable`,
    /// `storage_full`, `internal`.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Only on a 409 for a budget below what is spent and reserved: the figures, in GPU-s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetFigures>,
}

/// Why a budget was refused: the budget asked for, and what the project had spent and reserved.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BudgetFigures {
    pub requested_seconds: f64,
    pub spent_seconds: f64,
    pub reserved_seconds: f64,
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: Some(field.into()),
            message: message.into(),
        }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::NotFound(what.into())
    }

    /// The status and body this error answers with, for answers that list several results.
    pub fn detail(&self) -> (StatusCode, ErrorDetail) {
        let (status, code, field) = self.parts();
        (
            status,
            ErrorDetail {
                code,
                message: self.to_string(),
                field,
                budget: self.budget_figures(),
            },
        )
    }

    fn budget_figures(&self) -> Option<BudgetFigures> {
        match self {
            ApiError::BudgetBelowCommitted {
                requested,
                spent,
                reserved,
            } => Some(BudgetFigures {
                requested_seconds: *requested,
                spent_seconds: *spent,
                reserved_seconds: *reserved,
            }),
            _ => None,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<String>) {
        match self {
            ApiError::Validation { field, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                field.clone(),
            ),
            ApiError::BadRequest { field, .. } => {
                (StatusCode::BAD_REQUEST, "bad_request", field.clone())
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::Conflict { field, .. } => (StatusCode::CONFLICT, "conflict", field.clone()),
            ApiError::BudgetBelowCommitted { .. } => (
                StatusCode::CONFLICT,
                "conflict",
                Some("gpu_budget_seconds".into()),
            ),
            ApiError::PreconditionRequired => (
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                Some("If-Match".into()),
            ),
            ApiError::PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                Some("If-Match".into()),
            ),
            ApiError::Unauthorized | ApiError::TokenRefused(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", None)
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            ApiError::RangeNotSatisfiable(_) => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                None,
            ),
            ApiError::Unavailable {
                storage_full: true, ..
            } => (StatusCode::INSUFFICIENT_STORAGE, "storage_full", None),
            ApiError::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", None)
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let mut res = (
            status,
            axum::Json(ErrorBody {
                error: ErrorDetail {
                    code,
                    message: self.to_string(),
                    field,
                    budget: self.budget_figures(),
                },
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => {
                ApiError::NotFound(format!("{entity} {id} does not exist"))
            }
            // The store reports a stale `updated_at` precondition as a conflict on that field.
            StoreError::Conflict { message, field } if field.as_deref() == Some("updated_at") => {
                ApiError::PreconditionFailed(message)
            }
            StoreError::Conflict { message, field } => ApiError::Conflict { field, message },
            StoreError::Invalid { message, field } => ApiError::Validation { field, message },
            StoreError::Unavailable {
                message,
                storage_full,
            } => {
                tracing::warn!(%message, "the database refused a write; answering 503/507");
                ApiError::Unavailable {
                    message,
                    storage_full,
                }
            }
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<retake_core::PolicyError> for ApiError {
    fn from(e: retake_core::PolicyError) -> Self {
        ApiError::Validation {
            field: Some(e.field),
            message: e.message,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
