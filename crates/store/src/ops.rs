//! The store's decisions, written once for both backends over [`TxOps`], the handful of
//! primitives a backend provides inside one transaction. Every function here runs inside the
//! caller's transaction: the attempt change, the decision it causes, the budget movement and the
//! event that explains it commit together or not at all.

use crate::model::*;
use crate::unit::Unit;
use crate::{Result, StoreError};
use async_trait::async_trait;
use retake_core::qa::evaluate;
use retake_core::strategy::SceneStats;
use retake_core::{
    decide, estimate_gpu_seconds, plan_rerun, AttemptStatus, Decision, DecisionInput,
    EffectivePolicy, QaVerdict, SegmentStatus, Verdict,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Recent GPU times a reservation estimate looks at.
pub const ESTIMATE_WINDOW: u32 = 50;

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub project_id: Option<i64>,
    pub segment_id: Option<i64>,
    pub attempt_id: Option<i64>,
    pub kind: &'static str,
    pub message: String,
    pub data: Value,
}

/// One counter of the stopping rule's evidence (`scene_rescue_evidence`).
#[derive(Debug, Clone, PartialEq)]
pub struct RescueRow {
    pub scene_type_id: i64,
    pub check: String,
    /// Segment id / [`RESCUE_BUCKET_SEGMENTS`]: newer segments, larger buckets.
    pub bucket: i64,
    pub key: String,
    pub value: f64,
}

/// Segment ids per evidence bucket.
pub const RESCUE_BUCKET_SEGMENTS: i64 = 64;
/// Evidence rows a decision reads (newest first); older ones weigh next to nothing after decay.
pub const RESCUE_READ_LIMIT: u32 = 6000;

/// A ledger row: one attempt's reservation released and GPU time charged.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub project_id: i64,
    pub attempt_id: i64,
    pub reserved: f64,
    pub spent: f64,
    pub note: String,
    pub at: Timestamp,
}

/// An append-only change to a project's budget (`gpu_spent`, `gpu_reserved`) or statistics
/// counters; folded into the project row by claims and the settler.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectDelta {
    pub project_id: i64,
    pub key: String,
    pub value: f64,
}

impl ProjectDelta {
    pub fn new(project_id: i64, key: String, value: f64) -> Self {
        ProjectDelta {
            project_id,
            key,
            value,
        }
    }
}

pub const GPU_SPENT: &str = "gpu_spent";
/// Projects with their pending budget deltas (`$1`-style placeholders; see [`sqlite_sql`]).
pub const PROJECT_SELECT: &str = "SELECT p.*,
    (SELECT SUM(d.value) FROM project_deltas d WHERE d.project_id = p.id AND d.key = 'gpu_spent') AS pending_spent,
    (SELECT SUM(d.value) FROM project_deltas d WHERE d.project_id = p.id AND d.key = 'gpu_reserved') AS pending_reserved
    FROM projects p";

/// A project's statistics: its folded counters plus the pending deltas.
pub const PROJECT_COUNTERS: &str = "SELECT key, SUM(value) FROM (
    SELECT key, value FROM project_counters WHERE project_id = $1
    UNION ALL SELECT key, value FROM project_deltas WHERE project_id = $1 AND key NOT LIKE 'gpu%') c GROUP BY key";

/// Pending deltas of one project, summed: what a fold moves into the project row and counters.
#[derive(Debug, Default)]
pub struct Fold {
    pub spent: f64,
    pub reserved: f64,
    pub counters: BTreeMap<String, f64>,
}

impl Fold {
    pub fn of(rows: impl IntoIterator<Item = (String, f64)>) -> Fold {
        let mut f = Fold::default();
        for (k, v) in rows {
            match k.as_str() {
                GPU_SPENT => f.spent += v,
                GPU_RESERVED => f.reserved += v,
                _ => *f.counters.entry(k).or_default() += v,
            }
        }
        f.counters.retain(|_, v| *v != 0.0);
        f
    }
}

/// How many of `wanted`, in order, fit in what the budget leaves after `used` (spent +
/// reserved). Without a budget, all of them.
pub fn covered(budget: Option<f64>, used: f64, wanted: &[f64]) -> usize {
    let Some(budget) = budget else {
        return wanted.len();
    };
    let mut total = used;
    let mut n = 0;
    for w in wanted {
        if total + w > budget + 1e-9 {
            break;
        }
        total += w;
        n += 1;
    }
    n
}

/// The statistics a batch of new segments (each with attempt 1 queued) adds to their projects.
pub fn submission_deltas(projects: &[i64]) -> Vec<ProjectDelta> {
    let mut n: BTreeMap<i64, f64> = BTreeMap::new();
    for p in projects {
        *n.entry(*p).or_default() += 1.0;
    }
    n.into_iter()
        .flat_map(|(p, n)| {
            ["segments", "status:queued", "attempts"]
                .into_iter()
                .map(move |k| ProjectDelta::new(p, k.to_owned(), n))
        })
        .collect()
}

/// `/metrics`: per scene type (project name, scene type name, retries scheduled, segments rescued),
/// from two grouped scans; the same text on both dialects.
pub const SCENE_TYPE_METRICS: &str = "SELECT p.name, st.name, COALESCE(r.n, 0), COALESCE(s.n, 0)
     FROM scene_types st JOIN projects p ON p.id = st.project_id
     LEFT JOIN (SELECT scene_type_id, COUNT(*) AS n FROM retry_attempts WHERE attempt_number > 1
                GROUP BY scene_type_id) r ON r.scene_type_id = st.id
     LEFT JOIN (SELECT scene_type_id, COUNT(*) AS n FROM segments WHERE status = 'passed' AND had_failure
                GROUP BY scene_type_id) s ON s.scene_type_id = st.id
     ORDER BY st.id";

/// Rebuild a project's statistics counters from its segments (after segments were deleted in
/// bulk, as deleting a scene type does). Run in one transaction, in this order.
pub const RECOUNT_PROJECT: [&str; 3] = [
    "DELETE FROM project_counters WHERE project_id = $1",
    "DELETE FROM project_deltas WHERE project_id = $1 AND key NOT LIKE 'gpu%'",
    "INSERT INTO project_counters (project_id, key, value)
     SELECT $1, k, COUNT(*) FROM (
         SELECT 'segments' AS k FROM segments WHERE project_id = $1
         UNION ALL SELECT 'status:' || status FROM segments WHERE project_id = $1
         UNION ALL SELECT 'passed_first_time' FROM segments WHERE project_id = $1 AND status = 'passed' AND NOT had_failure
         UNION ALL SELECT 'rescued' FROM segments WHERE project_id = $1 AND status = 'passed' AND had_failure
         UNION ALL SELECT 'escalated_after_failure' FROM segments WHERE project_id = $1 AND status IN ('needs_review','approved','rejected') AND had_failure
         UNION ALL SELECT 'best_beat_first' FROM segments WHERE project_id = $1 AND status IN ('passed','approved') AND selected_attempt_number > first_pass
         UNION ALL SELECT 'reason:' || review_reason FROM segments WHERE project_id = $1 AND review_reason IS NOT NULL
         UNION ALL SELECT 'attempts' FROM retry_attempts WHERE project_id = $1) c
     GROUP BY k",
];

/// The same statement for SQLite, which numbers its placeholders `?1`.
pub fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}
pub const GPU_RESERVED: &str = "gpu_reserved";

