//! The ComfyUI backend: injects the attempt's parameters into the scene type's API-format
//! workflow, runs it on the least-loaded healthy server of the pool, and downloads the output.
//! Server faults come back as infrastructure errors (retried with the same parameters on another
//! server by the engine); a workflow the server refuses (`node_errors`) is not retriable.

use super::gpu_clock::{extension, needs_more, GpuClock};
use crate::backend::{AttemptControl, Backend, Generated, GenerationError, GenerationJob};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retake_comfyui::{
    canonical_hash, inject, prompt_id_for, Bindings, ComfyError, ComfyPool, Progress, PromptJob,
};
use retake_store::Attempt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a generation stopped by the budget waits for its server to report what the stopped
/// prompt ran (charged exactly when it does).
const STOP_REPORT_WAIT: Duration = Duration::from_secs(10);

pub struct ComfyBackend {
    pool: Arc<ComfyPool>,
    /// The store's installation id (`Store::installation_id`): part of every prompt id and of
    /// the mark a prompt carries, so installations sharing a server never take each other's.
    installation: String,
    /// Longest one generation may take before it counts as hung.
    pub timeout: Duration,
}

impl ComfyBackend {
    pub fn new(pool: Arc<ComfyPool>, installation: String, timeout: Duration) -> Self {
        Self {
            pool,
            installation,
            timeout,
        }
    }

    pub fn pool(&self) -> &Arc<ComfyPool> {
        &self.pool
    }
}

pub fn bindings(map: &std::collections::BTreeMap<String, String>) -> Result<Bindings, String> {
    let mut b = Bindings::new();
    for (param, path) in map {
        b = b
            .bind(param, path)
            .map_err(|e| format!("{param} → {path}: {e}"))?;
    }
    Ok(b)
}

/// `ran_for`: wall time since the server started the prompt, if it did. Some errors (a malformed
/// `/history`, a download that broke) do not know the GPU time the prompt spent; it ran, so the
/// wall time — an upper bound — is charged rather than nothing.
fn infra(e: &ComfyError, ran_for: Option<f64>) -> GenerationError {
    if e.never_reached_a_server() {
        return GenerationError::NoServer {
            message: format!("{} — {e}", e.kind()),
        };
    }
    let message = match e {
        ComfyError::NodeErrors { details, .. } => format!("{e}; node errors: {details}"),
        _ => format!("{} — {e}", e.kind()),
    };
    let gpu_seconds = e.gpu_seconds_spent().or(ran_for).unwrap_or(0.0);
    GenerationError::Infra {
        message,
        retriable: e.is_retriable(),
        gpu_seconds,
    }
}

/// Gives the output files of an infrastructure retry their own names. ComfyUI answers an
/// identical graph from its cache, replaying the earlier output — a file that may be the very
/// thing that went missing. A different `filename_prefix` makes the save node run again (from
/// cached upstream results: the sampling is not repeated) and write a new file; the generation
/// parameters stay the same.
fn retry_output_names(prompt: &mut Value, try_number: u32) {
    for node in prompt
        .as_object_mut()
        .into_iter()
        .flat_map(|m| m.values_mut())
    {
        if let Some(Value::String(prefix)) = node
            .get_mut("inputs")
            .and_then(|i| i.get_mut("filename_prefix"))
        {
            prefix.push_str(&format!("_retry{try_number}"));
        }
    }
}

#[async_trait]
impl Backend for ComfyBackend {
    fn name(&self) -> &str {
        "comfyui"
    }

