//! `ComfyPool`: the set of ComfyUI servers retake generates on. It owns which servers exist,
//! their health, drain state and load, dispatch of a job to the least-loaded healthy server,
//! finding a prompt id on whichever server has it (crash resumption, cancel), and the registry
//! that routes each server's WebSocket events to the job waiting for them. Watching one job to
//! completion lives in `job`; one server's connection loops live in `link`.

use crate::client::{http_client, ComfyClient};
use crate::error::ComfyError;
use crate::job;
use crate::link::ServerLink;
use crate::protocol::{PromptState, ServerEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// One ComfyUI server as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfig {
    pub name: String,
    pub url: String,
    /// Prompts retake keeps on the server at once (running + queued there).
    #[serde(default = "one")]
    pub max_concurrency: usize,
    /// A drained server takes no new work; what runs there finishes.
    #[serde(default)]
    pub drained: bool,
}

fn one() -> usize {
    1
}

impl ServerConfig {
    pub fn new(name: &str, url: &str, max_concurrency: usize) -> ServerConfig {
        ServerConfig {
            name: name.into(),
            url: url.into(),
            max_concurrency,
            drained: false,
        }
    }
}

/// A server as the pool sees it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub url: String,
    pub healthy: bool,
    pub drained: bool,
    pub in_flight: usize,
    pub max_concurrency: usize,
    pub websocket_connected: bool,
    pub last_error: Option<String>,
}

/// Timings of health checks, reconnection and reconciliation.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub health_interval: Duration,
    pub health_timeout: Duration,
    /// WebSocket reconnection backoff: starts here, doubles, capped at `reconnect_max`.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// How often a running job checks `/queue` + `/history` while its server's socket is up
    /// (a safety net for missed events) and while it is down.
    pub poll_interval: Duration,
    pub poll_interval_disconnected: Duration,
    /// A job whose server cannot be reached for this long is reported lost (`WebSocketDropped`).
    pub lost_after: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            health_interval: Duration::from_secs(10),
            health_timeout: Duration::from_secs(5),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            poll_interval: Duration::from_secs(5),
            poll_interval_disconnected: Duration::from_millis(500),
            lost_after: Duration::from_secs(60),
        }
    }
}

/// One generation to run: an injected workflow under a caller-chosen, stable prompt id.
#[derive(Debug, Clone)]
pub struct PromptJob {
    /// Stable per attempt try (see `prompt_id_for`), so a resumed run finds its earlier submission.
    pub prompt_id: String,
    /// The submitting installation's id. It is written into the prompt's `extra_data` with the
    /// workflow's hash (`owner_mark`), and a prompt found on a server under `prompt_id` is
    /// adopted only when it carries both.
    pub installation: String,
    pub workflow: Value,
    pub output_dir: PathBuf,
    /// Prefer another server (after an infrastructure failure there).
    pub exclude_server: Option<String>,
    /// Limit for the whole call: waiting for capacity, queueing and execution.
    pub timeout: Duration,
}

/// A finished generation with its outputs downloaded.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptOutcome {
    pub server: String,
    pub prompt_id: String,
    pub outputs: Vec<PathBuf>,
    pub gpu_seconds: f64,
    /// Every output node was answered from ComfyUI's cache: no new file was generated.
    pub cached: bool,
    /// The job found its prompt already on the server (a resumption) instead of submitting it.
    pub adopted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Queued {
        server: String,
    },
    Started {
        server: String,
    },
    /// The server's `execution_start` timestamp (ms since the epoch, the server's clock): when
    /// the prompt really began to run there.
    ExecutionStart {
        timestamp_ms: i64,
    },
    /// The prompt was already on `server` (queued, running or finished) under the job's id: the
    /// job re-attached to it instead of submitting it again. It may have run for a while before.
    Adopted {
        server: String,
    },
    /// 0–100, of the node currently reporting progress.
    Percent(f64),
    /// A healthy server exists but every one's slots are taken: the job waits for a free slot
    /// (not for a server to come back). Sent once, before `Queued`.
    WaitingForSlot,
}

/// What a server's connection loop tells the job waiting on it.
#[derive(Debug)]
pub(crate) enum JobSignal {
    /// An event for the job's prompt, from the server's WebSocket connection `session`.
    Event {
        event: ServerEvent,
        session: u64,
    },
    Connected,
    /// The WebSocket connection `session` closed at `at`.
    Disconnected {
        session: u64,
        at: Instant,
    },
    /// Removed from the queue by `cancel` before it ran.
    Cancelled,
}

pub(crate) struct JobSlot {
    pub server: Option<String>,
    pub tx: mpsc::UnboundedSender<JobSignal>,
    pub cancelled: bool,
}

/// State shared by the pool, its jobs and its servers' background loops.
pub(crate) struct Shared {
    pub servers: Mutex<BTreeMap<String, Arc<ServerLink>>>,
    pub jobs: Mutex<HashMap<String, JobSlot>>,
    /// Notified when a slot frees up, a server turns healthy or undrained, or a job is cancelled.
    pub capacity: Notify,
    pub options: PoolOptions,
    pub client_id: String,
    pub http: reqwest::Client,
}

