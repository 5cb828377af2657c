//! The write half of [`crate::Store`] beside the hot path, written once for both databases over a
//! [`Dialect`]: projects (the stale-write check, the budget), deletions and the work they would
//! take with them, submission, leases and reservation growth, progress and provenance, the wait
//! for a server, settling pending deltas, rescuing expired leases, a person's actions on a
//! segment. The installation's own records (tokens, sessions, generation servers) are
//! `installation.rs`'s, written the same way.
//!
//! Each backend's `impl Store` only chooses where these run: a pool, or its own transaction
//! ([`WriteTx`]; PostgreSQL runs one again when it is aborted as a deadlock victim). What
//! differs stays in the dialect: SQL spelling, how values bind, NUL-free text
//! ([`Dialect::text`]), and the locks only PostgreSQL takes — `{for_update}` and the other
//! locking fragments, [`WriteTx::lock_budget`], [`WriteTx::lock_for_close`]. Decisions are
//! [`crate::ops`]'s; errors map through [`crate::errors::db_err`] the same way on both.

use crate::dialect::{Arg, Dialect, Ids, Stmt, Ts, WriteTx};
use crate::errors::db_err;
use crate::model::*;
use crate::ops::{self, first_attempt, first_seed, NewEvent};
use crate::rows::{self, RowExt};
use crate::unit::Unit;
use crate::{Result, StoreError};
use retake_core::{AttemptStatus, SegmentStatus};
use sqlx::Pool;
use std::collections::hash_map::{Entry, HashMap};
use std::time::Duration;

// Projects.

static INSERT_PROJECT: Stmt = Stmt::new(&[
    "INSERT INTO projects (name, gpu_budget_seconds, default_gpu_estimate_seconds, default_retry_policy, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $5) RETURNING *",
]);

pub(crate) async fn create_project<D: Dialect>(pool: &Pool<D>, p: NewProject) -> Result<Project> {
    let name = D::text(&p.name);
    let q = D::query(&INSERT_PROJECT)
        .arg(name.as_ref())
        .arg(p.gpu_budget_seconds)
        .arg(p.default_gpu_estimate_seconds)
        .arg(D::json(&p.default_retry_policy))
        .arg(Ts(now()));
    let r = D::one(q, pool).await.map_err(|e| {
        db_err(e, "name", || {
            format!("a project named `{}` already exists", p.name)
        })
    })?;
    rows::project(&r)
}

static PROJECT_FOR_UPDATE: Stmt =
    Stmt::new(&["SELECT * FROM projects WHERE id = $1 {for_no_key_update}"]);
static UPDATE_PROJECT: Stmt = Stmt::new(&[
    "UPDATE projects SET name = $1, gpu_budget_seconds = $2, default_gpu_estimate_seconds = $3, default_retry_policy = $4,
     updated_at = $5 WHERE id = $6 RETURNING *",
]);

/// Applies `patch`; a stale `if_updated_at` is a Conflict.
pub(crate) async fn update_project<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    id: i64,
    patch: ProjectPatch,
    if_updated_at: Option<Timestamp>,
) -> Result<Project> {
    if patch.gpu_budget_seconds.is_some() {
        t.lock_budget(id).await?;
    }
    let cur = D::optional_on(D::query(&PROJECT_FOR_UPDATE).arg(id), t.conn()).await?;
    let cur = cur
        .as_ref()
        .map(rows::project)
        .transpose()?
        .ok_or_else(|| StoreError::not_found("project", id))?;
    if let Some(expected) = if_updated_at {
        if expected != cur.updated_at {
            return Err(StoreError::conflict(
                Some("updated_at"),
                format!("project {id} was changed by someone else at {}; reload and apply your change again", cur.updated_at.to_rfc3339()),
            ));
        }
    }
    let name = patch.name.unwrap_or(cur.name);
    let stored_name = D::text(&name);
    let q = D::query(&UPDATE_PROJECT)
        .arg(stored_name.as_ref())
        .arg(patch.gpu_budget_seconds.unwrap_or(cur.gpu_budget_seconds))
        .arg(
            patch
                .default_gpu_estimate_seconds
                .unwrap_or(cur.default_gpu_estimate_seconds),
        )
        .arg(D::json(
            &patch
                .default_retry_policy
                .unwrap_or(cur.default_retry_policy),
        ))
        // Strictly later than the previous write, so a precondition taken before it always
        // fails.
        .arg(Ts(
            now().max(cur.updated_at + chrono::Duration::microseconds(1))
        ))
        .arg(id);
    let r = D::one_on(q, t.conn()).await.map_err(|e| {
        db_err(e, "name", || {
            format!("a project named `{name}` already exists")
        })
    })?;
    rows::project(&r)
}