/// Additions to one scene type's counters of one check (`scene_check_stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckBump {
    pub scene_type_id: i64,
    pub check: String,
    pub attempts: i64,
    pub failures: i64,
    pub failed_segments: i64,
    pub rescues: i64,
}

/// Additions to one variation arm's counters (`scene_arm_stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmBump {
    pub scene_type_id: i64,
    pub check: String,
    pub arm: String,
    pub tries: i64,
    pub rescues: i64,
}

/// What a backend provides inside one transaction — the dialect. Reads of attempts and segments
/// lock the rows where the database can (PostgreSQL `FOR UPDATE`); SQLite has one writer at a
/// time. The decision logic never calls a backend directly: it runs over [`crate::unit::Unit`],
/// which implements this trait too, reading each row once and writing set-based at the end.
#[async_trait]
pub trait TxOps: Send {
    async fn attempt(&mut self, id: i64) -> Result<Option<Attempt>>;
    async fn segment(&mut self, id: i64) -> Result<Option<Segment>>;
    async fn scene_type(&mut self, id: i64) -> Result<SceneType>;
    /// The project with its pending budget deltas added.
    async fn project(&mut self, id: i64) -> Result<Project>;
    async fn attempts_of(&mut self, segment_id: i64) -> Result<Vec<Attempt>>;
    /// Writes every mutable column of the attempt.
    async fn save_attempt(&mut self, a: &Attempt) -> Result<()>;
    async fn insert_attempt(
        &mut self,
        a: &Attempt,
        project_id: i64,
        scene_type_id: i64,
    ) -> Result<i64>;
    async fn save_segment(&mut self, s: &Segment) -> Result<()>;
    /// `reserved += seconds` only if the budget still covers it.
    async fn try_reserve(&mut self, project_id: i64, seconds: f64) -> Result<bool> {
        Ok(self.reserve(project_id, &[seconds]).await? == 1)
    }
    /// Fold the project's pending deltas into its row, then reserve the longest prefix of
    /// `wanted` the budget covers, with one conditional write. Returns how many were reserved.
    async fn reserve(&mut self, project_id: i64, wanted: &[f64]) -> Result<usize>;
    /// `reserved -= release; spent += spend`, as deltas (no write to the project row).
    async fn settle(&mut self, project_id: i64, release: f64, spend: f64) -> Result<()> {
        self.add_deltas(&[
            ProjectDelta::new(project_id, GPU_RESERVED.into(), -release),
            ProjectDelta::new(project_id, GPU_SPENT.into(), spend),
        ])
        .await
    }
    async fn add_deltas(&mut self, deltas: &[ProjectDelta]) -> Result<()>;
    async fn ledger(
        &mut self,
        project_id: i64,
        attempt_id: i64,
        reserved: f64,
        spent: f64,
        note: &str,
    ) -> Result<()>;
    async fn ledger_rows(&mut self, rows: &[LedgerRow]) -> Result<()> {
        for r in rows {
            self.ledger(r.project_id, r.attempt_id, r.reserved, r.spent, &r.note)
                .await?;
        }
        Ok(())
    }
    async fn event(&mut self, e: NewEvent) -> Result<()>;
    /// Several events, ids in the order given (one statement where the backend can).
    async fn events(&mut self, events: Vec<NewEvent>) -> Result<()> {
        for e in events {
            self.event(e).await?;
        }
        Ok(())
    }
    async fn recent_gpu(&mut self, scene_type_id: i64, limit: u32) -> Result<Vec<f64>>;
    async fn scene_stats(&mut self, scene_type_id: i64, with_scores: bool) -> Result<SceneStats>;
    async fn bump_check_stats(
        &mut self,
        scene_type_id: i64,
        check: &str,
        attempts: i64,
        failures: i64,
        failed_segments: i64,
        rescues: i64,
    ) -> Result<()>;
    async fn bump_arm_stats(
        &mut self,
        scene_type_id: i64,
        check: &str,
        arm: &str,
        tries: i64,
        rescues: i64,
    ) -> Result<()>;
    /// Several counter rows, keys ascending (one statement where the backend can).
    async fn bump_check_stats_many(&mut self, rows: &[CheckBump]) -> Result<()> {
        for r in rows {
            self.bump_check_stats(
                r.scene_type_id,
                &r.check,
                r.attempts,
                r.failures,
                r.failed_segments,
                r.rescues,
            )
            .await?;
        }
        Ok(())
    }
    /// Several arm counter rows, keys ascending (one statement where the backend can).
    async fn bump_arm_stats_many(&mut self, rows: &[ArmBump]) -> Result<()> {
        for r in rows {
            self.bump_arm_stats(r.scene_type_id, &r.check, &r.arm, r.tries, r.rescues)
                .await?;
        }
        Ok(())
    }
    /// The newest rows of a scene type's rescue evidence (newest bucket first, at most `limit`).
    async fn rescue_rows(&mut self, scene_type_id: i64, limit: u32) -> Result<Vec<RescueRow>>;
    /// Add each row's value to its stored row (inserting it when new).
    async fn bump_rescue(&mut self, rows: &[RescueRow]) -> Result<()>;
    /// Tell sleeping workers that attempts were queued (PostgreSQL `NOTIFY`).
    async fn notify_work(&mut self) -> Result<()>;
    /// Lock up to `limit` attempts ready to run at `at` (queued, `not_before` passed) in claim
    /// order (priority, then id), with their project and scene type ids, leaving out `skip`;
    /// and their segments. Where the database locks rows, an attempt or segment another
    /// transaction holds is skipped rather than waited for (an attempt whose segment is held
    /// is left out), so a claim never waits and never deadlocks, even inside a transaction that
    /// already holds rows.
    async fn lock_ready(
        &mut self,
        limit: u32,
        at: Timestamp,
        skip: &[i64],
    ) -> Result<(Vec<(Attempt, i64, i64)>, Vec<Segment>)>;

    // Set-based forms. The defaults go row by row; a backend overrides them with one statement.
    /// Read and lock attempts, ids ascending.
    async fn lock_attempts(&mut self, ids: &[i64]) -> Result<Vec<Attempt>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = self.attempt(*id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }
    /// Read and lock segments, ids ascending.
    async fn lock_segments(&mut self, ids: &[i64]) -> Result<Vec<Segment>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = self.segment(*id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }
    async fn attempts_of_many(&mut self, segment_ids: &[i64]) -> Result<Vec<Attempt>> {
        let mut out = vec![];
        for id in segment_ids {
            out.extend(self.attempts_of(*id).await?);
        }
        Ok(out)
    }
    async fn save_attempts(&mut self, attempts: &[Attempt]) -> Result<()> {
        for a in attempts {
            self.save_attempt(a).await?;
        }
        Ok(())
    }
    async fn save_segments(&mut self, segments: &[Segment]) -> Result<()> {
        for s in segments {
            self.save_segment(s).await?;
        }
        Ok(())
    }
}

fn ev(
    project_id: i64,
    segment_id: i64,
    attempt_id: Option<i64>,
    kind: &'static str,
    message: String,
    data: Value,
) -> NewEvent {
    NewEvent {
        project_id: Some(project_id),
        segment_id: Some(segment_id),
        attempt_id,
        kind,
        message,
        data,
    }
}

