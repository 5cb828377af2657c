//! The unit of work every decision-making transaction runs through, for both backends.
//!
//! [`Unit`] wraps a backend's transaction ([`TxOps`]) and implements [`TxOps`] itself, so the
//! logic in [`crate::ops`] is written once and does not know about it. What it adds:
//!
//! - **One read per row per transaction.** Attempts and segments are read (and, on PostgreSQL,
//!   locked) once, in id order — a whole batch's rows in one statement each — and served from
//!   memory afterwards, with this transaction's own changes applied.
//! - **Set-based writes at the end.** Changed attempts and segments are written once each, in one
//!   statement per table where the backend can; ledger rows, budget and statistics deltas, and
//!   learning counters are appended together. Rows other transactions also write (the learning
//!   counters) are written last, so their locks are held for the shortest time.
//! - **No hot row.** Settling the budget appends deltas instead of updating the project row;
//!   claims fold them (see [`TxOps::reserve`]). Project statistics move the same way: each change
//!   of a segment's state appends the counter deltas it causes.
//!
//! Call [`Unit::flush`] before committing; dropping a unit without flushing loses its writes,
//! which is what a rolled-back transaction wants.

use crate::model::*;
use crate::ops::{
    ArmBump, CheckBump, LedgerRow, NewEvent, ProjectDelta, RescueRow, TxOps, GPU_RESERVED,
    GPU_SPENT,
};
use crate::Result;
use async_trait::async_trait;
use retake_core::strategy::SceneStats;
use retake_core::SegmentStatus;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub struct Unit<'a, T: TxOps + ?Sized> {
    inner: &'a mut T,
    attempts: HashMap<i64, Attempt>,
    dirty_attempts: BTreeSet<i64>,
    segments: HashMap<i64, Segment>,
    segments_before: HashMap<i64, Segment>,
    dirty_segments: BTreeSet<i64>,
    /// Segments whose every attempt is in `attempts`.
    complete: HashSet<i64>,
    scenes: HashMap<i64, SceneType>,
    projects: HashMap<i64, Project>,
    recent_gpu: HashMap<(i64, u32), Vec<f64>>,
    stats: HashMap<(i64, bool), SceneStats>,
    ledger: Vec<LedgerRow>,
    deltas: Vec<ProjectDelta>,
    check_bumps: BTreeMap<(i64, String), [i64; 4]>,
    arm_bumps: BTreeMap<(i64, String, String), [i64; 2]>,
    rescue_rows: HashMap<(i64, u32), Vec<RescueRow>>,
    rescue_bumps: BTreeMap<(i64, String, i64, String), f64>,
    /// Events, written in the order they were recorded, after the rows they describe.
    events: Vec<NewEvent>,
}

impl<'a, T: TxOps + ?Sized> Unit<'a, T> {
    pub fn new(inner: &'a mut T) -> Self {
        Unit {
            inner,
            attempts: HashMap::new(),
            dirty_attempts: BTreeSet::new(),
            segments: HashMap::new(),
            segments_before: HashMap::new(),
            dirty_segments: BTreeSet::new(),
            complete: HashSet::new(),
            scenes: HashMap::new(),
            projects: HashMap::new(),
            recent_gpu: HashMap::new(),
            stats: HashMap::new(),
            ledger: vec![],
            deltas: vec![],
            check_bumps: BTreeMap::new(),
            arm_bumps: BTreeMap::new(),
            rescue_rows: HashMap::new(),
            rescue_bumps: BTreeMap::new(),
            events: vec![],
        }
    }

    /// Read and lock a batch's attempts, their segments and every attempt of those segments,
    /// in the order every transaction takes them (attempts, then segments, ids ascending).
    pub async fn preload(&mut self, attempt_ids: &[i64]) -> Result<()> {
        let mut ids: Vec<i64> = attempt_ids
            .iter()
            .copied()
            .filter(|id| !self.attempts.contains_key(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            for a in self.inner.lock_attempts(&ids).await? {
                self.attempts.insert(a.id, a);
            }
        }
        let mut segs: Vec<i64> = attempt_ids
            .iter()
            .filter_map(|id| self.attempts.get(id).map(|a| a.segment_id))
            .collect();
        segs.sort_unstable();
        segs.dedup();
        self.load_segments(&segs).await?;
        let missing: Vec<i64> = segs
            .iter()
            .copied()
            .filter(|s| !self.complete.contains(s))
            .collect();
        if !missing.is_empty() {
            for a in self.inner.attempts_of_many(&missing).await? {
                self.attempts.entry(a.id).or_insert(a);
            }
            self.complete.extend(missing);
        }
        Ok(())
    }

    pub async fn load_segments(&mut self, ids: &[i64]) -> Result<()> {
        let mut want: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !self.segments.contains_key(id))
            .collect();
        want.sort_unstable();
        want.dedup();
        if want.is_empty() {
            return Ok(());
        }
        for s in self.inner.lock_segments(&want).await? {
            self.segments_before.insert(s.id, s.clone());
            self.segments.insert(s.id, s);
        }
        Ok(())
    }