static DELETE_PROJECT_DELTAS: Stmt =
    Stmt::new(&["DELETE FROM project_deltas WHERE project_id = $1"]);
static DELETE_PROJECT: Stmt = Stmt::new(&["DELETE FROM projects WHERE id = $1 RETURNING id"]);

/// Deletes a project with everything in it; refused while work is in flight unless `force`.
/// Returns the in-flight attempts it took with it.
pub(crate) async fn delete_project<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    id: i64,
    force: bool,
) -> Result<Vec<Attempt>> {
    let in_flight = in_flight(t, Owner::Project, id, force).await?;
    D::all_on(D::query(&DELETE_PROJECT_DELTAS).arg(id), t.conn()).await?;
    D::optional_on(D::query(&DELETE_PROJECT).arg(id), t.conn())
        .await?
        .ok_or_else(|| StoreError::not_found("project", id))?;
    Ok(in_flight)
}

static DELETE_SCENE_TYPE: Stmt =
    Stmt::new(&["DELETE FROM scene_types WHERE id = $1 RETURNING project_id"]);
static LOCK_PROJECT: Stmt =
    Stmt::new(&["SELECT id FROM projects WHERE id = $1 {for_no_key_update}"]);
static RECOUNT_PROJECT: [Stmt; 3] = [
    Stmt::new(&[ops::RECOUNT_PROJECT[0]]),
    Stmt::new(&[ops::RECOUNT_PROJECT[1]]),
    Stmt::new(&[ops::RECOUNT_PROJECT[2]]),
];

/// Deletes a scene type with its segments; refused while work is in flight unless `force`.
pub(crate) async fn delete_scene_type<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    id: i64,
    force: bool,
) -> Result<Vec<Attempt>> {
    let in_flight = in_flight(t, Owner::SceneType, id, force).await?;
    let r = D::optional_on(D::query(&DELETE_SCENE_TYPE).arg(id), t.conn()).await?;
    let Some(r) = r else {
        return Err(StoreError::not_found("scene type", id));
    };
    let project: i64 = r.value(0)?;
    // Its segments went with it: count the project's statistics again (the project row lock
    // keeps a fold from running in between).
    D::all_on(D::query(&LOCK_PROJECT).arg(project), t.conn()).await?;
    for s in &RECOUNT_PROJECT {
        D::all_on(D::query(s).arg(project), t.conn()).await?;
    }
    Ok(in_flight)
}

/// What a delete takes with it.
#[derive(Clone, Copy)]
enum Owner {
    Project,
    SceneType,
}

const IN_FLIGHT: &str =
    " AND overall_status IN ('queued', 'generating', 'scoring') ORDER BY id {for_update}";
static PROJECT_IN_FLIGHT: Stmt = Stmt::new(&[
    "SELECT * FROM retry_attempts WHERE project_id = $1",
    IN_FLIGHT,
]);
// A scene type's attempts are found through its segments (the segments' scene type index, then
// the attempts' segment index): the attempts table keeps no index by scene type for all
// attempts, which every write would have to maintain.
static SCENE_TYPE_IN_FLIGHT: Stmt = Stmt::new(&[
    "SELECT * FROM retry_attempts WHERE segment_id IN (SELECT id FROM segments WHERE scene_type_id = $1)",
    IN_FLIGHT,
]);
const IN_PROGRESS: &str = " = $1 AND status IN ('queued', 'generating', 'retrying')";
static PROJECT_IN_PROGRESS: Stmt = Stmt::new(&[
    "SELECT COUNT(*) FROM segments WHERE project_id",
    IN_PROGRESS,
]);
static SCENE_TYPE_IN_PROGRESS: Stmt = Stmt::new(&[
    "SELECT COUNT(*) FROM segments WHERE scene_type_id",
    IN_PROGRESS,
]);