fn move_segment(seg: &mut Segment, to: SegmentStatus) -> Result<()> {
    seg.status = seg
        .status
        .transition(to)
        .map_err(|e| StoreError::conflict(Some("status"), e.to_string()))?;
    Ok(())
}

fn move_attempt(a: &mut Attempt, to: AttemptStatus) -> Result<()> {
    a.overall_status = a
        .overall_status
        .transition(to)
        .map_err(|e| StoreError::conflict(Some("overall_status"), e.to_string()))?;
    Ok(())
}

/// The estimate one attempt of this scene type reserves.
pub async fn estimate<T: TxOps + ?Sized>(
    tx: &mut T,
    scene_type_id: i64,
    default: f64,
) -> Result<f64> {
    let recent = tx.recent_gpu(scene_type_id, ESTIMATE_WINDOW).await?;
    Ok(estimate_gpu_seconds(&recent, default))
}

/// The segments of attempts a claim locked, ids ascending, each once (the order segments are
/// locked in).
pub fn segment_ids(ready: &[(Attempt, i64, i64)]) -> Vec<i64> {
    let mut ids: Vec<i64> = ready.iter().map(|r| r.0.segment_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Claim up to `req.limit` ready attempts for `req.worker`: each is marked generating with a
/// lease, then its budget is reserved ([`reserve_claimed`]).
pub async fn claim<T: TxOps + ?Sized>(tx: &mut T, req: &ClaimRequest) -> Result<Vec<Work>> {
    if req.limit == 0 {
        return Ok(vec![]);
    }
    let at = now();
    let (mut ready, _) = tx.lock_ready(req.limit, at, &[]).await?;
    ready.sort_by_key(|r| r.0.id);
    let until = lease_until(req.lease);
    for (a, _, _) in &mut ready {
        move_attempt(a, AttemptStatus::Generating)?;
        a.worker = Some(req.worker.clone());
        a.lease_expires_at = Some(until);
        a.started_at.get_or_insert(at);
        a.updated_at = at;
        tx.save_attempt(a).await?;
    }
    reserve_claimed(tx, ready).await
}

/// After [`claim`] marked `claimed` as generating: reserve each one's budget — one
/// conditional write per project for the whole batch — or cancel it and escalate its segment
/// when the budget cannot cover it.
pub async fn reserve_claimed<T: TxOps + ?Sized>(
    tx: &mut T,
    claimed: Vec<(Attempt, i64, i64)>,
) -> Result<Vec<Work>> {
    let mut out = Vec::with_capacity(claimed.len());
    let mut estimates: HashMap<i64, f64> = HashMap::new();
    let mut by_project: BTreeMap<i64, Vec<(Attempt, i64, f64)>> = BTreeMap::new();
    for (a, project_id, scene_type_id) in claimed {
        let est = match estimates.get(&scene_type_id) {
            Some(e) => *e,
            None => {
                let default = tx.project(project_id).await?.default_gpu_estimate_seconds;
                let e = estimate(tx, scene_type_id, default).await?;
                estimates.insert(scene_type_id, e);
                e
            }
        };
        by_project
            .entry(project_id)
            .or_default()
            .push((a, scene_type_id, est));
    }
    for (project_id, items) in by_project {
        // A rescued attempt whose prompt may still run on its server kept its reservation
        // (`rescue`): it is covered already and reserves nothing more here.
        let (kept, items): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|i| i.0.reserved_gpu_seconds > 0.0);
        let wanted: Vec<f64> = items.iter().map(|i| i.2).collect();
        let covered = tx.reserve(project_id, &wanted).await?;
        let fresh = items.len();
        let kept = kept.into_iter().map(|(a, s, _)| {
            let r = a.reserved_gpu_seconds;
            (a, s, r)
        });
        for (i, (mut a, scene_type_id, est)) in items.into_iter().chain(kept).enumerate() {
            let Some(mut seg) = tx.segment(a.segment_id).await? else {
                continue;
            };
            if i < covered || i >= fresh {
                a.reserved_gpu_seconds = est;
                tx.save_attempt(&a).await?;
                if seg.status == SegmentStatus::Queued {
                    move_segment(&mut seg, SegmentStatus::Generating)?;
                    seg.updated_at = now();
                    tx.save_segment(&seg).await?;
                }
                tx.event(ev(project_id, seg.id, Some(a.id), "attempt_started",
                    format!("attempt {} of segment {} started on {} (reserved {est:.1} GPU-s)", a.attempt_number, seg.id, a.worker.as_deref().unwrap_or("?")),
                    json!({"attempt_number": a.attempt_number, "reserved_gpu_seconds": est, "worker": a.worker}))).await?;
                out.push(Work {
                    attempt: a,
                    project_id,
                    scene_type_id,
                    segment_rng_seed: seg.rng_seed,
                });
                continue;
            }
            let remaining = tx
                .project(project_id)
                .await?
                .remaining_gpu_seconds()
                .unwrap_or(0.0);
            let why = format!(
                "budget refused attempt {}: it needs an estimated {est:.1} GPU-s and {remaining:.1} remain",
                a.attempt_number
            );
            move_attempt(&mut a, AttemptStatus::Cancelled)?;
            a.failure_reason = Some(why.clone());
            a.worker = None;
            a.lease_expires_at = None;
            a.finished_at = Some(now());
            tx.save_attempt(&a).await?;
            tx.event(ev(
                project_id,
                seg.id,
                Some(a.id),
                "budget_refused",
                why.clone(),
                json!({"estimate_gpu_seconds": est, "remaining_gpu_seconds": remaining}),
            ))
            .await?;
            decide_and_apply(tx, seg.id).await?;
            // The queue changed under the claimer: let it look again at once.
            tx.notify_work().await?;
        }
    }
    Ok(out)
}

/// Apply a batch of completions (finished generations, QA verdicts, infrastructure failures)
/// in the caller's transaction: the batch's attempts, their segments and those segments'
/// attempts are read once, each completion runs the same logic as alone, and every change is
/// written set-based at the end. An error in any item fails the whole batch, so that the caller
/// can roll back and apply the items one at a time to isolate it.
///
/// With `claim`, the same transaction then claims work for the worker (the slots these
/// completions free): attempts the batch just queued — a retry it scheduled — can be among it.
pub async fn complete_batch<T: TxOps + ?Sized>(
    tx: &mut T,
    items: &[Completion],
    claim: Option<&ClaimRequest>,
) -> Result<(Vec<Applied>, Vec<Work>)> {
    let mut u = Unit::new(tx);
    let ids: Vec<i64> = items.iter().map(Completion::attempt_id).collect();
    u.preload(&ids).await?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let applied = match item.clone() {
            Completion::Generated(done) => finish_generation(&mut u, done).await?,
            Completion::Verdict {
                attempt_id,
                verdict,
                worker,
            } => deliver_verdict(&mut u, attempt_id, verdict, worker.as_deref()).await?,
            Completion::Infra(f) => record_infra_failure(&mut u, f).await?,
        };
        out.push(applied);
    }
    let work = match claim {
        Some(req) => self::claim(&mut u, req).await?,
        None => vec![],
    };
    u.flush().await?;
    Ok((out, work))
}