    /// Write everything this unit changed. Call once, just before the commit.
    pub async fn flush(mut self) -> Result<()> {
        let attempts: Vec<Attempt> = std::mem::take(&mut self.dirty_attempts)
            .into_iter()
            .filter_map(|id| self.attempts.remove(&id))
            .collect();
        // Unselected first: "one selected attempt per segment" is checked row by row, so moving
        // the selection must clear the old one before it sets the new one.
        let (selected, others): (Vec<Attempt>, Vec<Attempt>) =
            attempts.into_iter().partition(|a| a.is_selected);
        for group in [others, selected] {
            if !group.is_empty() {
                self.inner.save_attempts(&group).await?;
            }
        }
        let mut segments = vec![];
        for id in std::mem::take(&mut self.dirty_segments) {
            let Some(s) = self.segments.remove(&id) else {
                continue;
            };
            if let Some(before) = self.segments_before.get(&id) {
                counter_deltas(before, &s, &mut self.deltas);
            }
            segments.push(s);
        }
        if !segments.is_empty() {
            self.inner.save_segments(&segments).await?;
        }
        if !self.ledger.is_empty() {
            self.inner.ledger_rows(&self.ledger).await?;
        }
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            self.inner.events(events).await?;
        }
        let deltas = merge_deltas(std::mem::take(&mut self.deltas));
        if !deltas.is_empty() {
            self.inner.add_deltas(&deltas).await?;
        }
        let checks: Vec<CheckBump> = std::mem::take(&mut self.check_bumps)
            .into_iter()
            .map(|((scene_type_id, check), [a, f, fs, r])| CheckBump {
                scene_type_id,
                check,
                attempts: a,
                failures: f,
                failed_segments: fs,
                rescues: r,
            })
            .collect();
        if !checks.is_empty() {
            self.inner.bump_check_stats_many(&checks).await?;
        }
        let arms: Vec<ArmBump> = std::mem::take(&mut self.arm_bumps)
            .into_iter()
            .map(|((scene_type_id, check, arm), [tries, rescues])| ArmBump {
                scene_type_id,
                check,
                arm,
                tries,
                rescues,
            })
            .collect();
        if !arms.is_empty() {
            self.inner.bump_arm_stats_many(&arms).await?;
        }
        let rescue: Vec<RescueRow> = std::mem::take(&mut self.rescue_bumps)
            .into_iter()
            .map(|((scene_type_id, check, bucket, key), value)| RescueRow {
                scene_type_id,
                check,
                bucket,
                key,
                value,
            })
            .collect();
        if !rescue.is_empty() {
            self.inner.bump_rescue(&rescue).await?;
        }
        Ok(())
    }

    fn apply_budget(&mut self, project_id: i64, reserved: f64, spent: f64) {
        if let Some(p) = self.projects.get_mut(&project_id) {
            p.gpu_reserved_seconds = (p.gpu_reserved_seconds + reserved).max(0.0);
            p.gpu_spent_seconds += spent;
        }
    }
}

/// The statistics keys a segment in this state counts towards (each with 1).
pub fn counter_keys(s: &Segment) -> Vec<String> {
    use SegmentStatus::*;
    let mut k = vec![format!("status:{}", s.status.as_str())];
    match s.status {
        Passed if s.had_failure => k.push("rescued".into()),
        Passed => k.push("passed_first_time".into()),
        NeedsReview | Approved | Rejected if s.had_failure => {
            k.push("escalated_after_failure".into())
        }
        _ => {}
    }
    if matches!(s.status, Passed | Approved) {
        if let (Some(sel), Some(first)) = (s.selected_attempt_number, s.first_pass) {
            if sel > first {
                k.push("best_beat_first".into());
            }
        }
    }
    if let Some(r) = s.review_reason {
        k.push(format!("reason:{}", r.as_str()));
    }
    k
}

fn counter_deltas(before: &Segment, after: &Segment, out: &mut Vec<ProjectDelta>) {
    let old = counter_keys(before);
    let new = counter_keys(after);
    for key in old.iter().filter(|k| !new.contains(k)) {
        out.push(ProjectDelta::new(after.project_id, key.clone(), -1.0));
    }
    for key in new.iter().filter(|k| !old.contains(k)) {
        out.push(ProjectDelta::new(after.project_id, key.clone(), 1.0));
    }
}

