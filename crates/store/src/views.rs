//! Read models for operators: the live queue (what runs where, what waits and in which order)
//! and the GPU ledger over time. Both backends fill these with plain reads; nothing here writes.

use chrono::{DateTime, Utc};
use retake_core::AttemptStatus;
use serde::Serialize;

/// One attempt that is running or waiting to run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueEntry {
    pub attempt_id: i64,
    pub segment_id: i64,
    pub label: Option<String>,
    pub project_id: i64,
    pub scene_type_id: i64,
    pub scene_type_name: String,
    /// 1 is the original generation; above 1 a retry or a re-run.
    pub attempt_number: u32,
    /// `queued`, `generating` or `scoring`.
    pub status: AttemptStatus,
    /// Claim order: higher first, then older (originals 0, retries the policy's `retry_priority`).
    pub priority: u8,
    /// The worker holding the attempt's lease (running attempts only).
    pub worker: Option<String>,
    pub backend: Option<String>,
    /// The ComfyUI server the attempt was sent to, when the backend recorded one.
    pub server: Option<String>,
    /// 0..=1 as the backend reports it.
    pub progress: Option<f64>,
    pub reserved_gpu_seconds: f64,
    /// A queued attempt held back by an infrastructure backoff is not claimed before this.
    pub not_before: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Queued attempts: 1-based place in claim order among every queued attempt of every
    /// project (workers claim across projects).
    pub position: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub project_id: Option<i64>,
    /// Skip this many queued attempts (in claim order) before the page.
    pub offset: u64,
    pub limit: u32,
}

/// The running attempts, one page of the queued ones, and what an estimate needs.
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    /// Generating or scoring now, oldest start first (at most [`MAX_RUNNING_LISTED`]).
    pub running: Vec<QueueEntry>,
    pub running_total: u64,
    /// The page of queued attempts, in claim order.
    pub queued: Vec<QueueEntry>,
    /// Queued attempts matching the filter.
    pub queued_total: u64,
    /// Attempts running now across every project (the capacity the queue drains at).
    pub running_everywhere: u64,
    /// Wall seconds (start to finish) of the most recently finished attempts, newest first.
    pub recent_wall_seconds: Vec<f64>,
}

pub const MAX_RUNNING_LISTED: u32 = 500;
/// How many finished attempts the queue estimate averages over.
pub const WALL_TIME_WINDOW: u32 = 200;

/// One row of a project's append-only GPU ledger, with what it charged.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub id: i64,
    pub attempt_id: i64,
    /// Absent when the attempt no longer exists (its segment was deleted).
    pub segment_id: Option<i64>,
    pub attempt_number: Option<u32>,
    pub scene_type_id: Option<i64>,
    pub scene_type_name: Option<String>,
    /// GPU seconds the attempt had reserved.
    pub reserved_seconds: f64,
    /// GPU seconds charged against the budget.
    pub spent_seconds: f64,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    pub project_id: i64,
    /// Rows with an id below this (the previous page's cursor).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// GPU seconds charged in one time bucket to one scene type.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SpendPoint {
    /// 0-based index of the bucket, from the first ledger row.
    pub bucket: u32,
    /// Null for charges whose attempt no longer exists.
    pub scene_type_id: Option<i64>,
    pub spent_seconds: f64,
}

/// A project's spend over time, split into equal buckets from its first to its last charge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpendSeries {
    /// The first and last ledger rows' times (None when nothing was charged yet).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub bucket_seconds: f64,
    pub points: Vec<SpendPoint>,
}

impl SpendSeries {
    /// Bucket width for `buckets` buckets over `span` seconds; a single instant gets 1 s buckets.
    pub fn width(span_seconds: f64, buckets: u32) -> f64 {
        if span_seconds > 0.0 && buckets > 0 {
            span_seconds / buckets as f64
        } else {
            1.0
        }
    }
}
