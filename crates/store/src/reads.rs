//! The read half of [`crate::Store`], written once for both databases over a [`Dialect`]: plain
//! reads of what is stored, the aggregates (project statistics, failure patterns, metrics) and
//! the operators' read models ([`crate::views`]). Each backend's `impl Store` calls these with
//! the pool it reads from.
//!
//! Statements are written with `$N` placeholders; `{strpos}`, `{server}` and `{in_ids_1}` are
//! the fragments the dialects spell differently (see [`Dialect::fragment`]). Where a whole
//! statement differs, it is the dialect's own constant.

use crate::dialect::{Arg, Dialect, Ids, Stmt, Ts, Q};
use crate::model::*;
use crate::ops;
use crate::rows::{self, parse_enum, RowExt};
use crate::views::*;
use crate::{Result, StoreError};
use retake_core::{ArmStats, AttemptStatus};
use sqlx::Pool;
use std::collections::BTreeMap;

/// The row with this id, built by `build`, or NotFound naming `entity`.
async fn by_id<D: Dialect, T>(
    pool: &Pool<D>,
    s: &'static Stmt,
    id: i64,
    entity: &'static str,
    build: fn(&D::Row) -> Result<T>,
) -> Result<T> {
    let r = D::optional(D::query(s).arg(id), pool).await?;
    r.as_ref()
        .map(build)
        .transpose()?
        .ok_or_else(|| StoreError::not_found(entity, id))
}

/// Every row `q` returns, built by `build`.
async fn all<'e, D: Dialect, T>(
    pool: &'e Pool<D>,
    q: Q<'e, D>,
    build: fn(&D::Row) -> Result<T>,
) -> Result<Vec<T>> {
    D::all(q, pool).await?.iter().map(build).collect()
}

static GET_PROJECT: Stmt = Stmt::new(&[ops::PROJECT_SELECT, " WHERE p.id = $1"]);
static LIST_PROJECTS: Stmt = Stmt::new(&[ops::PROJECT_SELECT, " ORDER BY p.id"]);

pub(crate) async fn get_project<D: Dialect>(pool: &Pool<D>, id: i64) -> Result<Project> {
    by_id(pool, &GET_PROJECT, id, "project", rows::project).await
}

pub(crate) async fn list_projects<D: Dialect>(pool: &Pool<D>) -> Result<Vec<Project>> {
    all(pool, D::query(&LIST_PROJECTS), rows::project).await
}

static GET_SCENE_TYPE: Stmt = Stmt::new(&["SELECT * FROM scene_types WHERE id = $1"]);
static LIST_SCENE_TYPES: Stmt = Stmt::new(&[
    "SELECT * FROM scene_types WHERE ($1::int8 IS NULL OR project_id = $1) ORDER BY id",
]);

pub(crate) async fn get_scene_type<D: Dialect>(pool: &Pool<D>, id: i64) -> Result<SceneType> {
    by_id(pool, &GET_SCENE_TYPE, id, "scene type", rows::scene_type).await
}

pub(crate) async fn list_scene_types<D: Dialect>(
    pool: &Pool<D>,
    project_id: Option<i64>,
) -> Result<Vec<SceneType>> {
    let q = D::query(&LIST_SCENE_TYPES).arg(project_id);
    all(pool, q, rows::scene_type).await
}

static GET_SEGMENT: Stmt = Stmt::new(&["SELECT * FROM segments WHERE id = $1"]);
static LIST_SEGMENTS: Stmt = Stmt::new(&[
    "SELECT * FROM segments WHERE ($1::int8 IS NULL OR project_id = $1) AND ($2::int8 IS NULL OR scene_type_id = $2)
     AND ($3::text IS NULL OR status = $3) AND ($4::int8 IS NULL OR id < $4)
     AND ($6::text IS NULL OR review_reason = $6) AND ($7::text IS NULL OR {strpos}(lower(label), lower($7)) > 0)
     ORDER BY id DESC LIMIT $5",
]);