/// One row per (project, key): a batch's deltas summed.
fn merge_deltas(deltas: Vec<ProjectDelta>) -> Vec<ProjectDelta> {
    let mut sums: BTreeMap<(i64, String), f64> = BTreeMap::new();
    for d in deltas {
        *sums.entry((d.project_id, d.key)).or_default() += d.value;
    }
    sums.into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|((project_id, key), value)| ProjectDelta {
            project_id,
            key,
            value,
        })
        .collect()
}

#[async_trait]
impl<'a, T: TxOps + ?Sized> TxOps for Unit<'a, T> {
    async fn attempt(&mut self, id: i64) -> Result<Option<Attempt>> {
        if let Some(a) = self.attempts.get(&id) {
            return Ok(Some(a.clone()));
        }
        let Some(a) = self.inner.lock_attempts(&[id]).await?.pop() else {
            return Ok(None);
        };
        self.attempts.insert(id, a.clone());
        Ok(Some(a))
    }

    async fn segment(&mut self, id: i64) -> Result<Option<Segment>> {
        self.load_segments(&[id]).await?;
        Ok(self.segments.get(&id).cloned())
    }

    async fn scene_type(&mut self, id: i64) -> Result<SceneType> {
        if let Some(s) = self.scenes.get(&id) {
            return Ok(s.clone());
        }
        let s = self.inner.scene_type(id).await?;
        self.scenes.insert(id, s.clone());
        Ok(s)
    }

    async fn project(&mut self, id: i64) -> Result<Project> {
        if let Some(p) = self.projects.get(&id) {
            return Ok(p.clone());
        }
        let mut p = self.inner.project(id).await?;
        // This unit's own budget movements, not yet written.
        for d in self.deltas.iter().filter(|d| d.project_id == id) {
            match d.key.as_str() {
                GPU_RESERVED => {
                    p.gpu_reserved_seconds = (p.gpu_reserved_seconds + d.value).max(0.0)
                }
                GPU_SPENT => p.gpu_spent_seconds += d.value,
                _ => {}
            }
        }
        self.projects.insert(id, p.clone());
        Ok(p)
    }

    async fn attempts_of(&mut self, segment_id: i64) -> Result<Vec<Attempt>> {
        if !self.complete.contains(&segment_id) {
            for a in self.inner.attempts_of_many(&[segment_id]).await? {
                self.attempts.entry(a.id).or_insert(a);
            }
            self.complete.insert(segment_id);
        }
        let mut out: Vec<Attempt> = self
            .attempts
            .values()
            .filter(|a| a.segment_id == segment_id)
            .cloned()
            .collect();
        out.sort_by_key(|a| a.attempt_number);
        Ok(out)
    }

    async fn save_attempt(&mut self, a: &Attempt) -> Result<()> {
        self.attempts.insert(a.id, a.clone());
        self.dirty_attempts.insert(a.id);
        Ok(())
    }

    async fn insert_attempt(
        &mut self,
        a: &Attempt,
        project_id: i64,
        scene_type_id: i64,
    ) -> Result<i64> {
        let id = self
            .inner
            .insert_attempt(a, project_id, scene_type_id)
            .await?;
        let mut stored = a.clone();
        stored.id = id;
        self.attempts.insert(id, stored);
        self.deltas
            .push(ProjectDelta::new(project_id, "attempts".into(), 1.0));
        Ok(id)
    }

    async fn save_segment(&mut self, s: &Segment) -> Result<()> {
        if !self.segments_before.contains_key(&s.id) {
            // Changed without being read through this unit: read its stored state first so the
            // statistics move by the right deltas.
            self.load_segments(&[s.id]).await?;
        }
        self.segments.insert(s.id, s.clone());
        self.dirty_segments.insert(s.id);
        Ok(())
    }

    async fn try_reserve(&mut self, project_id: i64, seconds: f64) -> Result<bool> {
        let ok = self.inner.reserve(project_id, &[seconds]).await? == 1;
        if ok {
            self.apply_budget(project_id, seconds, 0.0);
        }
        Ok(ok)
    }

    async fn reserve(&mut self, project_id: i64, wanted: &[f64]) -> Result<usize> {
        let n = self.inner.reserve(project_id, wanted).await?;
        let sum: f64 = wanted[..n].iter().sum();
        self.apply_budget(project_id, sum, 0.0);
        Ok(n)
    }