impl Shared {
    /// Routes an event from `server`'s socket to the job it concerns, if that job runs there.
    pub fn forward(&self, server: &str, session: u64, event: ServerEvent) {
        let Some(prompt_id) = event.prompt_id() else {
            return;
        };
        let jobs = self.jobs.lock().unwrap();
        if let Some(slot) = jobs.get(prompt_id) {
            if slot.server.as_deref() == Some(server) {
                let _ = slot.tx.send(JobSignal::Event { event, session });
            }
        }
    }

    /// Tells every job on `server` that its socket came up or went down.
    pub fn broadcast(&self, server: &str, signal: impl Fn() -> JobSignal) {
        let jobs = self.jobs.lock().unwrap();
        for slot in jobs
            .values()
            .filter(|s| s.server.as_deref() == Some(server))
        {
            let _ = slot.tx.send(signal());
        }
    }

    pub fn link(&self, name: &str) -> Option<Arc<ServerLink>> {
        self.servers.lock().unwrap().get(name).cloned()
    }

    pub fn links(&self) -> Vec<Arc<ServerLink>> {
        self.servers.lock().unwrap().values().cloned().collect()
    }

    /// Reserves a slot on the least-loaded healthy, non-drained server with room, preferring
    /// servers other than `exclude`. `Err(true)` when some eligible server exists but all are
    /// full; `Err(false)` when none is eligible at all.
    pub fn pick(&self, exclude: Option<&str>) -> Result<Arc<ServerLink>, bool> {
        let servers = self.servers.lock().unwrap();
        let eligible: Vec<&Arc<ServerLink>> =
            servers.values().filter(|l| l.accepts_work()).collect();
        if eligible.is_empty() {
            return Err(false);
        }
        let others_exist = eligible.iter().any(|l| Some(l.name()) != exclude);
        let candidates = eligible
            .iter()
            .filter(|l| l.has_room())
            .filter(|l| !others_exist || Some(l.name()) != exclude)
            .min_by(|a, b| {
                let (la, lb) = (a.load(), b.load());
                la.partial_cmp(&lb)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.name().cmp(b.name()))
            });
        match candidates {
            Some(link) if link.try_reserve() => Ok(Arc::clone(link)),
            _ => Err(true),
        }
    }
}

/// The pool of ComfyUI servers. Share it with `Arc`; dropping it stops its background loops.
pub struct ComfyPool {
    shared: Arc<Shared>,
}

impl ComfyPool {
    /// Creates the pool, health-checks every server once and opens their WebSockets.
    pub async fn new(servers: Vec<ServerConfig>, options: PoolOptions) -> ComfyPool {
        let shared = Arc::new(Shared {
            servers: Mutex::new(BTreeMap::new()),
            jobs: Mutex::new(HashMap::new()),
            capacity: Notify::new(),
            options,
            client_id: uuid::Uuid::new_v4().to_string(),
            http: http_client(),
        });
        let pool = ComfyPool { shared };
        pool.set_servers(servers).await;
        pool
    }