/// Generation ended for an attempt `done.worker` owns.
pub async fn finish_generation<T: TxOps + ?Sized>(
    tx: &mut T,
    done: GenerationDone,
) -> Result<Applied> {
    let Some(mut a) = tx.attempt(done.attempt_id).await? else {
        // Its project or scene type was deleted while it ran: nothing is left to record.
        tracing::info!(attempt = done.attempt_id, "a finished attempt no longer exists (its project or scene type was deleted); nothing recorded");
        return Ok(Applied::ignored());
    };
    if a.overall_status != AttemptStatus::Generating
        || a.worker.as_deref() != Some(done.worker.as_str())
    {
        return Ok(Applied::ignored());
    }
    let seg = tx
        .segment(a.segment_id)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", a.segment_id))?;
    let gpu = done.gpu_seconds.max(0.0);
    charge(tx, &mut a, seg.project_id, gpu, "generation finished").await?;
    end_wait(&mut a);
    a.output_video_path = done.output_video_path.clone();
    a.backend = Some(done.backend.clone());
    // Who ran it stays on the attempt after the lease (`worker`) is released.
    if !a.provenance.is_object() {
        a.provenance = json!({});
    }
    a.provenance["worker"] = json!(done.worker);
    a.progress = Some(1.0);
    a.updated_at = now();
    if done.stopped_by_budget {
        move_attempt(&mut a, AttemptStatus::Cancelled)?;
        a.failure_reason = Some(format!(
            "stopped by the budget after {gpu:.1} GPU-s: no budget left to extend its reservation"
        ));
        a.finished_at = Some(now());
        a.worker = None;
        a.lease_expires_at = None;
        tx.save_attempt(&a).await?;
        tx.event(ev(
            seg.project_id,
            seg.id,
            Some(a.id),
            "budget_refused",
            a.failure_reason.clone().unwrap_or_default(),
            json!({"gpu_seconds": gpu}),
        ))
        .await?;
        return decide_and_apply(tx, seg.id).await;
    }
    match done.verdict {
        Some(v) => judge(tx, a, v).await,
        None => {
            move_attempt(&mut a, AttemptStatus::Scoring)?;
            if !done.scored_by_worker {
                a.worker = None;
                a.lease_expires_at = None;
            }
            tx.save_attempt(&a).await?;
            tx.event(ev(
                seg.project_id,
                seg.id,
                Some(a.id),
                "attempt_scoring",
                format!(
                    "attempt {} generated in {gpu:.1} GPU-s; waiting for QA",
                    a.attempt_number
                ),
                json!({"gpu_seconds": gpu, "output_video_path": a.output_video_path}),
            ))
            .await?;
            Ok(Applied {
                applied: true,
                decision: None,
                segment_status: Some(seg.status),
                new_attempts: vec![],
            })
        }
    }
}

/// Release the attempt's reservation, charge what it spent, and write the ledger row.
async fn charge<T: TxOps + ?Sized>(
    tx: &mut T,
    a: &mut Attempt,
    project_id: i64,
    spent: f64,
    note: &str,
) -> Result<()> {
    tx.settle(project_id, a.reserved_gpu_seconds, spent).await?;
    tx.ledger(project_id, a.id, a.reserved_gpu_seconds, spent, note)
        .await?;
    a.gpu_seconds += spent;
    a.reserved_gpu_seconds = 0.0;
    Ok(())
}

/// Scores for an attempt in `scoring`. Applying the same delivery twice is a no-op.
pub async fn deliver_verdict<T: TxOps + ?Sized>(
    tx: &mut T,
    attempt_id: i64,
    verdict: QaVerdict,
    worker: Option<&str>,
) -> Result<Applied> {
    let Some(a) = tx.attempt(attempt_id).await? else {
        if worker.is_some() {
            // The built-in runner scored an attempt whose project or scene type was deleted.
            tracing::info!(attempt = attempt_id, "a scored attempt no longer exists (its project or scene type was deleted); nothing recorded");
            return Ok(Applied::ignored());
        }
        return Err(StoreError::not_found("attempt", attempt_id));
    };
    if a.overall_status != AttemptStatus::Scoring {
        if a.overall_status.is_terminal() {
            return Ok(Applied::ignored());
        }
        return Err(StoreError::conflict(
            Some("status"),
            format!(
                "attempt {attempt_id} is {}; scores are accepted once it is scoring",
                a.overall_status
            ),
        ));
    }
    if let Some(w) = worker {
        if a.worker.as_deref() != Some(w) {
            return Ok(Applied::ignored());
        }
    }
    judge(tx, a, verdict).await
}

/// Judge scores against the scene type's thresholds, record them, update the learning tables and
/// decide what happens to the segment.
async fn judge<T: TxOps + ?Sized>(
    tx: &mut T,
    mut a: Attempt,
    verdict: QaVerdict,
) -> Result<Applied> {
    let seg = tx
        .segment(a.segment_id)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", a.segment_id))?;
    let scene = tx.scene_type(seg.scene_type_id).await?;
    a.qa_source = Some(verdict.source.clone());
    match evaluate(&verdict, &scene.qa_checks) {
        Ok(scores) => {
            let passed = scores.passed();
            move_attempt(
                &mut a,
                if passed {
                    AttemptStatus::Passed
                } else {
                    AttemptStatus::Failed
                },
            )?;
            if !passed {
                let failed: Vec<String> = scores
                    .checks
                    .iter()
                    .filter(|(_, r)| r.verdict == Verdict::Fail)
                    .map(|(k, r)| format!("{k} {:.2} < fail {:.2}", r.score, r.fail))
                    .collect();
                a.failure_reason = Some(format!("QA failed: {}", failed.join(", ")));
            }
            a.quality_scores = Some(scores);
        }
        Err(e) => {
            move_attempt(&mut a, AttemptStatus::QaError)?;
            a.failure_reason = Some(e.to_string());
        }
    }
    a.worker = None;
    a.lease_expires_at = None;
    a.finished_at = Some(now());
    a.updated_at = now();
    tx.save_attempt(&a).await?;
    let mut seg = seg;
    let failed = a.overall_status == AttemptStatus::Failed;
    let passed = a.overall_status == AttemptStatus::Passed;
    if (failed && !seg.had_failure) || (passed && seg.first_pass.is_none()) {
        seg.had_failure |= failed;
        if passed && seg.first_pass.is_none() {
            seg.first_pass = Some(a.attempt_number);
        }
        tx.save_segment(&seg).await?;
    }
    // One read of the segment's attempts serves both the learning tables and the decision.
    let attempts = tx.attempts_of(seg.id).await?;
    learn(tx, &seg, &a, &attempts).await?;
    decide_loaded(tx, seg, &scene, attempts).await
}

