//! Budget over time: a project's GPU ledger (JSON pages or the whole of it as CSV) and its
//! spend per scene type in time buckets, for the burn-down chart.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use retake_store::{LedgerEntry, LedgerFilter, SpendPoint, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const MAX_LEDGER_PAGE: u32 = retake_core::limits::PAGE_LIMIT.1;
pub const MAX_BUCKETS: u32 = 200;
/// Rows read per database round trip while streaming the CSV export.
const CSV_CHUNK: u32 = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// Rows with an id below this: the previous page's `next_cursor`.
    pub cursor: Option<i64>,
    /// Rows per JSON page, 1..=500 (default 100). The CSV export ignores it and sends every row
    /// from `cursor` on.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LedgerPage {
    pub project_id: i64,
    /// Newest first.
    pub items: Vec<LedgerEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpendQuery {
    /// Equal time buckets from the first charge to the last, 1..=200 (default 40).
    #[param(minimum = 1, maximum = 200)]
    pub buckets: Option<u32>,
}

/// A scene type named in the spend series.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SpendSceneType {
    /// Null for charges whose attempt no longer exists.
    pub scene_type_id: Option<i64>,
    pub name: String,
    pub spent_seconds: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SpendSeriesView {
    pub project_id: i64,
    pub gpu_budget_seconds: Option<f64>,
    pub gpu_spent_seconds: f64,
    pub gpu_reserved_seconds: f64,
    /// First and last charge (null when nothing was charged yet).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub buckets: u32,
    pub bucket_seconds: f64,
    /// Scene types with charges, most spent first.
    pub scene_types: Vec<SpendSceneType>,
    /// GPU seconds charged per bucket and scene type (absent pairs charged nothing).
    pub points: Vec<SpendPoint>,
}

fn check_range(field: &str, v: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    match v {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::validation(
            field,
            format!("must be in 1..={max}; got {v}"),
        )),
    }
}

fn wants_csv(format: Option<&str>, headers: &HeaderMap) -> ApiResult<bool> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::validation(
            "format",
            format!("must be `json` or `csv`; got `{other}`"),
        )),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().split(';').next() == Some("text/csv"))
            })),
    }
}

/// The project's GPU ledger: one append-only row per charge, newest first. JSON pages, or with
/// `?format=csv` / `Accept: text/csv` every row as CSV (`id,created_at,attempt_id,segment_id,
/// attempt_number,scene_type_id,scene_type,reserved_seconds,spent_seconds,note`).
#[utoipa::path(get, path = "/api/projects/{id}/ledger", tag = "projects",
    params(("id" = i64, Path), LedgerQuery),
    responses(
        (status = 200, body = LedgerPage, description = "a JSON page, or CSV (text/csv) when asked for"),
        (status = 400, body = crate::error::ErrorBody, description = "a query value of the wrong type or an unknown parameter"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "limit outside 1..=200, or format neither json nor csv"),
    ),
    security(("bearer" = [])))]