pub(crate) async fn get_segment<D: Dialect>(pool: &Pool<D>, id: i64) -> Result<Segment> {
    by_id(pool, &GET_SEGMENT, id, "segment", rows::segment).await
}

pub(crate) async fn list_segments<D: Dialect>(
    pool: &Pool<D>,
    f: &SegmentFilter,
) -> Result<Vec<Segment>> {
    let q = D::query(&LIST_SEGMENTS)
        .arg(f.project_id)
        .arg(f.scene_type_id)
        .arg(f.status.map(|s| s.as_str()))
        .arg(f.before_id)
        .arg(f.limit.clamp(1, 1000) as i64)
        .arg(f.review_reason.map(|r| r.as_str()))
        .arg(f.label_contains.as_deref());
    all(pool, q, rows::segment).await
}

static GET_ATTEMPT: Stmt = Stmt::new(&["SELECT * FROM retry_attempts WHERE id = $1"]);
static LIST_ATTEMPTS: Stmt =
    Stmt::new(&["SELECT * FROM retry_attempts WHERE segment_id = $1 ORDER BY attempt_number"]);
static LIST_ATTEMPTS_OF: Stmt = Stmt::new(&[
    "SELECT * FROM retry_attempts WHERE segment_id {in_ids_1} ORDER BY segment_id, attempt_number",
]);

pub(crate) async fn get_attempt<D: Dialect>(pool: &Pool<D>, id: i64) -> Result<Attempt> {
    by_id(pool, &GET_ATTEMPT, id, "attempt", rows::attempt).await
}

pub(crate) async fn list_attempts<D: Dialect>(
    pool: &Pool<D>,
    segment_id: i64,
) -> Result<Vec<Attempt>> {
    all(
        pool,
        D::query(&LIST_ATTEMPTS).arg(segment_id),
        rows::attempt,
    )
    .await
}

pub(crate) async fn list_attempts_of<D: Dialect>(
    pool: &Pool<D>,
    segment_ids: &[i64],
) -> Result<Vec<Attempt>> {
    if segment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let q = D::query(&LIST_ATTEMPTS_OF).arg(Ids(segment_ids));
    all(pool, q, rows::attempt).await
}

static QUEUED_COUNT: Stmt =
    Stmt::new(&["SELECT COUNT(*) FROM retry_attempts WHERE overall_status = 'queued'"]);

/// Attempts waiting in the queue, including those held back by an infrastructure backoff.
pub(crate) async fn pending_work<D: Dialect>(pool: &Pool<D>) -> Result<u64> {
    let r = D::one(D::query(&QUEUED_COUNT), pool).await?;
    Ok(r.value::<i64>(0)? as u64)
}

pub(crate) async fn list_events<D: Dialect>(
    pool: &Pool<D>,
    after_id: i64,
    segment_id: Option<i64>,
    limit: u32,
) -> Result<Vec<Event>> {
    let q = sqlx::query(D::events_after(segment_id.is_some()))
        .arg(after_id)
        .arg(segment_id)
        .arg(limit.clamp(1, 10_000) as i64);
    all(pool, q, rows::event).await
}

static PROJECT_COUNTERS: Stmt = Stmt::new(&[ops::PROJECT_COUNTERS]);

pub(crate) async fn project_stats<D: Dialect>(
    pool: &Pool<D>,
    project_id: i64,
) -> Result<ProjectStats> {
    let q = D::query(&PROJECT_COUNTERS).arg(project_id);
    let counters: Vec<(String, f64)> = all(pool, q, |r| Ok((r.value(0)?, r.value(1)?))).await?;
    Ok(ProjectStats::from_counters(&counters.into_iter().collect()))
}