/// Update the scene type's failure-pattern and arm tables with one judged attempt.
async fn learn<T: TxOps + ?Sized>(
    tx: &mut T,
    seg: &Segment,
    a: &Attempt,
    attempts: &[Attempt],
) -> Result<()> {
    let Some(scores) = &a.quality_scores else {
        return Ok(());
    };
    let earlier: Vec<&Attempt> = attempts
        .iter()
        .filter(|e| e.attempt_number < a.attempt_number)
        .collect();
    for (check, r) in &scores.checks {
        let failed = r.verdict == Verdict::Fail;
        let first_failure = failed
            && !earlier.iter().any(|e| {
                e.quality_scores.as_ref().is_some_and(|s| {
                    s.checks
                        .get(check)
                        .is_some_and(|c| c.verdict == Verdict::Fail)
                })
            });
        tx.bump_check_stats(
            seg.scene_type_id,
            check,
            1,
            failed as i64,
            first_failure as i64,
            0,
        )
        .await?;
    }
    if let Some(arm) = a.arm {
        // The check this retry was meant to fix: the first failed check of the latest failed
        // attempt before it.
        let trigger = earlier
            .iter()
            .rev()
            .filter(|e| e.overall_status == AttemptStatus::Failed)
            .find_map(|e| {
                e.quality_scores
                    .as_ref()
                    .and_then(|s| s.failed_checks().first().map(|c| c.to_string()))
            });
        if let Some(check) = trigger {
            let rescued = a.overall_status == AttemptStatus::Passed;
            tx.bump_arm_stats(seg.scene_type_id, &check, arm.as_str(), 1, rescued as i64)
                .await?;
        }
    }
    Ok(())
}

/// Run the pure decision for a segment and apply it.
pub async fn decide_and_apply<T: TxOps + ?Sized>(tx: &mut T, segment_id: i64) -> Result<Applied> {
    let seg = tx
        .segment(segment_id)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", segment_id))?;
    if seg.status.is_terminal() {
        return Ok(already_decided(&seg));
    }
    let scene = tx.scene_type(seg.scene_type_id).await?;
    let attempts = tx.attempts_of(seg.id).await?;
    decide_loaded(tx, seg, &scene, attempts).await
}

/// A segment that already ended (cancelled, rejected, passed, in review) takes no new decision.
fn already_decided(seg: &Segment) -> Applied {
    Applied {
        applied: true,
        decision: None,
        segment_status: Some(seg.status),
        new_attempts: vec![],
    }
}

/// The decision for a segment whose row, scene type and attempts the caller already read in this
/// transaction.
async fn decide_loaded<T: TxOps + ?Sized>(
    tx: &mut T,
    mut seg: Segment,
    scene: &SceneType,
    attempts: Vec<Attempt>,
) -> Result<Applied> {
    if seg.status.is_terminal() {
        return Ok(already_decided(&seg));
    }
    let project = tx.project(seg.project_id).await?;
    let policy = EffectivePolicy::resolve(&project.default_retry_policy, &scene.retry_policy)
        .map_err(|e| StoreError::invalid(Some(&e.field), e.message))?
        .policy;
    let views: Vec<_> = attempts.iter().map(Attempt::view).collect();
    let est = estimate(tx, scene.id, project.default_gpu_estimate_seconds).await?;
    let needs_stats = policy.adaptive_variation
        || policy.systematic_detection
        || policy.min_gain_per_gpu_second.is_some();
    let mut stats = if needs_stats {
        tx.scene_stats(scene.id, policy.min_gain_per_gpu_second.is_some())
            .await?
    } else {
        SceneStats::default()
    };
    if policy.min_rescue_probability.is_some() {
        stats.rescue = rescue_history(tx, scene.id).await?;
    }
    let domains = scene.domains();
    let decision = decide(&DecisionInput {
        policy: &policy,
        original: &seg.parameters,
        rng_seed: seg.rng_seed,
        attempts: &views,
        budget: project.budget_view(),
        estimate_gpu_seconds: est,
        domains: &domains,
        stats: &stats,
    });
    let learn_rescue = policy.enabled;
    let applied = apply(
        tx,
        &mut seg,
        &attempts,
        decision,
        Some(est),
        None,
        policy.retry_priority,
    )
    .await?;
    if learn_rescue && seg.had_failure && seg.status.is_terminal() {
        record_rescue(tx, &seg, &attempts).await?;
    }
    Ok(applied)
}

/// A scene type's decayed rescue evidence, per check.
async fn rescue_history<T: TxOps + ?Sized>(
    tx: &mut T,
    scene_type_id: i64,
) -> Result<retake_core::rescue::RescueHistory> {
    use retake_core::rescue::{decayed, RescueCounts, RescueHistory};
    let rows = tx.rescue_rows(scene_type_id, RESCUE_READ_LIMIT).await?;
    let mut buckets: BTreeMap<String, BTreeMap<i64, RescueCounts>> = BTreeMap::new();
    for r in rows {
        buckets
            .entry(r.check)
            .or_default()
            .entry(r.bucket)
            .or_default()
            .add_entry(&r.key, r.value);
    }
    Ok(RescueHistory {
        checks: buckets
            .into_iter()
            .map(|(check, b)| (check, decayed(&b.into_iter().collect::<Vec<_>>())))
            .collect(),
    })
}

/// Teach the stopping rule how a segment whose attempt 1 failed ended.
async fn record_rescue<T: TxOps + ?Sized>(
    tx: &mut T,
    seg: &Segment,
    attempts: &[Attempt],
) -> Result<()> {
    let views: Vec<_> = attempts.iter().map(Attempt::view).collect();
    let passed = seg.status == SegmentStatus::Passed;
    let Some(record) = retake_core::rescue::RescueRecord::from_attempts(&views, passed)
        .map(|r| r.with_stop_evidence(&seg.review_evidence))
    else {
        return Ok(());
    };
    let mut counts = retake_core::rescue::RescueCounts::default();
    counts.add(&record);
    let rows: Vec<RescueRow> = counts
        .entries()
        .into_iter()
        .map(|(key, value)| RescueRow {
            scene_type_id: seg.scene_type_id,
            check: record.check.clone(),
            bucket: seg.id / RESCUE_BUCKET_SEGMENTS,
            key,
            value,
        })
        .collect();
    tx.bump_rescue(&rows).await
}