/// The in-flight attempts a delete would take from under the workers (locked); refused unless
/// `force` while any, or any segment still in progress, is there.
async fn in_flight<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    owner: Owner,
    id: i64,
    force: bool,
) -> Result<Vec<Attempt>> {
    let (attempts, in_progress, what) = match owner {
        Owner::Project => (&PROJECT_IN_FLIGHT, &PROJECT_IN_PROGRESS, "project"),
        Owner::SceneType => (&SCENE_TYPE_IN_FLIGHT, &SCENE_TYPE_IN_PROGRESS, "scene type"),
    };
    let attempts: Vec<Attempt> = D::all_on(D::query(attempts).arg(id), t.conn())
        .await?
        .iter()
        .map(rows::attempt)
        .collect::<Result<_>>()?;
    let segments: i64 = D::one_on(D::query(in_progress).arg(id), t.conn())
        .await?
        .value(0)?;
    if !force && (segments > 0 || !attempts.is_empty()) {
        return Err(in_flight_refusal(
            &format!("{what} {id}"),
            segments,
            &attempts,
        ));
    }
    Ok(attempts)
}

/// The 409 a delete without `force` answers while work is in flight, with the counts.
fn in_flight_refusal(what: &str, segments: i64, attempts: &[Attempt]) -> StoreError {
    let count = |s: AttemptStatus| attempts.iter().filter(|a| a.overall_status == s).count();
    StoreError::conflict(
        Some("force"),
        format!(
            "{what} has work in flight: {segments} segment{} in progress, {} attempt{} \
             ({} generating, {} scoring, {} queued); cancel them first, or delete with \
             ?force=true to cancel them and delete",
            if segments == 1 { "" } else { "s" },
            attempts.len(),
            if attempts.len() == 1 { "" } else { "s" },
            count(AttemptStatus::Generating),
            count(AttemptStatus::Scoring),
            count(AttemptStatus::Queued),
        ),
    )
}

// Submission.

static INSERT_SEGMENT: Stmt = Stmt::new(&[
    "INSERT INTO segments (project_id, scene_type_id, label, parameters, rng_seed, status, attempt_count, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, 'queued', 1, $6, $6) RETURNING *",
]);

/// New segments, each with attempt 1 queued: its parameters are the scene type's defaults with
/// the segment's own on top, its seed the submitted one or the segment's first draw.
pub(crate) async fn submit_segments<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    segs: Vec<NewSegment>,
) -> Result<Vec<Segment>> {
    let mut scenes: HashMap<i64, SceneType> = HashMap::new();
    let mut counters: Vec<i64> = Vec::with_capacity(segs.len());
    let mut out = Vec::with_capacity(segs.len());
    for s in segs {
        let scene = match scenes.entry(s.scene_type_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => match t.scene_type(s.scene_type_id).await {
                Ok(st) => e.insert(st),
                Err(StoreError::NotFound { .. }) => {
                    return Err(StoreError::invalid(
                        Some("scene_type_id"),
                        format!("scene type {} does not exist", s.scene_type_id),
                    ))
                }
                Err(e) => return Err(e),
            },
        };
        let mut params = scene.default_parameters.clone();
        for (k, v) in s.parameters.0 {
            params.set(&k, v);
        }
        let seed = first_seed(&params, s.rng_seed, &scene.domains())?;
        params.set("seed", serde_json::Value::from(seed));
        let at = now();
        let label = s.label.as_deref().map(D::text);
        let q = D::query(&INSERT_SEGMENT)
            .arg(scene.project_id)
            .arg(scene.id)
            .arg(label.as_deref())
            .arg(D::json(&params))
            .arg(s.rng_seed as i64)
            .arg(Ts(at));
        let r = D::one_on(q, t.conn()).await.map_err(|e| {
            db_err(e, "scene_type_id", || {
                format!("scene type {} cannot take segments", s.scene_type_id)
            })
        })?;
        let seg = rows::segment(&r)?;
        let a = first_attempt(&seg, seed, at);
        let attempt_id = t
            .insert_attempt(&a, seg.project_id, seg.scene_type_id)
            .await?;
        t.event(NewEvent {
            project_id: Some(seg.project_id),
            segment_id: Some(seg.id),
            attempt_id: Some(attempt_id),
            kind: "segment_submitted",
            message: format!(
                "segment {} submitted; attempt 1 queued with seed {seed}",
                seg.id
            ),
            data: serde_json::json!({"scene_type_id": seg.scene_type_id, "label": seg.label}),
        })
        .await?;
        counters.push(seg.project_id);
        out.push(seg);
    }
    t.add_deltas(&ops::submission_deltas(&counters)).await?;
    if !out.is_empty() {
        t.notify_work().await?;
    }
    Ok(out)
}