pub(crate) async fn failure_patterns<D: Dialect>(
    pool: &Pool<D>,
    scene_type_id: Option<i64>,
) -> Result<Vec<FailurePattern>> {
    let mut arms: BTreeMap<(i64, String), BTreeMap<String, ArmStats>> = BTreeMap::new();
    for r in D::all(sqlx::query(D::ARM_STATS).arg(scene_type_id), pool).await? {
        let stats = ArmStats {
            tries: r.uint(3)?,
            rescues: r.uint(4)?,
        };
        arms.entry((r.value(0)?, r.value(1)?))
            .or_default()
            .insert(r.value(2)?, stats);
    }
    let rs = D::all(sqlx::query(D::CHECK_STATS).arg(scene_type_id), pool).await?;
    rs.iter()
        .map(|r| {
            let (st, check): (i64, String) = (r.value(0)?, r.value(1)?);
            let mut counts = [0; 4];
            for (i, n) in counts.iter_mut().enumerate() {
                *n = r.uint(i + 2)?;
            }
            let arms = arms.remove(&(st, check.clone())).unwrap_or_default();
            Ok(FailurePattern::new(st, check, counts, arms))
        })
        .collect()
}

static ATTEMPTS_BY_STATUS: Stmt =
    Stmt::new(&["SELECT overall_status, COUNT(*) FROM retry_attempts GROUP BY overall_status"]);
static SEGMENTS_BY_STATUS: Stmt =
    Stmt::new(&["SELECT status, COUNT(*) FROM segments GROUP BY status"]);
static ESCALATIONS_BY_REASON: Stmt = Stmt::new(&[
    "SELECT review_reason, COUNT(*) FROM segments WHERE review_reason IS NOT NULL GROUP BY review_reason",
]);
// `had_failure` is kept on the segment: no walk over the attempts.
static RESCUES: Stmt =
    Stmt::new(&["SELECT COUNT(*) FROM segments WHERE status = 'passed' AND had_failure"]);
// Two grouped scans joined to the names: the same cost however many scene types there are.
static SCENE_TYPE_METRICS: Stmt = Stmt::new(&[ops::SCENE_TYPE_METRICS]);

/// `(key, count)` rows.
async fn counts<D: Dialect>(pool: &Pool<D>, s: &'static Stmt) -> Result<Vec<(String, u64)>> {
    all(pool, D::query(s), |r| {
        Ok((r.value(0)?, r.value::<i64>(1)? as u64))
    })
    .await
}

pub(crate) async fn metrics<D: Dialect>(pool: &Pool<D>) -> Result<MetricsSnapshot> {
    let mut m = MetricsSnapshot::default();
    m.attempts_by_status
        .extend(counts(pool, &ATTEMPTS_BY_STATUS).await?);
    m.segments_by_status
        .extend(counts(pool, &SEGMENTS_BY_STATUS).await?);
    m.escalations_by_reason
        .extend(counts(pool, &ESCALATIONS_BY_REASON).await?);
    m.rescues = D::one(D::query(&RESCUES), pool).await?.value::<i64>(0)? as u64;
    m.gpu_seconds_spent = D::one(sqlx::query(D::GPU_SECONDS_SPENT), pool)
        .await?
        .value(0)?;
    for p in list_projects(pool).await? {
        m.budget_remaining
            .push((p.name.clone(), p.remaining_gpu_seconds()));
        m.projects.push(ProjectMetrics {
            project: p.name.clone(),
            spent: p.gpu_spent_seconds,
            reserved: p.gpu_reserved_seconds,
            budget: p.gpu_budget_seconds,
        });
    }
    m.scene_types = all(pool, D::query(&SCENE_TYPE_METRICS), |r| {
        Ok(SceneTypeMetrics {
            project: r.value(0)?,
            scene_type: r.value(1)?,
            retries: r.value::<i64>(2)? as u64,
            rescues: r.value::<i64>(3)? as u64,
        })
    })
    .await?;
    m.queue_depth = pending_work(pool).await?;
    Ok(m)
}