async fn apply<T: TxOps + ?Sized>(
    tx: &mut T,
    seg: &mut Segment,
    attempts: &[Attempt],
    decision: Decision,
    est: Option<f64>,
    // The person whose re-run this decision carries out, recorded on the attempts it queues.
    requested_by: Option<&str>,
    retry_priority: u8,
) -> Result<Applied> {
    let kind = decision.kind();
    let mut new_attempts = vec![];
    let t = now();
    match decision {
        Decision::Wait { .. } => {
            return Ok(Applied {
                applied: true,
                decision: Some(kind.into()),
                segment_status: Some(seg.status),
                new_attempts,
            });
        }
        Decision::Retry {
            attempts: planned,
            why,
            evidence,
        } => {
            let original_params = seg.parameters.clone();
            for p in &planned {
                let a = Attempt {
                    id: 0,
                    segment_id: seg.id,
                    attempt_number: p.attempt_number,
                    seed: p.seed,
                    parameters: p.parameters.clone(),
                    original_parameters: original_params.clone(),
                    output_video_path: None,
                    quality_scores: None,
                    overall_status: AttemptStatus::Queued,
                    is_selected: false,
                    gpu_seconds: 0.0,
                    reserved_gpu_seconds: 0.0,
                    failure_reason: None,
                    jitter: Some(p.jitter.clone()),
                    arm: Some(p.jitter.arm),
                    why: Some(format!("{why} — variation {}", p.why)),
                    backend: None,
                    worker: None,
                    lease_expires_at: None,
                    not_before: None,
                    waiting_since: None,
                    progress: None,
                    infra_errors: vec![],
                    provenance: json!({}),
                    qa_source: None,
                    selected_by: None,
                    human_override: false,
                    round: p.round,
                    requested_by: requested_by.map(str::to_owned),
                    priority: retry_priority,
                    started_at: None,
                    finished_at: None,
                    created_at: t,
                    updated_at: t,
                };
                let id = tx
                    .insert_attempt(&a, seg.project_id, seg.scene_type_id)
                    .await?;
                new_attempts.push(id);
                seg.attempt_count = seg.attempt_count.max(p.attempt_number);
            }
            move_segment(seg, SegmentStatus::Retrying)?;
            seg.decision_note = Some(why.clone());
            seg.updated_at = t;
            tx.save_segment(seg).await?;
            let data = json!({
                "attempts": planned.iter().map(|p| json!({
                    "attempt_number": p.attempt_number, "seed": p.seed,
                    "changes": p.parameters.diff(&seg.parameters).into_iter().map(|(k, (b, a))| (k, json!([b, a]))).collect::<serde_json::Map<_, _>>(),
                    "arm": p.jitter.arm.as_str(), "arm_why": p.why,
                })).collect::<Vec<_>>(),
                "estimate_gpu_seconds": est,
                "rescue_model": evidence,
            });
            tx.event(ev(
                seg.project_id,
                seg.id,
                new_attempts.first().copied(),
                "retry_scheduled",
                why,
                data,
            ))
            .await?;
            tx.notify_work().await?;
        }
        Decision::Select {
            attempt_number,
            why,
        } => {
            select_in_tx(tx, seg, attempts, attempt_number, "retake", false).await?;
            seg.decision_note = Some(why.clone());
            move_segment(seg, SegmentStatus::Passed)?;
            seg.review_reason = None;
            seg.updated_at = t;
            tx.save_segment(seg).await?;
            // A segment that passes after failures was rescued: credit each check it failed.
            let mut failed_checks: Vec<String> = attempts
                .iter()
                .filter_map(|a| a.quality_scores.as_ref())
                .flat_map(|s| {
                    s.failed_checks()
                        .into_iter()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            failed_checks.sort();
            failed_checks.dedup();
            for c in &failed_checks {
                tx.bump_check_stats(seg.scene_type_id, c, 0, 0, 0, 1)
                    .await?;
            }
            let rescued = !failed_checks.is_empty();
            let sel = attempts.iter().find(|a| a.attempt_number == attempt_number);
            tx.event(ev(seg.project_id, seg.id, sel.map(|a| a.id), "selected", why,
                json!({"attempt_number": attempt_number, "rescued": rescued, "overall": sel.and_then(|a| a.quality_scores.as_ref().map(|s| s.overall))}))).await?;
        }
        Decision::Escalate {
            reason,
            why,
            evidence,
        } => {
            move_segment(seg, SegmentStatus::NeedsReview)?;
            seg.review_reason = Some(reason);
            seg.decision_note = Some(why.clone());
            seg.review_evidence = evidence.clone();
            seg.updated_at = t;
            tx.save_segment(seg).await?;
            tx.event(ev(
                seg.project_id,
                seg.id,
                None,
                "escalated",
                why,
                json!({"reason": reason.as_str(), "evidence": evidence}),
            ))
            .await?;
        }
    }
    Ok(Applied {
        applied: true,
        decision: Some(kind.into()),
        segment_status: Some(seg.status),
        new_attempts,
    })
}

/// Point the segment at one attempt; clears any earlier selection first (the partial unique
/// index allows one selected attempt per segment).
async fn select_in_tx<T: TxOps + ?Sized>(
    tx: &mut T,
    seg: &mut Segment,
    attempts: &[Attempt],
    n: u32,
    actor: &str,
    human_override: bool,
) -> Result<()> {
    let t = now();
    for a in attempts
        .iter()
        .filter(|a| a.is_selected && a.attempt_number != n)
    {
        let mut a = a.clone();
        a.is_selected = false;
        a.updated_at = t;
        tx.save_attempt(&a).await?;
    }
    let mut target = attempts
        .iter()
        .find(|a| a.attempt_number == n)
        .cloned()
        .ok_or_else(|| StoreError::not_found("attempt", format!("{}/{n}", seg.id)))?;
    target.is_selected = true;
    target.selected_by = Some(actor.to_owned());
    target.human_override = human_override;
    target.updated_at = t;
    tx.save_attempt(&target).await?;
    seg.selected_attempt_number = Some(n);
    seg.output_video_path = target.output_video_path.clone();
    Ok(())
}

pub async fn record_infra_failure<T: TxOps + ?Sized>(
    tx: &mut T,
    f: InfraFailure,
) -> Result<Applied> {
    let Some(mut a) = tx.attempt(f.attempt_id).await? else {
        tracing::info!(attempt = f.attempt_id, "a failed attempt no longer exists (its project or scene type was deleted); nothing recorded");
        return Ok(Applied::ignored());
    };
    if !matches!(
        a.overall_status,
        AttemptStatus::Generating | AttemptStatus::Scoring
    ) || a.worker.as_deref() != Some(f.worker.as_str())
    {
        return Ok(Applied::ignored());
    }
    let seg = tx
        .segment(a.segment_id)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", a.segment_id))?;
    if !f.reached_server && f.retriable {
        return wait_for_server(tx, a, &seg, &f).await;
    }
    charge(
        tx,
        &mut a,
        seg.project_id,
        f.gpu_seconds_spent.max(0.0),
        "infrastructure error",
    )
    .await?;
    end_wait(&mut a);
    let tries = a.infra_errors.len() as u32;
    let retry = f.retriable && tries < f.max_infra_retries;
    a.infra_errors.push(InfraErrorRecord {
        at: now(),
        worker: f.worker.clone(),
        message: f.message.clone(),
        gpu_seconds: f.gpu_seconds_spent,
        retried: retry,
    });
    a.worker = None;
    a.lease_expires_at = None;
    a.updated_at = now();
    if retry {
        let backoff = f.backoff.saturating_mul(1u32 << tries.min(10));
        move_attempt(&mut a, AttemptStatus::Queued)?;
        a.not_before = Some(now() + chrono::Duration::from_std(backoff).unwrap_or_default());
        a.failure_reason = Some(format!(
            "infrastructure error (retry {} of {}): {}",
            tries + 1,
            f.max_infra_retries,
            f.message
        ));
        tx.save_attempt(&a).await?;
        tx.event(ev(seg.project_id, seg.id, Some(a.id), "infra_error",
            format!("attempt {} hit an infrastructure error and is requeued with the same parameters in {:.1}s: {}", a.attempt_number, backoff.as_secs_f64(), f.message),
            json!({"message": f.message, "retry": tries + 1, "max": f.max_infra_retries, "gpu_seconds": f.gpu_seconds_spent}))).await?;
        tx.notify_work().await?;
        return Ok(Applied {
            applied: true,
            decision: Some("infra_retry".into()),
            segment_status: Some(seg.status),
            new_attempts: vec![],
        });
    }
    move_attempt(&mut a, AttemptStatus::InfraError)?;
    a.failure_reason = Some(if f.retriable {
        format!(
            "infrastructure error, {} tries used: {}",
            tries + 1,
            f.message
        )
    } else {
        format!("{WORKFLOW_ERROR_PREFIX}{}", f.message)
    });
    a.finished_at = Some(now());
    tx.save_attempt(&a).await?;
    tx.event(ev(
        seg.project_id,
        seg.id,
        Some(a.id),
        "infra_error",
        a.failure_reason.clone().unwrap_or_default(),
        json!({"message": f.message, "retriable": f.retriable}),
    ))
    .await?;
    decide_and_apply(tx, seg.id).await
}

/// Ends an attempt's wait for a healthy generation server, with the reason it carried while
/// waiting (a passing attempt must not keep saying it waits).
fn end_wait(a: &mut Attempt) {
    if a.waiting_since.take().is_some() {
        a.failure_reason = None;
    }
}

/// The event of an attempt that stops waiting for a healthy generation server because one is
/// there (each dialect's `end_server_wait` writes it).
pub(crate) fn wait_over(
    project_id: i64,
    segment_id: i64,
    attempt_id: i64,
    attempt_number: i64,
) -> NewEvent {
    ev(
        project_id,
        segment_id,
        Some(attempt_id),
        "server_available",
        format!("attempt {attempt_number} no longer waits for a healthy ComfyUI server: one is up; it runs when a slot is free"),
        json!({"attempt_number": attempt_number}),
    )
}

/// Work that never reached a generation server has not failed: it goes back to the queue with
/// its reservation released (nothing ran), no infrastructure retry used, and `waiting_since` set
/// on the first wait, so the API and metrics can say since when it waits. One event marks the
/// start of a wait, not every look. It has not started (`started_at` is cleared: the claim that
/// finally runs it sets it), and a segment whose only running attempt this was is queued again.
async fn wait_for_server<T: TxOps + ?Sized>(
    tx: &mut T,
    mut a: Attempt,
    seg: &Segment,
    f: &InfraFailure,
) -> Result<Applied> {
    tx.settle(seg.project_id, a.reserved_gpu_seconds, 0.0)
        .await?;
    a.reserved_gpu_seconds = 0.0;
    let first = a.waiting_since.is_none();
    let since = *a.waiting_since.get_or_insert_with(now);
    move_attempt(&mut a, AttemptStatus::Queued)?;
    a.worker = None;
    a.lease_expires_at = None;
    a.progress = None;
    a.started_at = None;
    a.not_before = Some(now() + chrono::Duration::from_std(f.backoff).unwrap_or_default());
    a.failure_reason = Some(waiting_reason(since, &f.message));
    a.updated_at = now();
    tx.save_attempt(&a).await?;
    let seg = requeue_segment(tx, seg, a.id).await?;
    if first {
        tx.event(ev(seg.project_id, seg.id, Some(a.id), "waiting_for_server",
            format!("attempt {} is waiting for a healthy ComfyUI server; it resumes by itself when one is back: {}", a.attempt_number, f.message),
            json!({"message": f.message, "since": since}))).await?;
    }
    tx.notify_work().await?;
    Ok(Applied {
        applied: true,
        decision: Some("waiting_for_server".into()),
        segment_status: Some(seg.status),
        new_attempts: vec![],
    })
}

/// A segment shown `generating` whose attempt `back` returned to the queue is queued again
/// when none of its attempts runs any more: its status follows its work.
async fn requeue_segment<T: TxOps + ?Sized>(
    tx: &mut T,
    seg: &Segment,
    back: i64,
) -> Result<Segment> {
    let mut seg = seg.clone();
    if seg.status != SegmentStatus::Generating {
        return Ok(seg);
    }
    let running = tx.attempts_of(seg.id).await?.iter().any(|x| {
        x.id != back
            && matches!(
                x.overall_status,
                AttemptStatus::Generating | AttemptStatus::Scoring
            )
    });
    if !running {
        move_segment(&mut seg, SegmentStatus::Queued)?;
        seg.updated_at = now();
        tx.save_segment(&seg).await?;
    }
    Ok(seg)
}

/// Return one expired lease to the queue.
pub async fn rescue<T: TxOps + ?Sized>(tx: &mut T, attempt_id: i64) -> Result<bool> {
    let Some(mut a) = tx.attempt(attempt_id).await? else {
        return Ok(false);
    };
    let expired = a.lease_expires_at.is_some_and(|t| t < now());
    if !expired
        || !matches!(
            a.overall_status,
            AttemptStatus::Generating | AttemptStatus::Scoring
        )
    {
        return Ok(false);
    }
    let seg = tx
        .segment(a.segment_id)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", a.segment_id))?;
    let owner = a.worker.clone().unwrap_or_default();
    let was = a.overall_status;
    // A prompt a generation server accepted keeps running there when the worker that follows it
    // dies: its reservation stays, so the budget still covers that GPU time, until the attempt's
    // next run re-attaches to the prompt and charges what the server reports. A recorded prompt
    // id is enough: the worker may have died between the server accepting the prompt and
    // recording which server it was (the next run reuses the reservation either way).
    let on_server = was == AttemptStatus::Generating && a.provenance.get("prompt_id").is_some();
    if !on_server {
        tx.settle(seg.project_id, a.reserved_gpu_seconds, 0.0)
            .await?;
        a.reserved_gpu_seconds = 0.0;
    }
    move_attempt(&mut a, AttemptStatus::Queued)?;
    a.worker = None;
    a.lease_expires_at = None;
    a.progress = None;
    a.updated_at = now();
    tx.save_attempt(&a).await?;
    let seg = requeue_segment(tx, &seg, a.id).await?;
    tx.event(ev(seg.project_id, seg.id, Some(a.id), "lease_rescued",
        format!("attempt {} was {was} on {owner}, whose lease expired; returned to the queue with the same parameters{}", a.attempt_number,
            if on_server { format!(", keeping its {:.1} GPU-s reservation while its prompt may still run on {}", a.reserved_gpu_seconds, a.provenance["server"].as_str().unwrap_or("a server")) } else { String::new() }),
        json!({"worker": owner, "was": was.as_str(), "kept_reservation": on_server.then_some(a.reserved_gpu_seconds)}))).await?;
    tx.notify_work().await?;
    Ok(true)
}

pub async fn select_attempt<T: TxOps + ?Sized>(
    tx: &mut T,
    segment_id: i64,
    n: u32,
    actor: &str,
    human_override: bool,
) -> Result<Segment> {
    let mut seg = tx
        .segment(segment_id)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", segment_id))?;
    let attempts = tx.attempts_of(segment_id).await?;
    let target = attempts
        .iter()
        .find(|a| a.attempt_number == n)
        .ok_or_else(|| StoreError::not_found("attempt", format!("{segment_id}/{n}")))?;
    if !human_override && target.overall_status != AttemptStatus::Passed {
        return Err(StoreError::conflict(
            Some("attempt_number"),
            format!("attempt {n} is {}; only a passing attempt can be selected (a reviewer can accept it from the review queue as an override)", target.overall_status),
        ));
    }
    if human_override && !target.overall_status.is_terminal() {
        return Err(StoreError::conflict(
            Some("attempt_number"),
            format!("attempt {n} is still {}", target.overall_status),
        ));
    }
    let to = match (seg.status, human_override) {
        (SegmentStatus::Passed, false) => SegmentStatus::Passed,
        (SegmentStatus::Approved, false) => SegmentStatus::Approved,
        (SegmentStatus::NeedsReview | SegmentStatus::Passed, true) => SegmentStatus::Approved,
        (SegmentStatus::NeedsReview, false) => SegmentStatus::Approved,
        (s, _) => {
            return Err(StoreError::conflict(Some("status"), format!("segment {segment_id} is {s}; attempts can be selected once it has passed or is in review")))
        }
    };
    let before = seg.selected_attempt_number;
    select_in_tx(tx, &mut seg, &attempts, n, actor, human_override).await?;
    move_segment(&mut seg, to)?;
    let why = if human_override {
        format!(
            "{actor} accepted attempt {n} ({}) as a human override",
            target.overall_status
        )
    } else {
        format!(
            "{actor} selected attempt {n} as best (was {})",
            before
                .map(|b| format!("attempt {b}"))
                .unwrap_or_else(|| "none".into())
        )
    };
    seg.decision_note = Some(why.clone());
    seg.updated_at = now();
    tx.save_segment(&seg).await?;
    tx.event(ev(seg.project_id, seg.id, Some(target.id), if human_override { "accepted" } else { "selected" }, why,
        json!({"attempt_number": n, "actor": actor, "human_override": human_override, "previous": before}))).await?;
    Ok(seg)
}

/// Cancel in-flight attempts and end the segment as `to` (rejected or cancelled).
pub async fn close_segment<T: TxOps + ?Sized>(
    tx: &mut T,
    segment_id: i64,
    actor: &str,
    to: SegmentStatus,
    note: Option<String>,
) -> Result<(Segment, Vec<Attempt>)> {
    let mut seg = tx
        .segment(segment_id)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", segment_id))?;
    move_segment(&mut seg, to)?;
    let mut cancelled = vec![];
    for mut a in tx.attempts_of(segment_id).await? {
        if a.overall_status.is_in_flight() {
            tx.settle(seg.project_id, a.reserved_gpu_seconds, 0.0)
                .await?;
            a.reserved_gpu_seconds = 0.0;
            move_attempt(&mut a, AttemptStatus::Cancelled)?;
            a.failure_reason = Some(format!("segment {to} by {actor}"));
            a.finished_at = Some(now());
            a.worker = None;
            a.lease_expires_at = None;
            a.updated_at = now();
            tx.save_attempt(&a).await?;
            cancelled.push(a);
        }
    }
    let why = match &note {
        Some(n) => format!("{actor} {to} the segment: {n}"),
        None => format!("{actor} {to} the segment"),
    };
    seg.decision_note = Some(why.clone());
    seg.updated_at = now();
    tx.save_segment(&seg).await?;
    tx.event(ev(seg.project_id, seg.id, None, if to == SegmentStatus::Rejected { "rejected" } else { "cancelled" }, why,
        json!({"actor": actor, "cancelled_attempts": cancelled.iter().map(|a| a.attempt_number).collect::<Vec<_>>()}))).await?;
    Ok((seg, cancelled))
}

pub async fn rerun<T: TxOps + ?Sized>(
    tx: &mut T,
    segment_id: i64,
    actor: &str,
    o: RerunOverrides,
) -> Result<(Segment, Attempt)> {
    let mut seg = tx
        .segment(segment_id)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", segment_id))?;
    if seg.status != SegmentStatus::NeedsReview {
        return Err(StoreError::conflict(
            Some("status"),
            format!(
                "segment {segment_id} is {}; only a segment in review can be re-run",
                seg.status
            ),
        ));
    }
    let scene = tx.scene_type(seg.scene_type_id).await?;
    let project = tx.project(seg.project_id).await?;
    let policy = EffectivePolicy::resolve(&project.default_retry_policy, &scene.retry_policy)
        .map_err(|e| StoreError::invalid(Some(&e.field), e.message))?
        .policy;
    let attempts = tx.attempts_of(segment_id).await?;
    let views: Vec<_> = attempts.iter().map(Attempt::view).collect();
    let est = estimate(tx, scene.id, project.default_gpu_estimate_seconds).await?;
    let stats = SceneStats::default();
    let domains = scene.domains();
    let input = DecisionInput {
        policy: &policy,
        original: &seg.parameters,
        rng_seed: seg.rng_seed,
        attempts: &views,
        budget: project.budget_view(),
        estimate_gpu_seconds: est,
        domains: &domains,
        stats: &stats,
    };
    let planned =
        plan_rerun(&input, o.parameters.as_ref(), o.jitter_scale).map_err(|e| match e {
            retake_core::RerunError::JitterScale(_) => {
                StoreError::invalid(Some("jitter_scale"), e.to_string())
            }
            retake_core::RerunError::Budget { .. } => {
                StoreError::conflict(Some("budget"), e.to_string())
            }
            retake_core::RerunError::Parameter(m, f) => StoreError::invalid(Some(&f), m),
        })?;
    let why = format!(
        "{actor} re-ran the segment from review: {}",
        retake_core::decide::describe_change(&planned, &seg.parameters)
    );
    let decision = Decision::Retry {
        attempts: vec![planned],
        why,
        evidence: Value::Null,
    };
    seg.review_reason = None;
    seg.review_evidence = Value::Null;
    let applied = apply(
        tx,
        &mut seg,
        &attempts,
        decision,
        Some(est),
        Some(actor),
        policy.retry_priority,
    )
    .await?;
    let id = applied.new_attempts[0];
    let a = tx
        .attempt(id)
        .await?
        .ok_or_else(|| StoreError::not_found("attempt", id))?;
    Ok((seg, a))
}

/// Why an attempt's lease should be extended by this much.
pub fn lease_until(lease: Duration) -> Timestamp {
    now() + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(60))
}

/// Attempt 1's seed: the submitted one, else the first draw of the segment's RNG stream 1 within
/// the seed input's range (`domains["seed"]`, as the generation server reported it). A submitted
/// seed outside that range is refused: the server would refuse it.
pub fn first_seed(
    params: &retake_core::Parameters,
    rng_seed: u64,
    domains: &BTreeMap<String, retake_core::params::ParamDomain>,
) -> Result<u64> {
    use rand::Rng;
    let [lo, hi] = retake_core::rng::seed_range(domains);
    match params.seed() {
        Some(s) if !(lo..=hi).contains(&s) => Err(StoreError::invalid(
            Some("parameters.seed"),
            format!("must be an integer in {lo}..={hi}, the range of the scene type's bound seed input; got {s}"),
        )),
        Some(s) => Ok(s),
        None => Ok(retake_core::attempt_rng(rng_seed, 1).random_range(lo..=hi)),
    }
}

pub fn first_attempt(seg: &Segment, seed: u64, t: Timestamp) -> Attempt {
    Attempt {
        id: 0,
        segment_id: seg.id,
        attempt_number: 1,
        seed,
        parameters: seg.parameters.clone(),
        original_parameters: seg.parameters.clone(),
        output_video_path: None,
        quality_scores: None,
        overall_status: AttemptStatus::Queued,
        is_selected: false,
        gpu_seconds: 0.0,
        reserved_gpu_seconds: 0.0,
        failure_reason: None,
        jitter: None,
        arm: None,
        why: Some("the original generation".into()),
        backend: None,
        worker: None,
        lease_expires_at: None,
        not_before: None,
        waiting_since: None,
        progress: None,
        infra_errors: vec![],
        provenance: serde_json::json!({}),
        qa_source: None,
        selected_by: None,
        human_override: false,
        round: 1,
        requested_by: None,
        priority: 0,
        started_at: None,
        finished_at: None,
        created_at: t,
        updated_at: t,
    }
}
