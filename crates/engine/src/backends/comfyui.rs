//! The ComfyUI backend: injects the attempt's parameters into the scene type's API-format
//! workflow, runs it on the least-loaded healthy server of the pool, and downloads the output.
//! Server faults come back as infrastructure errors (retried with the same parameters on another
//! server by the engine); a workflow the server refuses (`node_errors`) is not retriable.

use crate::backend::{AttemptControl, Backend, GenerationError, GenerationJob, Generated};
use async_trait::async_trait;
use retake_comfyui::{inject, prompt_id_for, Bindings, ComfyError, ComfyPool, Progress, PromptJob};
use retake_store::Attempt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ComfyBackend {
    pool: Arc<ComfyPool>,
    /// Longest one generation may take before it counts as hung.
    pub timeout: Duration,
}

impl ComfyBackend {
    pub fn new(pool: Arc<ComfyPool>, timeout: Duration) -> Self {
        Self { pool, timeout }
    }

    pub fn pool(&self) -> &Arc<ComfyPool> {
        &self.pool
    }
}

pub fn bindings(map: &std::collections::BTreeMap<String, String>) -> Result<Bindings, String> {
    let mut b = Bindings::new();
    for (param, path) in map {
        b = b.bind(param, path).map_err(|e| format!("{param} → {path}: {e}"))?;
    }
    Ok(b)
}

fn infra(e: &ComfyError) -> GenerationError {
    let message = match e {
        ComfyError::NodeErrors { details, .. } => format!("{e}; node errors: {details}"),
        _ => format!("{} — {e}", e.kind()),
    };
    GenerationError::Infra { message, retriable: e.is_retriable(), gpu_seconds: e.gpu_seconds_spent().unwrap_or(0.0) }
}

#[async_trait]
impl Backend for ComfyBackend {
    fn name(&self) -> &str {
        "comfyui"
    }

    async fn generate(&self, job: &GenerationJob, ctl: &dyn AttemptControl) -> Result<Generated, GenerationError> {
        let scene = &job.scene_type;
        let refused = |m: String| GenerationError::Infra { message: m, retriable: false, gpu_seconds: 0.0 };
        let b = bindings(&scene.parameter_bindings).map_err(refused)?;
        let injected = inject(&scene.workflow_template, &b, &job.attempt.parameters).map_err(|e| refused(e.to_string()))?;
        // One prompt id per try: a rescued attempt (same try) re-attaches to its prompt instead of
        // submitting it again; an infrastructure retry (next try) submits anew.
        let try_number = job.attempt.infra_errors.len() as u32;
        let prompt_id = prompt_id_for(&job.attempt.id.to_string(), try_number);
        let exclude = if try_number > 0 { job.attempt.provenance.get("server").and_then(Value::as_str).map(str::to_owned) } else { None };
        let server = Arc::new(Mutex::new(None::<String>));
        let mut prov = json!({
            "prompt_id": prompt_id,
            "try": try_number,
            "workflow_hash": injected.hash,
            "workflow": injected.prompt,
        });
        ctl.provenance(prov.clone()).await;

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let srv = server.clone();
        let on_progress = move |p: Progress| {
            if let Progress::Queued { server } | Progress::Started { server } = &p {
                *srv.lock().unwrap() = Some(server.clone());
            }
            let _ = tx.send(p);
        };
        let run = self.pool.run(
            PromptJob {
                prompt_id: prompt_id.clone(),
                workflow: injected.prompt.clone(),
                output_dir: job.output_dir.clone(),
                exclude_server: exclude,
                timeout: self.timeout,
            },
            on_progress,
        );
        tokio::pin!(run);
        let started = Instant::now();
        let mut budget_tick = tokio::time::interval(Duration::from_secs(1));
        let mut recorded_server = false;
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(p) = rx.recv() => {
                    match p {
                        Progress::Percent(x) => ctl.progress(x / 100.0).await,
                        Progress::Queued { server } | Progress::Started { server } if !recorded_server => {
                            recorded_server = true;
                            prov["server"] = json!(server);
                            ctl.provenance(prov.clone()).await;
                        }
                        _ => {}
                    }
                }
                _ = budget_tick.tick() => {
                    // Wall time is an upper bound on GPU time: keep the reservation ahead of it.
                    let elapsed = started.elapsed().as_secs_f64();
                    let reserved = ctl.reserved();
                    if elapsed > reserved * 0.9 && !ctl.reserve_more((reserved * 0.5).max(5.0)).await {
                        let _ = self.pool.cancel(&prompt_id).await;
                        return Err(GenerationError::StoppedByBudget { gpu_seconds: elapsed.min(reserved) });
                    }
                }
            }
        };
        let server = server.lock().unwrap().clone();
        match result {
            Ok(outcome) => {
                prov["server"] = json!(outcome.server);
                prov["cached"] = json!(outcome.cached);
                prov["outputs"] = json!(outcome.outputs);
                ctl.provenance(prov).await;
                let output = outcome.outputs.iter().find(|p| is_video(p)).or(outcome.outputs.first()).cloned();
                if output.is_none() {
                    return Err(GenerationError::Infra { message: format!("{}: the workflow produced no output file", outcome.server), retriable: true, gpu_seconds: outcome.gpu_seconds });
                }
                Ok(Generated { output_path: output, gpu_seconds: outcome.gpu_seconds, verdict: None })
            }
            Err(e) => {
                if let Some(s) = e.server().map(str::to_owned).or(server) {
                    prov["server"] = json!(s);
                }
                prov["error"] = json!(e.kind());
                ctl.provenance(prov).await;
                Err(infra(&e))
            }
        }
    }

    async fn cancel(&self, attempt: &Attempt) {
        if let Some(pid) = attempt.provenance.get("prompt_id").and_then(Value::as_str) {
            if let Err(e) = self.pool.cancel(pid).await {
                tracing::warn!(prompt = pid, error = %e, "cancelling the ComfyUI prompt failed");
            }
        }
    }
}

fn is_video(p: &std::path::Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(), Some("mp4" | "webm" | "mov" | "mkv" | "gif"))
}