static RECENT_GPU_SECONDS: Stmt = Stmt::new(&[
    "SELECT gpu_seconds FROM retry_attempts WHERE scene_type_id = $1 AND overall_status IN ('passed','failed','qa_error')
     ORDER BY id DESC LIMIT $2",
]);

pub(crate) async fn recent_gpu_seconds<D: Dialect>(
    pool: &Pool<D>,
    scene_type_id: i64,
    limit: u32,
) -> Result<Vec<f64>> {
    let q = D::query(&RECENT_GPU_SECONDS)
        .arg(scene_type_id)
        .arg(limit as i64);
    all(pool, q, |r| r.value(0)).await
}

static TOKEN_BY_HASH: Stmt = Stmt::new(&["SELECT * FROM api_tokens WHERE token_hash = $1"]);
static LIST_TOKENS: Stmt = Stmt::new(&["SELECT * FROM api_tokens ORDER BY id"]);
static SESSION_BY_HASH: Stmt = Stmt::new(&[
    "SELECT t.*, s.id AS session_id, s.created_at AS session_created_at, s.expires_at AS session_expires_at
     FROM sessions s JOIN api_tokens t ON t.id = s.token_id
     WHERE s.session_hash = $1 AND s.expires_at > $2",
]);

pub(crate) async fn token_by_hash<D: Dialect>(
    pool: &Pool<D>,
    token_hash: &str,
) -> Result<Option<ApiToken>> {
    let r = D::optional(D::query(&TOKEN_BY_HASH).arg(token_hash), pool).await?;
    r.as_ref().map(rows::token).transpose()
}

pub(crate) async fn list_tokens<D: Dialect>(pool: &Pool<D>) -> Result<Vec<ApiToken>> {
    all(pool, D::query(&LIST_TOKENS), rows::token).await
}

pub(crate) async fn session_by_hash<D: Dialect>(
    pool: &Pool<D>,
    session_hash: &str,
) -> Result<Option<(Session, ApiToken)>> {
    let q = D::query(&SESSION_BY_HASH).arg(session_hash).arg(Ts(now()));
    match D::optional(q, pool).await? {
        Some(r) => Ok(Some((rows::session(&r)?, rows::token(&r)?))),
        None => Ok(None),
    }
}

static LIST_COMFY_SERVERS: Stmt = Stmt::new(&["SELECT * FROM comfy_servers ORDER BY name"]);
static INSTALLATION_ID: Stmt = Stmt::new(&["SELECT id FROM installation"]);
static WAITING_FOR_SERVER: Stmt = Stmt::new(&[
    "SELECT COUNT(*), MIN(waiting_since) FROM retry_attempts WHERE waiting_since IS NOT NULL AND overall_status IN ('queued', 'generating')",
]);

pub(crate) async fn list_comfy_servers<D: Dialect>(pool: &Pool<D>) -> Result<Vec<ComfyServer>> {
    all(pool, D::query(&LIST_COMFY_SERVERS), rows::comfy_server).await
}

pub(crate) async fn installation_id<D: Dialect>(pool: &Pool<D>) -> Result<String> {
    D::one(D::query(&INSTALLATION_ID), pool).await?.value(0)
}

pub(crate) async fn waiting_for_server<D: Dialect>(pool: &Pool<D>) -> Result<ServerWait> {
    let r = D::one(D::query(&WAITING_FOR_SERVER), pool).await?;
    Ok(ServerWait {
        attempts: r.value::<i64>(0)?.max(0) as u64,
        since: r.ots(1)?,
    })
}

// The operators' read models.

const ENTRY_COLUMNS: &str =
    "a.id, a.segment_id, s.label, a.project_id, a.scene_type_id, st.name AS scene_type_name,
    a.attempt_number, a.overall_status, a.priority, a.worker, a.backend,
    {server} AS server, a.progress, a.reserved_gpu_seconds,
    a.not_before, a.started_at, a.created_at";