    async fn settle(&mut self, project_id: i64, release: f64, spend: f64) -> Result<()> {
        if release != 0.0 {
            self.deltas
                .push(ProjectDelta::new(project_id, GPU_RESERVED.into(), -release));
        }
        if spend != 0.0 {
            self.deltas
                .push(ProjectDelta::new(project_id, GPU_SPENT.into(), spend));
        }
        self.apply_budget(project_id, -release, spend);
        Ok(())
    }

    async fn ledger(
        &mut self,
        project_id: i64,
        attempt_id: i64,
        reserved: f64,
        spent: f64,
        note: &str,
    ) -> Result<()> {
        self.ledger.push(LedgerRow {
            project_id,
            attempt_id,
            reserved,
            spent,
            note: note.to_owned(),
            at: now(),
        });
        Ok(())
    }

    async fn event(&mut self, e: NewEvent) -> Result<()> {
        self.events.push(e);
        Ok(())
    }

    async fn events(&mut self, events: Vec<NewEvent>) -> Result<()> {
        self.events.extend(events);
        Ok(())
    }

    async fn recent_gpu(&mut self, scene_type_id: i64, limit: u32) -> Result<Vec<f64>> {
        if let Some(v) = self.recent_gpu.get(&(scene_type_id, limit)) {
            return Ok(v.clone());
        }
        let v = self.inner.recent_gpu(scene_type_id, limit).await?;
        self.recent_gpu.insert((scene_type_id, limit), v.clone());
        Ok(v)
    }

    async fn scene_stats(&mut self, scene_type_id: i64, with_scores: bool) -> Result<SceneStats> {
        if let Some(s) = self.stats.get(&(scene_type_id, with_scores)) {
            return Ok(s.clone());
        }
        let s = self.inner.scene_stats(scene_type_id, with_scores).await?;
        self.stats.insert((scene_type_id, with_scores), s.clone());
        Ok(s)
    }

    async fn bump_check_stats(
        &mut self,
        scene_type_id: i64,
        check: &str,
        attempts: i64,
        failures: i64,
        failed_segments: i64,
        rescues: i64,
    ) -> Result<()> {
        let e = self
            .check_bumps
            .entry((scene_type_id, check.to_owned()))
            .or_default();
        e[0] += attempts;
        e[1] += failures;
        e[2] += failed_segments;
        e[3] += rescues;
        Ok(())
    }

    async fn bump_arm_stats(
        &mut self,
        scene_type_id: i64,
        check: &str,
        arm: &str,
        tries: i64,
        rescues: i64,
    ) -> Result<()> {
        let e = self
            .arm_bumps
            .entry((scene_type_id, check.to_owned(), arm.to_owned()))
            .or_default();
        e[0] += tries;
        e[1] += rescues;
        Ok(())
    }

    async fn notify_work(&mut self) -> Result<()> {
        self.inner.notify_work().await
    }

    /// Attempts this unit changed but has not written yet are left out: the database still
    /// has them as they were (a sibling cancelled in memory would otherwise be claimed). A
    /// segment this unit already holds keeps the state this unit gave it.
    async fn lock_ready(
        &mut self,
        limit: u32,
        at: Timestamp,
        skip: &[i64],
    ) -> Result<(Vec<(Attempt, i64, i64)>, Vec<Segment>)> {
        let mut skip = skip.to_vec();
        skip.extend(self.dirty_attempts.iter().copied());
        let (ready, segments) = self.inner.lock_ready(limit, at, &skip).await?;
        for (a, _, _) in &ready {
            self.attempts.insert(a.id, a.clone());
        }
        for s in &segments {
            if !self.segments.contains_key(&s.id) {
                self.segments_before.insert(s.id, s.clone());
                self.segments.insert(s.id, s.clone());
            }
        }
        let segments = segments
            .iter()
            .filter_map(|s| self.segments.get(&s.id).cloned())
            .collect();
        Ok((ready, segments))
    }

    async fn rescue_rows(&mut self, scene_type_id: i64, limit: u32) -> Result<Vec<RescueRow>> {
        if let Some(v) = self.rescue_rows.get(&(scene_type_id, limit)) {
            return Ok(v.clone());
        }
        let v = self.inner.rescue_rows(scene_type_id, limit).await?;
        self.rescue_rows.insert((scene_type_id, limit), v.clone());
        Ok(v)
    }

    async fn bump_rescue(&mut self, rows: &[RescueRow]) -> Result<()> {
        for r in rows {
            *self
                .rescue_bumps
                .entry((r.scene_type_id, r.check.clone(), r.bucket, r.key.clone()))
                .or_default() += r.value;
        }
        Ok(())
    }

    async fn add_deltas(&mut self, d: &[ProjectDelta]) -> Result<()> {
        self.deltas.extend_from_slice(d);
        Ok(())
    }
}