    /// Replaces the server list: new names are added (health-checked before this returns),
    /// missing names are removed (running work finishes, nothing new is sent), and the
    /// concurrency and drain flag of the others are updated in place.
    pub async fn set_servers(&self, configs: Vec<ServerConfig>) {
        let mut added = Vec::new();
        {
            let mut servers = self.shared.servers.lock().unwrap();
            let wanted: BTreeMap<&str, &ServerConfig> =
                configs.iter().map(|c| (c.name.as_str(), c)).collect();
            servers.retain(|name, link| {
                let keep = wanted
                    .get(name.as_str())
                    .is_some_and(|c| c.url == link.config().url);
                if !keep {
                    link.remove();
                }
                keep
            });
            for config in &configs {
                if let Some(link) = servers.get(&config.name) {
                    link.update(config.clone());
                    continue;
                }
                let client = match ComfyClient::new(
                    &config.name,
                    &config.url,
                    &self.shared.client_id,
                    self.shared.http.clone(),
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(server = %config.name, error = %e, "ignoring a server with an invalid URL");
                        continue;
                    }
                };
                let link = Arc::new(ServerLink::new(config.clone(), client));
                servers.insert(config.name.clone(), Arc::clone(&link));
                added.push(link);
            }
        }
        futures::future::join_all(added.iter().map(|l| l.check_health(&self.shared.options))).await;
        for link in added {
            link.spawn_loops(&self.shared);
        }
        self.shared.capacity.notify_waiters();
    }

    /// Drains (or undrains) one server. Returns false if no server has that name.
    pub fn set_drained(&self, name: &str, drained: bool) -> bool {
        let Some(link) = self.shared.link(name) else {
            return false;
        };
        let mut config = link.config();
        config.drained = drained;
        link.update(config);
        self.shared.capacity.notify_waiters();
        true
    }

    /// Runs one job to completion on some server and downloads its outputs. If a server already
    /// has `job.prompt_id` (queued, running or finished — a resumption after a crash), the job
    /// attaches to it instead of submitting again.
    pub async fn run(
        &self,
        job: PromptJob,
        on_progress: impl Fn(Progress) + Send + Sync + 'static,
    ) -> Result<PromptOutcome, ComfyError> {
        job::run(&self.shared, job, &on_progress).await
    }

    /// Stops a prompt on whichever server has it: interrupts it if running, deletes it from the
    /// queue if pending. A job still waiting for capacity in this pool is abandoned. Cancelling
    /// an unknown or finished prompt does nothing.
    pub async fn cancel(&self, prompt_id: &str) -> Result<(), ComfyError> {
        let assigned = {
            let mut jobs = self.shared.jobs.lock().unwrap();
            match jobs.get_mut(prompt_id) {
                Some(slot) if slot.server.is_none() => {
                    slot.cancelled = true;
                    let _ = slot.tx.send(JobSignal::Cancelled);
                    drop(jobs);
                    self.shared.capacity.notify_waiters();
                    return Ok(());
                }
                Some(slot) => {
                    // Seen by a job that is between reserving a server and posting the prompt.
                    slot.cancelled = true;
                    slot.server.clone()
                }
                None => None,
            }
        };
        let links = match assigned.and_then(|s| self.shared.link(&s)) {
            Some(link) => vec![link],
            None => self.shared.links(),
        };
        let mut last_error = None;
        for link in links {
            match cancel_on(link.client(), prompt_id).await {
                Ok(CancelResult::Deleted) => {
                    if let Some(slot) = self.shared.jobs.lock().unwrap().get(prompt_id) {
                        let _ = slot.tx.send(JobSignal::Cancelled);
                    }
                    return Ok(());
                }
                Ok(CancelResult::Interrupted) => return Ok(()),
                Ok(CancelResult::NotThere) => {}
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `/object_info` from the first healthy server that answers.
    pub async fn object_info(&self) -> Result<Value, ComfyError> {
        let mut last_error = None;
        for link in self.shared.links().into_iter().filter(|l| l.is_healthy()) {
            match link.client().object_info().await {
                Ok(info) => return Ok(info),
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        Err(ComfyError::NoHealthyServer {
            message: last_error.unwrap_or_else(|| "no server is healthy".into()),
        })
    }

    /// Every configured server with its health, drain state and load.
    pub fn servers(&self) -> Vec<ServerStatus> {
        self.shared.links().iter().map(|l| l.status()).collect()
    }

    /// Whether a `run` for `prompt_id` is in progress in this pool (waiting, queued or running).
    pub fn is_running(&self, prompt_id: &str) -> bool {
        self.shared.jobs.lock().unwrap().contains_key(prompt_id)
    }

    /// The WebSocket client id this pool posts prompts under.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }
}

impl Drop for ComfyPool {
    fn drop(&mut self) {
        for link in self.shared.links() {
            link.abort_loops();
        }
    }
}

pub(crate) enum CancelResult {
    Interrupted,
    Deleted,
    NotThere,
}

/// Interrupts `prompt_id` if it runs on this server, or deletes it if it is queued there.
pub(crate) async fn cancel_on(
    client: &ComfyClient,
    prompt_id: &str,
) -> Result<CancelResult, ComfyError> {
    match client.lookup(prompt_id).await? {
        PromptState::Running => {
            client.interrupt(prompt_id).await?;
            Ok(CancelResult::Interrupted)
        }
        PromptState::Pending => {
            client.delete_from_queue(&[prompt_id.to_owned()]).await?;
            // It may have started between the lookup and the delete.
            if let PromptState::Running = client.lookup(prompt_id).await? {
                client.interrupt(prompt_id).await?;
                return Ok(CancelResult::Interrupted);
            }
            Ok(CancelResult::Deleted)
        }
        PromptState::Finished(_) | PromptState::Unknown => Ok(CancelResult::NotThere),
    }
}

/// A stable prompt id for one try of one attempt of one installation: UUIDv5 of
/// `"retake:<installation>:attempt:<id>:<try>"`, so a restarted engine derives the same id and
/// finds its earlier submission, while another installation (a recreated database, staging next
/// to production) sharing the server derives other ids for its own attempt ids.
pub fn prompt_id_for(installation: &str, attempt_id: &str, try_number: u32) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("retake:{installation}:attempt:{attempt_id}:{try_number}").as_bytes(),
    )
    .to_string()
}

/// The `extra_data` retake posts a prompt with: who submitted it and what. ComfyUI keeps it with
/// the prompt (`/queue` entries and `/history` `prompt[3]`).
pub fn owner_mark(installation: &str, workflow: &Value) -> Value {
    serde_json::json!({"retake": {
        "installation": installation,
        "workflow_hash": crate::workflow::canonical_hash(workflow),
    }})
}

/// Whether a prompt found on a server with this `extra_data` is the one `job` submitted: the
/// same installation and the same injected workflow.
pub fn is_ours(extra_data: &Value, job: &PromptJob) -> bool {
    let mark = owner_mark(&job.installation, &job.workflow);
    extra_data.get("retake") == mark.get("retake")
}