static QUEUE_RUNNING: Stmt = Stmt::new(&[
    "SELECT ",
    ENTRY_COLUMNS,
    " FROM retry_attempts a
     JOIN segments s ON s.id = a.segment_id JOIN scene_types st ON st.id = a.scene_type_id
     WHERE a.overall_status IN ('generating','scoring') AND ($1::int8 IS NULL OR a.project_id = $1)
     ORDER BY a.started_at, a.id LIMIT $2",
]);
// The place in claim order (priority DESC, id) counts every queued attempt ahead, whatever its
// project: two index ranges, so it stays cheap however long the queue is.
static QUEUE_QUEUED: Stmt = Stmt::new(&[
    "SELECT ",
    ENTRY_COLUMNS,
    ",
        (SELECT COUNT(*) FROM retry_attempts b WHERE b.overall_status = 'queued' AND b.priority > a.priority)
      + (SELECT COUNT(*) FROM retry_attempts b WHERE b.overall_status = 'queued' AND b.priority = a.priority AND b.id < a.id)
      + 1 AS position
     FROM retry_attempts a
     JOIN segments s ON s.id = a.segment_id JOIN scene_types st ON st.id = a.scene_type_id
     WHERE a.overall_status = 'queued' AND ($1::int8 IS NULL OR a.project_id = $1)
     ORDER BY a.priority DESC, a.id LIMIT $2 OFFSET $3",
]);
static QUEUE_COUNTS: Stmt = Stmt::new(&[
    "SELECT
        (SELECT COUNT(*) FROM retry_attempts WHERE overall_status = 'queued' AND ($1::int8 IS NULL OR project_id = $1)) AS queued,
        (SELECT COUNT(*) FROM retry_attempts WHERE overall_status IN ('generating','scoring') AND ($1::int8 IS NULL OR project_id = $1)) AS running,
        (SELECT COUNT(*) FROM retry_attempts WHERE overall_status IN ('generating','scoring')) AS running_everywhere",
]);
static RECENT_WALLS: Stmt = Stmt::new(&[
    "SELECT started_at, finished_at FROM retry_attempts
     WHERE overall_status IN ('passed','failed','qa_error') AND started_at IS NOT NULL AND finished_at IS NOT NULL
     ORDER BY id DESC LIMIT $1",
]);

fn queue_entry<R: RowExt>(r: &R, position: Option<u64>) -> Result<QueueEntry> {
    let status: String = r.value("overall_status")?;
    Ok(QueueEntry {
        attempt_id: r.value("id")?,
        segment_id: r.value("segment_id")?,
        label: r.value("label")?,
        project_id: r.value("project_id")?,
        scene_type_id: r.value("scene_type_id")?,
        scene_type_name: r.value("scene_type_name")?,
        attempt_number: r.uint("attempt_number")?,
        status: parse_enum::<AttemptStatus>(&status)?,
        priority: r.uint("priority")? as u8,
        worker: r.value("worker")?,
        backend: r.value("backend")?,
        // A server recorded as anything but a name is not shown.
        server: r.value::<Option<String>>("server").ok().flatten(),
        progress: r.value("progress")?,
        reserved_gpu_seconds: r.value("reserved_gpu_seconds")?,
        not_before: r.ots("not_before")?,
        started_at: r.ots("started_at")?,
        created_at: r.ts("created_at")?,
        position,
    })
}

