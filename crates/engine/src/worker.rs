//! The worker loop. Several loops (and several processes on PostgreSQL) can run at once: work is
//! claimed with a lease, heartbeats keep the lease while a generation runs, and a rescuer returns
//! expired leases to the queue. No transaction is held across a generation call.

use crate::backend::{AttemptControl, Backends, GenerationError, GenerationJob, Scorer};
use crate::completer::{ClaimAs, Completer};
use async_trait::async_trait;
use retake_store::{
    Applied, Completion, GenerationDone, InfraFailure, SceneType, Store, StoreError, Work,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// How long the claim loop waits for more slots to free once one has, while the others still
/// run (a few milliseconds against generations that take seconds to minutes).
const CLAIM_GATHER: Duration = Duration::from_millis(2);

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Identifies this worker in leases and events.
    pub worker_id: String,
    /// Attempts generating at once in this process.
    pub slots: usize,
    /// Attempts claimed per statement.
    pub claim_batch: u32,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// Fallback poll when no wake-up arrives.
    pub poll: Duration,
    pub max_infra_retries: u32,
    pub infra_backoff: Duration,
    /// How often work that found no healthy generation server looks again (it waits in the
    /// queue meanwhile, without using up an infrastructure retry).
    pub server_wait: Duration,
    pub data_dir: PathBuf,
    /// Stop `run` once nothing is queued and nothing runs here (benchmarks, batch jobs).
    pub exit_when_idle: bool,
    /// Completions written per transaction at most (see [`Completer`]).
    pub completion_batch: usize,
    /// Where outputs are stored; `None`: the local directory `DATA_DIR/media`.
    pub media: Option<crate::media::MediaStore>,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            worker_id: format!("{}-{}", hostname(), std::process::id()),
            slots: 4,
            claim_batch: 16,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_millis(500),
            max_infra_retries: 3,
            infra_backoff: Duration::from_millis(500),
            server_wait: Duration::from_secs(2),
            data_dir: data_dir.into(),
            exit_when_idle: false,
            completion_batch: 64,
            media: None,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "retake".into())
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    pub attempts: u64,
    pub infra_errors: u64,
    /// Attempts stopped here because their lease had gone to someone else.
    pub leases_lost: u64,
}

/// An attempt this process works on: its task, and whether a completion that ends the
/// attempt here is being written (its lease is then released, not lost).
struct InFlight {
    handle: tokio::task::AbortHandle,
    finishing: bool,
}

pub struct Engine<S: Store + ?Sized> {
    store: Arc<S>,
    backends: Backends,
    scorer: Option<Arc<dyn Scorer>>,
    cfg: EngineConfig,
    scenes: Mutex<HashMap<i64, (Instant, Arc<SceneType>)>>,
    in_flight: Mutex<HashMap<i64, InFlight>>,
    processed: AtomicU64,
    infra: AtomicU64,
    leases_lost: AtomicU64,
    /// Set once `run` is asked to stop: finishing attempts stop taking their slot's next one.
    stopping: AtomicBool,
    completer: std::sync::OnceLock<Completer>,
    media: std::sync::OnceLock<Result<crate::media::MediaStore, String>>,
}