// Leases, reservations, progress.

/// Renews `worker`'s lease on those of `attempt_ids` it still runs; returns them, ascending.
pub(crate) async fn heartbeat<D: Dialect>(
    pool: &Pool<D>,
    worker: &str,
    attempt_ids: &[i64],
    lease: Duration,
) -> Result<Vec<i64>> {
    if attempt_ids.is_empty() {
        return Ok(vec![]);
    }
    let q = sqlx::query(D::HEARTBEAT)
        .arg(Ts(ops::lease_until(lease)))
        .arg(worker)
        .arg(Ids(attempt_ids));
    let mut ids = D::all(q, pool)
        .await?
        .iter()
        .map(|r| r.value::<i64>(0))
        .collect::<Result<Vec<_>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

// The project's budget lock is taken shared in the statement that finds the project, before
// `try_reserve` reads the budget (see `postgres::tx::BUDGET_LOCK`).
static RESERVING_ATTEMPT: Stmt =
    Stmt::new(&["SELECT project_id{budget_lock_shared} FROM retry_attempts
     WHERE id = $1 AND worker = $2 AND overall_status = 'generating' {for_update}"]);
static GROW_RESERVATION: Stmt = Stmt::new(&[
    "UPDATE retry_attempts SET reserved_gpu_seconds = reserved_gpu_seconds + $1 WHERE id = $2",
]);

/// Reserves `extra` more seconds for a running generation, if the budget covers them.
pub(crate) async fn extend_reservation<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    attempt_id: i64,
    worker: &str,
    extra: f64,
) -> Result<bool> {
    let q = D::query(&RESERVING_ATTEMPT).arg(attempt_id).arg(worker);
    let Some(r) = D::optional_on(q, t.conn()).await? else {
        return Ok(false);
    };
    let project_id: i64 = r.value(0)?;
    if !t.try_reserve(project_id, extra).await? {
        return Ok(false);
    }
    let q = D::query(&GROW_RESERVATION).arg(extra).arg(attempt_id);
    D::all_on(q, t.conn()).await?;
    Ok(true)
}

static SET_PROGRESS: Stmt = Stmt::new(&[
    "UPDATE retry_attempts SET progress = $1 WHERE id = $2 AND worker = $3
     RETURNING segment_id, project_id, attempt_number",
]);

/// A running generation's progress (0 to 1), with its event.
pub(crate) async fn set_progress<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    attempt_id: i64,
    worker: &str,
    progress: f64,
) -> Result<()> {
    let q = D::query(&SET_PROGRESS)
        .arg(progress.clamp(0.0, 1.0))
        .arg(attempt_id)
        .arg(worker);
    let Some(r) = D::optional_on(q, t.conn()).await? else {
        return Ok(());
    };
    let n = r.int(2)?;
    t.event(NewEvent {
        project_id: Some(r.value(1)?),
        segment_id: Some(r.value(0)?),
        attempt_id: Some(attempt_id),
        kind: "progress",
        message: format!("attempt {n}: {:.0}%", progress * 100.0),
        data: serde_json::json!({"progress": progress, "attempt_number": n}),
    })
    .await
}

// A server accepted the work: its wait ends, and so does the reason it carried.
static SET_PROVENANCE: Stmt = Stmt::new(&["UPDATE retry_attempts SET provenance = $1,
     failure_reason = CASE WHEN $4 AND waiting_since IS NOT NULL THEN NULL ELSE failure_reason END,
     waiting_since = CASE WHEN $4 THEN NULL ELSE waiting_since END
     WHERE id = $2 AND worker = $3"]);

pub(crate) async fn set_provenance<D: Dialect>(
    pool: &Pool<D>,
    attempt_id: i64,
    worker: &str,
    provenance: serde_json::Value,
) -> Result<()> {
    let q = D::query(&SET_PROVENANCE)
        .arg(D::json(&provenance))
        .arg(attempt_id)
        .arg(worker)
        .arg(provenance.get("server").is_some());
    D::all(q, pool).await?;
    Ok(())
}

// The wait for a generation server.

static ANY_WAITING: Stmt = Stmt::new(&[
    "SELECT EXISTS (SELECT 1 FROM retry_attempts WHERE waiting_since IS NOT NULL AND overall_status IN ('queued', 'generating'))",
]);
static END_WAITS: Stmt = Stmt::new(&[
    "UPDATE retry_attempts SET waiting_since = NULL, failure_reason = NULL, updated_at = $1
     WHERE waiting_since IS NOT NULL AND overall_status IN ('queued', 'generating')
     RETURNING id, segment_id, project_id, attempt_number",
]);

/// Whether any attempt waits for a server: nearly always none, so the backends look (the
/// partial index) before they write.
pub(crate) async fn any_waiting<D: Dialect>(pool: &Pool<D>) -> Result<bool> {
    D::one(D::query(&ANY_WAITING), pool).await?.value(0)
}

/// Ends every wait for a server, each with its event; returns how many ended.
pub(crate) async fn end_server_wait<D: Dialect, T: WriteTx<D = D>>(t: &mut T) -> Result<u64> {
    let rs = D::all_on(D::query(&END_WAITS).arg(Ts(now())), t.conn()).await?;
    let events = rs
        .iter()
        .map(|r| {
            Ok(ops::wait_over(
                r.value(2)?,
                r.value(1)?,
                r.value(0)?,
                r.int(3)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    t.events(events).await?;
    Ok(rs.len() as u64)
}

// Settling and rescue.

static PENDING_DELTAS: Stmt = Stmt::new(&[
    "SELECT project_id, COUNT(*) FROM project_deltas GROUP BY project_id ORDER BY project_id",
]);

/// Projects with pending deltas, and how many each has.
pub(crate) async fn pending_deltas<D: Dialect>(pool: &Pool<D>) -> Result<Vec<(i64, i64)>> {
    D::all(D::query(&PENDING_DELTAS), pool)
        .await?
        .iter()
        .map(|r| Ok((r.value(0)?, r.value(1)?)))
        .collect()
}

/// Folds a project's pending deltas into its row; the deltas of a deleted project go with it.
/// Returns whether the project was there.
pub(crate) async fn settle<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    project_id: i64,
) -> Result<bool> {
    match t.reserve(project_id, &[]).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound { .. }) => {
            let q = D::query(&DELETE_PROJECT_DELTAS).arg(project_id);
            D::all_on(q, t.conn()).await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

static EXPIRED_LEASES: Stmt = Stmt::new(&[
    "SELECT id FROM retry_attempts WHERE overall_status IN ('generating','scoring')
     AND lease_expires_at IS NOT NULL AND lease_expires_at < $1 ORDER BY id {for_update_skip_locked}",
]);

/// Returns expired leases to the queue; the attempts rescued.
pub(crate) async fn rescue_expired<D: Dialect, T: WriteTx<D = D>>(t: &mut T) -> Result<Vec<i64>> {
    let ids = D::all_on(D::query(&EXPIRED_LEASES).arg(Ts(now())), t.conn())
        .await?
        .iter()
        .map(|r| r.value::<i64>(0))
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        return Ok(ids);
    }
    let mut u = Unit::new(t);
    u.preload(&ids).await?;
    let mut rescued = vec![];
    for id in ids {
        if ops::rescue(&mut u, id).await? {
            rescued.push(id);
        }
    }
    u.flush().await?;
    Ok(rescued)
}

// A person's actions on a segment, each over a unit of work.

pub(crate) async fn select_attempt<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    segment_id: i64,
    n: u32,
    actor: &str,
    human_override: bool,
) -> Result<Segment> {
    let mut u = Unit::new(t);
    let s = ops::select_attempt(&mut u, segment_id, n, actor, human_override).await?;
    u.flush().await?;
    Ok(s)
}

/// Cancels the segment's in-flight attempts and ends it as `to` (rejected or cancelled).
pub(crate) async fn close_segment<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    segment_id: i64,
    actor: &str,
    to: SegmentStatus,
    note: Option<String>,
) -> Result<(Segment, Vec<Attempt>)> {
    t.lock_for_close(segment_id).await?;
    let mut u = Unit::new(t);
    let out = ops::close_segment(&mut u, segment_id, actor, to, note).await?;
    u.flush().await?;
    Ok(out)
}

pub(crate) async fn rerun<D: Dialect, T: WriteTx<D = D>>(
    t: &mut T,
    segment_id: i64,
    actor: &str,
    o: RerunOverrides,
) -> Result<(Segment, Attempt)> {
    let mut u = Unit::new(t);
    let out = ops::rerun(&mut u, segment_id, actor, o).await?;
    u.flush().await?;
    Ok(out)
}