pub(crate) async fn queue_snapshot<D: Dialect>(
    pool: &Pool<D>,
    f: &QueueFilter,
) -> Result<QueueSnapshot> {
    let q = D::query(&QUEUE_RUNNING)
        .arg(f.project_id)
        .arg(MAX_RUNNING_LISTED as i64);
    let running = all(pool, q, |r| queue_entry(r, None)).await?;
    let q = D::query(&QUEUE_QUEUED)
        .arg(f.project_id)
        .arg(f.limit as i64)
        .arg(f.offset.min(i64::MAX as u64) as i64);
    let queued = all(pool, q, |r| {
        queue_entry(r, Some(r.value::<i64>("position")? as u64))
    })
    .await?;
    let counts = D::one(D::query(&QUEUE_COUNTS).arg(f.project_id), pool).await?;
    let q = D::query(&RECENT_WALLS).arg(WALL_TIME_WINDOW as i64);
    let mut recent_wall_seconds = Vec::new();
    for r in D::all(q, pool).await? {
        if let (Some(s), Some(e)) = (r.ots("started_at")?, r.ots("finished_at")?) {
            recent_wall_seconds.push(((e - s).num_milliseconds() as f64 / 1000.0).max(0.0));
        }
    }
    Ok(QueueSnapshot {
        running,
        running_total: counts.value::<i64>("running")? as u64,
        queued,
        queued_total: counts.value::<i64>("queued")? as u64,
        running_everywhere: counts.value::<i64>("running_everywhere")? as u64,
        recent_wall_seconds,
    })
}

static LEDGER: Stmt = Stmt::new(&[
    "SELECT g.id, g.attempt_id, a.segment_id, a.attempt_number, a.scene_type_id, st.name AS scene_type_name,
            g.reserved_seconds, g.spent_seconds, g.note, g.created_at
     FROM gpu_ledger g LEFT JOIN retry_attempts a ON a.id = g.attempt_id
     LEFT JOIN scene_types st ON st.id = a.scene_type_id
     WHERE g.project_id = $1 AND ($2::int8 IS NULL OR g.id < $2) ORDER BY g.id DESC LIMIT $3",
]);

pub(crate) async fn list_ledger<D: Dialect>(
    pool: &Pool<D>,
    f: &LedgerFilter,
) -> Result<Vec<LedgerEntry>> {
    let q = D::query(&LEDGER)
        .arg(f.project_id)
        .arg(f.before_id)
        .arg(f.limit as i64);
    all(pool, q, |r| {
        Ok(LedgerEntry {
            id: r.value("id")?,
            attempt_id: r.value("attempt_id")?,
            segment_id: r.value("segment_id")?,
            attempt_number: r.ouint("attempt_number")?,
            scene_type_id: r.value("scene_type_id")?,
            scene_type_name: r.value("scene_type_name")?,
            reserved_seconds: r.value("reserved_seconds")?,
            spent_seconds: r.value("spent_seconds")?,
            note: r.value("note")?,
            created_at: r.ts("created_at")?,
        })
    })
    .await
}

static LEDGER_SPAN: Stmt = Stmt::new(&[
    "SELECT MIN(created_at) AS first, MAX(created_at) AS last FROM gpu_ledger WHERE project_id = $1",
]);

pub(crate) async fn spend_series<D: Dialect>(
    pool: &Pool<D>,
    project_id: i64,
    buckets: u32,
) -> Result<SpendSeries> {
    let span = D::one(D::query(&LEDGER_SPAN).arg(project_id), pool).await?;
    let (Some(start), Some(end)) = (span.ots("first")?, span.ots("last")?) else {
        return Ok(SpendSeries::default());
    };
    let width = SpendSeries::width((end - start).num_milliseconds() as f64 / 1000.0, buckets);
    let q = sqlx::query(D::SPEND_BUCKETS)
        .arg(project_id)
        .arg(Ts(start))
        .arg(width)
        .arg(buckets as i64);
    let points = all(pool, q, |r| {
        Ok(SpendPoint {
            bucket: r.value::<i64>("bucket")? as u32,
            scene_type_id: r.value("scene_type_id")?,
            spent_seconds: r.value("spent")?,
        })
    })
    .await?;
    Ok(SpendSeries {
        start: Some(start),
        end: Some(end),
        bucket_seconds: width,
        points,
    })
}