    async fn generate(
        &self,
        job: &GenerationJob,
        ctl: &dyn AttemptControl,
    ) -> Result<Generated, GenerationError> {
        let scene = &job.scene_type;
        let refused = |m: String| GenerationError::Infra {
            message: m,
            retriable: false,
            gpu_seconds: 0.0,
        };
        let b = bindings(&scene.parameter_bindings).map_err(refused)?;
        let mut injected = inject(&scene.workflow_template, &b, &job.attempt.parameters)
            .map_err(|e| refused(e.to_string()))?;
        // One prompt id per try: a rescued attempt (same try) re-attaches to its prompt instead of
        // submitting it again; an infrastructure retry (next try) submits anew.
        let try_number = job.attempt.infra_errors.len() as u32;
        if try_number > 0 {
            retry_output_names(&mut injected.prompt, try_number);
            injected.hash = canonical_hash(&injected.prompt);
        }
        let prompt_id = prompt_id_for(&self.installation, &job.attempt.id.to_string(), try_number);
        let exclude = if try_number > 0 {
            job.attempt
                .provenance
                .get("server")
                .and_then(Value::as_str)
                .map(str::to_owned)
        } else {
            None
        };
        let server = Arc::new(Mutex::new(None::<String>));
        let started_at = Arc::new(Mutex::new(None::<Instant>));
        let mut prov = json!({
            "prompt_id": prompt_id,
            "try": try_number,
            "workflow_hash": injected.hash,
            "workflow": injected.prompt,
        });
        ctl.provenance(prov.clone()).await;

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Progress, DateTime<Utc>)>();
        let srv = server.clone();
        let began = started_at.clone();
        let on_progress = move |p: Progress| {
            if let Progress::Queued { server }
            | Progress::Started { server }
            | Progress::Adopted { server } = &p
            {
                *srv.lock().unwrap() = Some(server.clone());
            }
            if let Progress::Started { .. } = &p {
                began.lock().unwrap().get_or_insert_with(Instant::now);
            }
            // When it happened, for the budget clock (the loop below may hear of it later).
            let _ = tx.send((p, Utc::now()));
        };
        let run = self.pool.run(
            PromptJob {
                prompt_id: prompt_id.clone(),
                installation: self.installation.clone(),
                workflow: injected.prompt.clone(),
                output_dir: job.output_dir.clone(),
                exclude_server: exclude,
                timeout: self.timeout,
            },
            on_progress,
        );
        tokio::pin!(run);
        let mut clock = GpuClock::default();
        let mut recorded_server = false;
        let mut found_server = false;
        let result = loop {
            // The next budget check: when the GPU time reaches 90% of the reservation (at least
            // once a second, so an extension by another path or a clock change is seen).
            let until_check = match clock.origin() {
                Some(_) => (ctl.reserved() * 0.9 - clock.elapsed(Utc::now())).clamp(0.01, 1.0),
                None => 1.0,
            };
            tokio::select! {
                r = &mut run => break r,
                Some((p, at)) = rx.recv() => {
                    if !found_server && !matches!(p, Progress::Percent(_)) {
                        // A server is up (ours, or busy with others' work): whatever waited
                        // for one to come back waits for a slot now.
                        found_server = true;
                        ctl.server_available().await;
                    }
                    match p {
                        Progress::Percent(x) => ctl.progress(x / 100.0).await,
                        Progress::Queued { server } => {
                            clock.submitted(at);
                            recorded_server = true;
                            prov["server"] = json!(server);
                            clock.record(&mut prov);
                            ctl.provenance(prov.clone()).await;
                        }
                        Progress::Adopted { server } => {
                            // It may have run for a while before this process saw it: count from
                            // its start as the run that submitted it recorded.
                            clock.adopted(&job.attempt.provenance, &prompt_id, job.attempt.started_at, at);
                            recorded_server = true;
                            prov["server"] = json!(server);
                            prov["adopted"] = json!(true);
                            clock.record(&mut prov);
                            ctl.provenance(prov.clone()).await;
                        }
                        Progress::ExecutionStart { timestamp_ms } => {
                            clock.execution_started(timestamp_ms, at);
                            clock.record(&mut prov);
                            ctl.provenance(prov.clone()).await;
                        }
                        Progress::Started { server } if !recorded_server => {
                            recorded_server = true;
                            prov["server"] = json!(server);
                            ctl.provenance(prov.clone()).await;
                        }
                        _ => {}
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs_f64(until_check)) => {
                    let elapsed = clock.elapsed(Utc::now());
                    let reserved = ctl.reserved();
                    if needs_more(reserved, elapsed) && !ctl.reserve_more(extension(reserved, elapsed)).await {
                        let _ = self.pool.cancel(&prompt_id).await;
                        // Charge what the server reports the stopped prompt ran when it says so.
                        match tokio::time::timeout(STOP_REPORT_WAIT, &mut run).await {
                            // It finished before the stop reached it: a result like any other.
                            Ok(Ok(outcome)) => break Ok(outcome),
                            Ok(Err(e)) => {
                                let gpu_seconds = e.gpu_seconds_spent().unwrap_or(elapsed.min(reserved));
                                return Err(GenerationError::StoppedByBudget { gpu_seconds });
                            }
                            Err(_) => {
                                return Err(GenerationError::StoppedByBudget { gpu_seconds: elapsed.min(reserved) });
                            }
                        }
                    }
                }
            }
        };
        let server = server.lock().unwrap().clone();
        match result {
            Ok(outcome) => {
                prov["server"] = json!(outcome.server);
                prov["cached"] = json!(outcome.cached);
                if outcome.adopted {
                    prov["adopted"] = json!(true);
                }
                clock.record(&mut prov);
                prov["outputs"] = json!(outcome.outputs);
                ctl.provenance(prov).await;
                let output = outcome
                    .outputs
                    .iter()
                    .find(|p| is_video(p))
                    .or(outcome.outputs.first())
                    .cloned();
                if output.is_none() {
                    return Err(GenerationError::Infra {
                        message: format!(
                            "{}: the workflow produced no output file",
                            outcome.server
                        ),
                        retriable: true,
                        gpu_seconds: outcome.gpu_seconds,
                    });
                }
                Ok(Generated {
                    output_path: output,
                    gpu_seconds: outcome.gpu_seconds,
                    verdict: None,
                })
            }
            Err(e) if e.never_reached_a_server() => Err(infra(&e, None)),
            Err(e) => {
                if let Some(s) = e.server().map(str::to_owned).or(server) {
                    prov["server"] = json!(s);
                }
                prov["error"] = json!(e.kind());
                ctl.provenance(prov).await;
                let ran_for = started_at
                    .lock()
                    .unwrap()
                    .map(|t| t.elapsed().as_secs_f64());
                Err(infra(&e, ran_for))
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
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("mp4" | "webm" | "mov" | "mkv" | "gif")
    )
}