pub async fn ledger(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Response> {
    let limit = check_range("limit", q.limit, 100, MAX_LEDGER_PAGE)?;
    let csv = wants_csv(q.format.as_deref(), &headers)?;
    state.store.get_project(id).await?;
    if csv {
        return Ok(csv_response(state.store.clone(), id, q.cursor));
    }
    let items = state
        .store
        .list_ledger(&LedgerFilter {
            project_id: id,
            before_id: q.cursor,
            limit,
        })
        .await?;
    let next_cursor = if items.len() as u32 == limit {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(axum::Json(LedgerPage {
        project_id: id,
        items,
        next_cursor,
    })
    .into_response())
}

fn csv_rows(rows: &[LedgerEntry], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(vec![]);
    if header {
        w.write_record([
            "id",
            "created_at",
            "attempt_id",
            "segment_id",
            "attempt_number",
            "scene_type_id",
            "scene_type",
            "reserved_seconds",
            "spent_seconds",
            "note",
        ])?;
    }
    let opt = |v: Option<String>| v.unwrap_or_default();
    for r in rows {
        w.write_record([
            r.id.to_string(),
            r.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            r.attempt_id.to_string(),
            opt(r.segment_id.map(|v| v.to_string())),
            opt(r.attempt_number.map(|v| v.to_string())),
            opt(r.scene_type_id.map(|v| v.to_string())),
            opt(r.scene_type_name.clone()),
            format!("{:.3}", r.reserved_seconds),
            format!("{:.3}", r.spent_seconds),
            r.note.clone(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// Streams the ledger in chunks so a long one never sits in memory whole.
fn csv_response(store: Arc<dyn Store>, project_id: i64, cursor: Option<i64>) -> Response {
    let stream = futures::stream::unfold(
        (store, cursor, true, false),
        move |(store, cursor, first, done)| async move {
            if done {
                return None;
            }
            let page = store
                .list_ledger(&LedgerFilter {
                    project_id,
                    before_id: cursor,
                    limit: CSV_CHUNK,
                })
                .await;
            let rows = match page {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, project_id, "ledger export stopped");
                    return Some((
                        Err(std::io::Error::other(e.to_string())),
                        (store, cursor, false, true),
                    ));
                }
            };
            let last = rows.len() < CSV_CHUNK as usize;
            let next = rows.last().map(|r| r.id);
            let bytes = csv_rows(&rows, first).map_err(std::io::Error::other);
            if rows.is_empty() && !first {
                return None;
            }
            Some((bytes, (store, next, false, last)))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"project-{project_id}-gpu-ledger.csv\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Spend over time for the burn-down chart: GPU seconds per scene type in equal buckets from
/// the first charge to the last, with the budget and what is spent and reserved now.
#[utoipa::path(get, path = "/api/projects/{id}/spend", tag = "projects",
    params(("id" = i64, Path), SpendQuery),
    responses(
        (status = 200, body = SpendSeriesView),
        (status = 400, body = crate::error::ErrorBody, description = "a query value of the wrong type or an unknown parameter"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "buckets outside 1..=200"),
    ),
    security(("bearer" = [])))]
pub async fn spend(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
    Query(q): Query<SpendQuery>,
) -> ApiResult<axum::Json<SpendSeriesView>> {
    let buckets = check_range("buckets", q.buckets, 40, MAX_BUCKETS)?;
    let project = state.store.get_project(id).await?;
    let series = state.store.spend_series(id, buckets).await?;
    let names: std::collections::HashMap<i64, String> = state
        .store
        .list_scene_types(Some(id))
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let mut totals: std::collections::BTreeMap<Option<i64>, f64> = Default::default();
    for p in &series.points {
        *totals.entry(p.scene_type_id).or_default() += p.spent_seconds;
    }
    let mut scene_types: Vec<SpendSceneType> = totals
        .into_iter()
        .map(|(sid, spent)| SpendSceneType {
            scene_type_id: sid,
            name: sid
                .and_then(|s| names.get(&s).cloned())
                .unwrap_or_else(|| "(deleted)".into()),
            spent_seconds: spent,
        })
        .collect();
    scene_types.sort_by(|a, b| b.spent_seconds.total_cmp(&a.spent_seconds));
    Ok(axum::Json(SpendSeriesView {
        project_id: id,
        gpu_budget_seconds: project.gpu_budget_seconds,
        gpu_spent_seconds: project.gpu_spent_seconds,
        gpu_reserved_seconds: project.gpu_reserved_seconds,
        start: series.start,
        end: series.end,
        buckets,
        bucket_seconds: series.bucket_seconds,
        scene_types,
        points: series.points,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let row = LedgerEntry {
            id: 7,
            attempt_id: 3,
            segment_id: Some(2),
            attempt_number: Some(1),
            scene_type_id: Some(1),
            scene_type_name: Some("night, \"wet\"".into()),
            reserved_seconds: 33.0,
            spent_seconds: 12.5,
            note: "finished".into(),
            created_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let text = String::from_utf8(csv_rows(&[row], true).unwrap()).unwrap();
        let mut lines = text.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("id,created_at,attempt_id"));
        assert_eq!(
            lines.next().unwrap(),
            r#"7,2026-01-02T03:04:05.000Z,3,2,1,1,"night, ""wet""",33.000,12.500,finished"#
        );
    }

    #[test]
    fn format_and_accept_choose_csv() {
        let mut h = HeaderMap::new();
        assert!(!wants_csv(None, &h).unwrap());
        h.insert(
            header::ACCEPT,
            "text/csv;q=1, application/json".parse().unwrap(),
        );
        assert!(wants_csv(None, &h).unwrap());
        assert!(!wants_csv(Some("json"), &h).unwrap());
        assert!(wants_csv(Some("bogus"), &h).is_err());
    }
}