impl<S: Store + ?Sized> Engine<S> {
    pub fn new(
        store: Arc<S>,
        backends: Backends,
        scorer: Option<Arc<dyn Scorer>>,
        cfg: EngineConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            backends,
            scorer,
            cfg,
            scenes: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            processed: AtomicU64::new(0),
            infra: AtomicU64::new(0),
            leases_lost: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            completer: std::sync::OnceLock::new(),
            media: std::sync::OnceLock::new(),
        })
    }

    /// Hand a completion that does not end the attempt here (a generation this worker scores
    /// next) to this process's completer and wait until it is written.
    async fn complete(&self, c: Completion) -> Result<Applied, StoreError> {
        let id = c.attempt_id();
        self.set_finishing(id, true);
        let (r, next) = self.completer().complete(c, false).await;
        debug_assert!(next.is_none());
        if r.as_ref().is_ok_and(|a| a.applied) {
            self.set_finishing(id, false);
        }
        r
    }

    /// Hand the completion that ends the attempt here to the completer; unless this engine is
    /// stopping, the same transaction claims the slot's next attempt, which lands in `next`
    /// (whatever became of the completion).
    async fn finish(&self, c: Completion, next: &mut Option<Work>) -> Result<Applied, StoreError> {
        self.set_finishing(c.attempt_id(), true);
        let wants_next = !self.stopping.load(Ordering::Relaxed);
        let (r, w) = self.completer().complete(c, wants_next).await;
        *next = w;
        r
    }

    fn completer(&self) -> &Completer {
        self.completer.get_or_init(|| {
            Completer::start(
                self.store.clone(),
                self.cfg.completion_batch,
                ClaimAs {
                    worker: self.cfg.worker_id.clone(),
                    lease: self.cfg.lease,
                },
            )
        })
    }

    fn set_finishing(&self, attempt_id: i64, finishing: bool) {
        if let Some(f) = self.in_flight.lock().unwrap().get_mut(&attempt_id) {
            f.finishing = finishing;
        }
    }

    /// The media store outputs go to (the configured one, or `DATA_DIR/media`).
    pub fn media(&self) -> Result<&crate::media::MediaStore, String> {
        self.media
            .get_or_init(|| match &self.cfg.media {
                Some(m) => Ok(m.clone()),
                None => crate::media::MediaStore::local(&self.cfg.data_dir.join("media"))
                    .map_err(|e| e.to_string()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> RunStats {
        RunStats {
            attempts: self.processed.load(Ordering::Relaxed),
            infra_errors: self.infra.load(Ordering::Relaxed),
            leases_lost: self.leases_lost.load(Ordering::Relaxed),
        }
    }

    async fn scene(&self, id: i64) -> Result<Arc<SceneType>, StoreError> {
        if let Some((at, s)) = self.scenes.lock().unwrap().get(&id) {
            if at.elapsed() < Duration::from_secs(2) {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(self.store.get_scene_type(id).await?);
        self.scenes
            .lock()
            .unwrap()
            .insert(id, (Instant::now(), s.clone()));
        Ok(s)
    }

    /// Run until `shutdown` turns true: claim, generate, score, heartbeat, rescue.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let hb = tokio::spawn(self.clone().heartbeat_loop());
        let rescuer = tokio::spawn(self.clone().rescue_loop());
        // If this future is dropped (its task aborted), the heartbeat must stop with it: it would
        // otherwise keep renewing the leases of the attempts dropped here, and they would never
        // be rescued.
        let _loops = AbortOnDrop(vec![hb.abort_handle(), rescuer.abort_handle()]);
        let slots = Arc::new(Semaphore::new(self.cfg.slots));
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                self.stopping.store(true, Ordering::Relaxed);
                break;
            }
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits() as u32;
            let mut claimed = 0;
            if free > 0 {
                match self
                    .store
                    .claim(
                        &self.cfg.worker_id,
                        free.min(self.cfg.claim_batch),
                        self.cfg.lease,
                    )
                    .await
                {
                    Ok(work) => {
                        claimed = work.len();
                        for w in work {
                            crate::metrics::dispatched(
                                crate::metrics::ready_wait(&w.attempt),
                                w.attempt.attempt_number > 1,
                            );
                            let permit =
                                slots.clone().acquire_owned().await.expect("semaphore open");
                            let me = self.clone();
                            let id = w.attempt.id;
                            // Registered under the lock the task takes to deregister, so a
                            // task that ends at once never leaves a stale entry behind (the
                            // heartbeat would take it for a lost lease).
                            let mut map = self.in_flight.lock().unwrap();
                            let handle = tasks.spawn(async move {
                                me.process(w).await;
                                drop(permit);
                            });
                            map.insert(
                                id,
                                InFlight {
                                    handle,
                                    finishing: false,
                                },
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claim failed; retrying after the poll interval");
                        tokio::time::sleep(self.cfg.poll).await;
                    }
                }
            }
            if claimed == 0
                && self.cfg.exit_when_idle
                && tasks.is_empty()
                && matches!(self.store.pending_work().await, Ok(0))
            {
                break;
            }
            if claimed == 0 {
                tokio::select! {
                    _ = self.store.wait_for_work(self.cfg.poll) => {}
                    _ = tasks.join_next(), if !tasks.is_empty() => {}
                    _ = shutdown.changed() => {}
                }
                // Slots free one at a time while the others still run: wait a moment for a
                // few more, so that one claim serves several (each claim is a transaction).
                let want = (self.cfg.slots / 2).max(1);
                let deadline = tokio::time::Instant::now() + CLAIM_GATHER;
                while slots.available_permits() < want && !tasks.is_empty() {
                    if tokio::time::timeout_at(deadline, tasks.join_next())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Let running attempts finish; their leases would otherwise be rescued by another worker.
        while tasks.join_next().await.is_some() {}
        hb.abort();
        rescuer.abort();
    }

    /// Process work until the queue is empty and nothing is in flight (tests, `demo --no-serve`,
    /// benchmarks). Attempts held back by an infrastructure backoff are waited for.
    pub async fn run_until_idle(self: &Arc<Self>) -> Result<RunStats, StoreError> {
        let before = self.stats();
        loop {
            let work = self
                .store
                .claim(
                    &self.cfg.worker_id,
                    self.cfg.claim_batch.max(self.cfg.slots as u32),
                    self.cfg.lease,
                )
                .await?;
            if work.is_empty() {
                if self.store.pending_work().await? == 0 {
                    break;
                }
                self.store.wait_for_work(Duration::from_millis(50)).await;
                continue;
            }
            let mut set = JoinSet::new();
            let slots = Arc::new(Semaphore::new(self.cfg.slots.max(1)));
            for w in work {
                let me = self.clone();
                let permit = slots.clone().acquire_owned().await.expect("semaphore open");
                set.spawn(async move {
                    me.process(w).await;
                    drop(permit);
                });
            }
            while set.join_next().await.is_some() {}
        }
        let after = self.stats();
        Ok(RunStats {
            attempts: after.attempts - before.attempts,
            infra_errors: after.infra_errors - before.infra_errors,
            leases_lost: after.leases_lost - before.leases_lost,
        })
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.heartbeat);
        loop {
            tick.tick().await;
            let ids: Vec<i64> = self.in_flight.lock().unwrap().keys().copied().collect();
            if ids.is_empty() {
                continue;
            }
            match self
                .store
                .heartbeat(&self.cfg.worker_id, &ids, self.cfg.lease)
                .await
            {
                Ok(owned) => {
                    // A lease we lost belongs to someone else now (rescued, or the segment was
                    // cancelled): stop working on it.
                    // An attempt whose completion is being written is not owned any more
                    // once that commits: it finished here, it was not lost.
                    let mut map = self.in_flight.lock().unwrap();
                    for id in ids.iter().filter(|id| !owned.contains(id)) {
                        if map.get(id).is_none_or(|f| f.finishing) {
                            continue;
                        }
                        if let Some(f) = map.remove(id) {
                            tracing::warn!(attempt = id, "lease lost; stopping this attempt here");
                            self.leases_lost.fetch_add(1, Ordering::Relaxed);
                            f.handle.abort();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
            }
        }
    }

    async fn rescue_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.lease / 2);
        let mut settle = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = settle.tick() => {
                    // Fold the budget and statistics deltas finishes appended (claims fold them
                    // too; this keeps the table short when nothing is being claimed).
                    if let Err(e) = self.store.settle_pending().await {
                        tracing::warn!(error = %e, "settling budget deltas failed");
                    }
                    continue;
                }
            }
            match self.store.rescue_expired().await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::info!(count = ids.len(), "returned expired leases to the queue")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "rescue failed"),
            }
        }
    }

    /// One attempt, from claim to applied decision; then the attempts its slot takes next,
    /// claimed in the transaction that ended the one before.
    pub async fn process(self: &Arc<Self>, w: Work) {
        let mut w = w;
        loop {
            let id = w.attempt.id;
            let mut next = None;
            if let Err(e) = self.process_inner(w, &mut next).await {
                tracing::error!(attempt = id, error = %e, "attempt processing failed; its lease will expire and it will be rescued");
            }
            self.processed.fetch_add(1, Ordering::Relaxed);
            let mut map = self.in_flight.lock().unwrap();
            let task = map.remove(&id);
            let Some(n) = next else { break };
            // The next attempt runs in this task: it takes over the task's entry, so the
            // heartbeat keeps its lease.
            if let Some(f) = task {
                map.insert(
                    n.attempt.id,
                    InFlight {
                        handle: f.handle,
                        finishing: false,
                    },
                );
            }
            drop(map);
            crate::metrics::dispatched(
                crate::metrics::ready_wait(&n.attempt),
                n.attempt.attempt_number > 1,
            );
            w = n;
        }
    }

    async fn process_inner(
        self: &Arc<Self>,
        w: Work,
        next: &mut Option<Work>,
    ) -> Result<(), StoreError> {
        let scene = self.scene(w.scene_type_id).await?;
        let worker = self.cfg.worker_id.clone();
        let Some(backend) = self.backends.get(&scene.backend).cloned() else {
            let msg = format!(
                "no `{}` backend runs in this process (available: {})",
                scene.backend,
                self.backends.names().join(", ")
            );
            self.finish(
                Completion::Infra(self.infra_failure(&w, msg, true, 0.0)),
                next,
            )
            .await?;
            self.infra.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let media = match self.media() {
            Ok(m) => m.clone(),
            Err(msg) => {
                let msg = format!("cannot open the media store: {msg}");
                self.finish(
                    Completion::Infra(self.infra_failure(&w, msg, true, 0.0)),
                    next,
                )
                .await?;
                self.infra.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        let output_dir = media.work_dir(w.attempt.segment_id, w.attempt.attempt_number);
        let job = GenerationJob {
            attempt: w.attempt.clone(),
            scene_type: scene.clone(),
            segment_rng_seed: w.segment_rng_seed,
            output_dir,
        };
        let ctl = Control {
            store: self.store.clone(),
            attempt_id: w.attempt.id,
            worker: worker.clone(),
            reserved: Mutex::new(w.attempt.reserved_gpu_seconds),
            last_progress: Mutex::new(-1.0),
        };
        let result = match backend.generate(&job, &ctl).await {
            // Store what was produced (uploading it when the store is not local) before
            // anything is recorded: a reference is only ever written for a stored video.
            Ok(g) => match &g.output_path {
                Some(p) => match media
                    .publish(
                        w.attempt.segment_id,
                        w.attempt.attempt_number,
                        &job.output_dir,
                        p,
                    )
                    .await
                {
                    Ok(reference) => Ok((g, Some(reference))),
                    Err(e) => Err(GenerationError::Infra {
                        message: format!("cannot store the output: {e}"),
                        retriable: true,
                        gpu_seconds: g.gpu_seconds,
                    }),
                },
                None => Ok((g, None)),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok((mut g, reference)) => {
                if external_qa(&scene) {
                    // Scores for this scene type come from the external QA service only.
                    g.verdict = None;
                }
                let needs_builtin =
                    g.verdict.is_none() && !external_qa(&scene) && self.scorer.is_some();
                let done = GenerationDone {
                    attempt_id: w.attempt.id,
                    worker: worker.clone(),
                    backend: backend.name().to_owned(),
                    output_video_path: reference.clone(),
                    gpu_seconds: g.gpu_seconds,
                    verdict: g.verdict.clone(),
                    stopped_by_budget: false,
                    scored_by_worker: needs_builtin,
                };
                let started = Instant::now();
                let scored = done.verdict.is_some();
                let applied = if needs_builtin {
                    self.complete(Completion::Generated(done)).await?
                } else {
                    self.finish(Completion::Generated(done), next).await?
                };
                if scored {
                    crate::metrics::DECISION_LATENCY.observe(started.elapsed());
                }
                if needs_builtin && applied.applied {
                    // QA reads the stored video through the media store (a temporary local
                    // copy when the store is remote), so it scores exactly what is served.
                    let local = match &reference {
                        Some(r) => Some(media.local_copy(r).await),
                        None => None,
                    };
                    let verdict = match &local {
                        Some(Ok(copy)) => {
                            self.scorer
                                .as_ref()
                                .expect("checked")
                                .score(copy.path(), &scene.qa_checks, &scene.qa_commands)
                                .await
                        }
                        // The stored output cannot be read back: an infrastructure problem, retried.
                        Some(Err(e)) => Err(crate::backend::QaUnavailable(format!(
                            "cannot read the output from the media store: {e}"
                        ))),
                        None => Ok(retake_core::QaVerdict {
                            scores: vec![],
                            error: Some("the backend produced no output to score".into()),
                            source: "builtin".into(),
                        }),
                    };
                    let verdict = match verdict {
                        Ok(v) => v,
                        Err(e) => {
                            // Not the video's fault: the attempt is retried as an infrastructure
                            // error (bounded), with the cause on record.
                            tracing::error!(attempt = w.attempt.id, error = %e, "QA cannot run");
                            self.infra.fetch_add(1, Ordering::Relaxed);
                            self.finish(
                                Completion::Infra(self.infra_failure(&w, e.to_string(), true, 0.0)),
                                next,
                            )
                            .await?;
                            return Ok(());
                        }
                    };
                    let started = Instant::now();
                    self.finish(
                        Completion::Verdict {
                            attempt_id: w.attempt.id,
                            verdict,
                            worker: Some(worker.clone()),
                        },
                        next,
                    )
                    .await?;
                    crate::metrics::DECISION_LATENCY.observe(started.elapsed());
                }
            }
            Err(GenerationError::StoppedByBudget { gpu_seconds }) => {
                self.finish(
                    Completion::Generated(GenerationDone {
                        attempt_id: w.attempt.id,
                        worker: worker.clone(),
                        backend: backend.name().to_owned(),
                        output_video_path: None,
                        gpu_seconds,
                        verdict: None,
                        stopped_by_budget: true,
                        scored_by_worker: false,
                    }),
                    next,
                )
                .await?;
            }
            Err(GenerationError::NoServer { message }) => {
                let mut f = self.infra_failure(&w, message, true, 0.0);
                f.reached_server = false;
                f.backoff = self.cfg.server_wait;
                self.finish(Completion::Infra(f), next).await?;
            }
            Err(GenerationError::Infra {
                message,
                retriable,
                gpu_seconds,
            }) => {
                self.infra.fetch_add(1, Ordering::Relaxed);
                crate::metrics::infra_error(backend.name(), None);
                self.finish(
                    Completion::Infra(self.infra_failure(&w, message, retriable, gpu_seconds)),
                    next,
                )
                .await?;
            }
        }
        Ok(())
    }

    fn infra_failure(&self, w: &Work, message: String, retriable: bool, gpu: f64) -> InfraFailure {
        InfraFailure {
            attempt_id: w.attempt.id,
            worker: self.cfg.worker_id.clone(),
            message,
            retriable,
            gpu_seconds_spent: gpu,
            max_infra_retries: self.cfg.max_infra_retries,
            backoff: self.cfg.infra_backoff,
            reached_server: true,
        }
    }
}

/// Aborts background tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// A scene type whose scores come from an external QA service (`backend_config.external_qa`).
fn external_qa(scene: &SceneType) -> bool {
    scene
        .backend_config
        .get("external_qa")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

struct Control<S: Store + ?Sized> {
    store: Arc<S>,
    attempt_id: i64,
    worker: String,
    reserved: Mutex<f64>,
    last_progress: Mutex<f64>,
}

#[async_trait]
impl<S: Store + ?Sized> AttemptControl for Control<S> {
    async fn progress(&self, fraction: f64) {
        {
            // Throttle: one stored update per 5% step.
            let mut last = self.last_progress.lock().unwrap();
            if fraction < 1.0 && fraction - *last < 0.05 {
                return;
            }
            *last = fraction;
        }
        if let Err(e) = self
            .store
            .set_progress(self.attempt_id, &self.worker, fraction)
            .await
        {
            tracing::warn!(error = %e, "progress update failed");
        }
    }

    async fn provenance(&self, value: Value) {
        if let Err(e) = self
            .store
            .set_provenance(self.attempt_id, &self.worker, value)
            .await
        {
            tracing::warn!(error = %e, "provenance update failed");
        }
    }

    async fn server_available(&self) {
        match self.store.end_server_wait().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                attempts = n,
                "a ComfyUI server is healthy: attempts stop waiting for one"
            ),
            Err(e) => tracing::warn!(error = %e, "ending the wait for a server failed"),
        }
    }

    async fn reserve_more(&self, seconds: f64) -> bool {
        match self
            .store
            .extend_reservation(self.attempt_id, &self.worker, seconds)
            .await
        {
            Ok(true) => {
                *self.reserved.lock().unwrap() += seconds;
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "reservation extension failed; stopping the generation");
                false
            }
        }
    }

    fn reserved(&self) -> f64 {
        *self.reserved.lock().unwrap()
    }
}
