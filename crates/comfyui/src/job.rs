//! Running one `PromptJob` on the pool: attaching to a prompt a server already has (resumption),
//! otherwise reserving the least-loaded server and submitting; then following the prompt through
//! WebSocket events, reconciling with `/queue` + `/history` whenever events may have been missed,
//! and turning the end state into a `PromptOutcome` (outputs downloaded, GPU seconds from the
//! server's timestamps) or a classified `ComfyError`. Server choice itself is `Shared::pick`.

use crate::error::{is_out_of_memory, ComfyError};
use crate::link::ServerLink;
use crate::pool::{
    cancel_on, is_ours, owner_mark, JobSignal, JobSlot, PoolOptions, Progress, PromptJob,
    PromptOutcome, Shared,
};
use crate::protocol::{gpu_seconds, HistoryEntry, HistoryOutcome, PromptState, ServerEvent};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

type OnProgress<'a> = &'a (dyn Fn(Progress) + Send + Sync);

pub(crate) async fn run(
    shared: &Arc<Shared>,
    job: PromptJob,
    on_progress: OnProgress<'_>,
) -> Result<PromptOutcome, ComfyError> {
    // A huge timeout (Duration::MAX) means "no limit", not an overflow.
    let deadline = Instant::now()
        .checked_add(job.timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let mut jobs = shared.jobs.lock().unwrap();
        if jobs.contains_key(&job.prompt_id) {
            return Err(ComfyError::AlreadyRunning {
                prompt_id: job.prompt_id.clone(),
            });
        }
        jobs.insert(
            job.prompt_id.clone(),
            JobSlot {
                server: None,
                tx,
                cancelled: false,
            },
        );
    }
    let mut slot = SlotGuard {
        shared,
        prompt_id: job.prompt_id.clone(),
        link: None,
    };

    let mut watch = match find_existing(shared, &job).await? {
        Some((link, state)) => {
            tracing::info!(server = link.name(), prompt_id = %job.prompt_id, "prompt already on the server; not resubmitting");
            link.attach();
            slot.assign(&link);
            on_progress(Progress::Adopted {
                server: link.name().to_owned(),
            });
            let mut watch = Watch::new(shared, link, &job, on_progress, rx, false);
            if let PromptState::Finished(entry) = state {
                return watch.finish(*entry).await;
            }
            // Events sent before the slot was assigned were not routed to us: look again.
            if let Some(result) = watch.reconcile().await {
                return result;
            }
            watch
        }
        None => {
            let link = acquire(shared, &job, deadline, on_progress).await?;
            slot.assign(&link);
            if slot.cancelled() {
                return Err(cancelled_before_start(link.name(), &job.prompt_id));
            }
            let mark = owner_mark(&job.installation, &job.workflow);
            if let Err(e) = link
                .client()
                .submit(&job.prompt_id, &job.workflow, &mark)
                .await
            {
                if e.is_connection_fault() {
                    link.report_failure(&e.to_string());
                    // The post did not get through (or, if it did, the next run under the same
                    // id finds and adopts it): the work has not reached a server.
                    return Err(ComfyError::NoHealthyServer {
                        message: e.to_string(),
                    });
                }
                return Err(e);
            }
            on_progress(Progress::Queued {
                server: link.name().to_owned(),
            });
            if slot.cancelled() {
                let _ = cancel_on(link.client(), &job.prompt_id).await;
            }
            Watch::new(shared, link, &job, on_progress, rx, true)
        }
    };
    watch.follow(deadline).await
}

/// Frees the job's registry entry and server slot however `run` ends (including being dropped).
struct SlotGuard<'a> {
    shared: &'a Shared,
    prompt_id: String,
    link: Option<Arc<ServerLink>>,
}

impl SlotGuard<'_> {
    fn assign(&mut self, link: &Arc<ServerLink>) {
        if let Some(slot) = self.shared.jobs.lock().unwrap().get_mut(&self.prompt_id) {
            slot.server = Some(link.name().to_owned());
        }
        self.link = Some(Arc::clone(link));
    }

    fn cancelled(&self) -> bool {
        self.shared
            .jobs
            .lock()
            .unwrap()
            .get(&self.prompt_id)
            .is_some_and(|s| s.cancelled)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.shared.jobs.lock().unwrap().remove(&self.prompt_id);
        if let Some(link) = &self.link {
            link.release();
        }
        self.shared.capacity.notify_waiters();
    }
}

/// The healthy server that already has the job's prompt queued, running or finished, if any.
/// A prompt under that id that this installation did not submit (another installation's, or
/// another workflow) is never adopted: `ForeignPrompt`.
async fn find_existing(
    shared: &Shared,
    job: &PromptJob,
) -> Result<Option<(Arc<ServerLink>, PromptState)>, ComfyError> {
    let links: Vec<_> = shared
        .links()
        .into_iter()
        .filter(|l| l.is_healthy())
        .collect();
    let found =
        futures::future::join_all(links.iter().map(|l| l.client().find(&job.prompt_id))).await;
    for (link, found) in links.into_iter().zip(found) {
        match found {
            Ok((PromptState::Unknown, _)) => {}
            Ok((state, extra)) if is_ours(&extra, job) => return Ok(Some((link, state))),
            Ok((_, extra)) => {
                tracing::warn!(server = link.name(), prompt_id = %job.prompt_id, extra_data = %extra, "a prompt with our id on the server was not submitted by this installation; not adopting it");
                return Err(ComfyError::ForeignPrompt {
                    server: link.name().to_owned(),
                    prompt_id: job.prompt_id.clone(),
                    message: format!(
                        "its extra_data {extra} does not carry this installation's mark and workflow hash"
                    ),
                });
            }
            Err(e) => {
                tracing::debug!(server = link.name(), error = %e, "could not look the prompt up")
            }
        }
    }
    Ok(None)
}

/// Waits until some server has room and reserves a slot on it.
async fn acquire(
    shared: &Shared,
    job: &PromptJob,
    deadline: Instant,
    on_progress: OnProgress<'_>,
) -> Result<Arc<ServerLink>, ComfyError> {
    let mut rechecked = false;
    let mut told_busy = false;
    loop {
        if shared
            .jobs
            .lock()
            .unwrap()
            .get(&job.prompt_id)
            .is_some_and(|s| s.cancelled)
        {
            return Err(cancelled_before_start("pool", &job.prompt_id));
        }
        let notified = shared.capacity.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match shared.pick(job.exclude_server.as_deref()) {
            Ok(link) => return Ok(link),
            Err(true) if !told_busy => {
                told_busy = true;
                on_progress(Progress::WaitingForSlot);
            }
            Err(true) => {}
            Err(false) if !rechecked => {
                // Health may be stale (a server just came back): check every server once now.
                rechecked = true;
                let links = shared.links();
                futures::future::join_all(links.iter().map(|l| l.check_health(&shared.options)))
                    .await;
                continue;
            }
            Err(false) => {
                let reasons: Vec<String> = shared
                    .links()
                    .iter()
                    .map(|l| l.status())
                    .map(|s| match (s.drained, s.last_error) {
                        (true, _) => format!("{}: drained", s.name),
                        (false, Some(e)) => format!("{}: {e}", s.name),
                        (false, None) => format!("{}: unhealthy", s.name),
                    })
                    .collect();
                let message = if reasons.is_empty() {
                    "no server is configured".into()
                } else {
                    reasons.join("; ")
                };
                return Err(ComfyError::NoHealthyServer { message });
            }
        }
        tokio::select! {
            _ = notified => {}
            // Health changes without a notification (a server failing) are picked up here.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(ComfyError::Timeout {
                    server: "pool".into(),
                    prompt_id: job.prompt_id.clone(),
                    after: job.timeout,
                    gpu_seconds: Some(0.0),
                });
            }
        }
    }
}

fn cancelled_before_start(server: &str, prompt_id: &str) -> ComfyError {
    ComfyError::Interrupted {
        server: server.to_owned(),
        prompt_id: prompt_id.to_owned(),
        message: "cancelled before it ran".into(),
        gpu_seconds: Some(0.0),
    }
}

/// What is known about a prompt while following it on its server.
struct Watch<'a> {
    link: Arc<ServerLink>,
    job: &'a PromptJob,
    on_progress: OnProgress<'a>,
    rx: mpsc::UnboundedReceiver<JobSignal>,
    submitted_at: Option<Instant>,
    started_at: Option<Instant>,
    /// The last moment the server was known to hold the prompt (an event for it, or `/queue`
    /// listing it): a prompt the server lost is charged until here, not until it was noticed.
    alive_at: Instant,
    /// The WebSocket connection that was open when the prompt was last known held: while that
    /// same connection stays open the server is there, still running it (a node may work for
    /// many seconds without an event), so it counts as alive until the connection closes. A
    /// connection opened later (after a restart) proves nothing about the prompt.
    socket: Option<u64>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    ws_cached: BTreeSet<String>,
    last_contact: Instant,
    options: PoolOptions,
}

enum Step {
    Signal(Option<JobSignal>),
    Poll,
    Deadline,
}

impl<'a> Watch<'a> {
    fn new(
        shared: &Shared,
        link: Arc<ServerLink>,
        job: &'a PromptJob,
        on_progress: OnProgress<'a>,
        rx: mpsc::UnboundedReceiver<JobSignal>,
        submitted_now: bool,
    ) -> Self {
        let now = Instant::now();
        Watch {
            socket: link.open_session(),
            link,
            job,
            on_progress,
            rx,
            submitted_at: submitted_now.then_some(now),
            started_at: None,
            alive_at: now,
            start_ms: None,
            end_ms: None,
            ws_cached: BTreeSet::new(),
            last_contact: now,
            options: shared.options.clone(),
        }
    }

    fn server(&self) -> String {
        self.link.name().to_owned()
    }

    fn mark_started(&mut self) {
        if self.started_at.is_none() {
            self.started_at = Some(Instant::now());
            (self.on_progress)(Progress::Started {
                server: self.server(),
            });
        }
    }

    /// GPU time spent so far: the server's timestamps when it reported both, else the time from
    /// the start until the server was last known to hold the prompt — a server that went down
    /// spent nothing on it while it was down.
    fn spent(&self) -> Option<f64> {
        gpu_seconds(self.start_ms, self.end_ms).or_else(|| {
            self.started_at.map(|t| {
                self.alive_until()
                    .saturating_duration_since(t)
                    .as_secs_f64()
            })
        })
    }

    /// The last moment the server is known to have held the prompt, counting the connection it
    /// was last seen on as long as that stays open.
    fn alive_until(&self) -> Instant {
        match self.socket {
            Some(s) if self.link.open_session() == Some(s) => Instant::now(),
            _ => self.alive_at,
        }
    }

    /// The server showed it holds the prompt (an event, or `/queue` listing it).
    fn seen_alive(&mut self, session: Option<u64>) {
        self.last_contact = Instant::now();
        self.alive_at = self.last_contact;
        self.socket = session;
    }

    async fn follow(&mut self, deadline: Instant) -> Result<PromptOutcome, ComfyError> {
        loop {
            let connected = self.link.ws_connected();
            if connected {
                self.last_contact = Instant::now();
            }
            let poll = if connected {
                self.options.poll_interval
            } else {
                self.options.poll_interval_disconnected
            };
            let step = tokio::select! {
                biased;
                // The deadline first: a stream of progress events must not starve it.
                _ = tokio::time::sleep_until(deadline) => Step::Deadline,
                signal = self.rx.recv() => Step::Signal(signal),
                _ = tokio::time::sleep(poll) => Step::Poll,
            };
            let done = match step {
                Step::Signal(Some(JobSignal::Event { event, session })) => {
                    self.seen_alive(Some(session));
                    self.on_event(event).await
                }
                Step::Signal(Some(JobSignal::Connected)) | Step::Poll => self.reconcile().await,
                Step::Signal(Some(JobSignal::Disconnected { session, at })) => {
                    // The connection the prompt was last seen on stayed open until `at`: the
                    // server was there, running it, until then.
                    if self.socket == Some(session) {
                        self.alive_at = self.alive_at.max(at);
                        self.socket = None;
                    }
                    None
                }
                // Not expected (the slot holds the sender), but never spin on a closed channel.
                Step::Signal(None) => {
                    tokio::time::sleep(poll).await;
                    self.reconcile().await
                }
                Step::Signal(Some(JobSignal::Cancelled)) => Some(Err(ComfyError::Interrupted {
                    server: self.server(),
                    prompt_id: self.job.prompt_id.clone(),
                    message: "deleted from the queue before it ran".into(),
                    gpu_seconds: Some(0.0),
                })),
                Step::Deadline => Some(Err(self.time_out().await)),
            };
            if let Some(result) = done {
                return result;
            }
        }
    }

    async fn on_event(&mut self, event: ServerEvent) -> Option<Result<PromptOutcome, ComfyError>> {
        match event {
            ServerEvent::ExecutionStart { timestamp, .. } => {
                self.start_ms = timestamp;
                if let Some(timestamp_ms) = timestamp {
                    (self.on_progress)(Progress::ExecutionStart { timestamp_ms });
                }
                self.mark_started();
            }
            ServerEvent::ExecutionCached { nodes, .. } => self.ws_cached.extend(nodes),
            ServerEvent::Executing { node: Some(_), .. } => self.mark_started(),
            ServerEvent::Progress { value, max, .. } if max > 0.0 => {
                self.mark_started();
                (self.on_progress)(Progress::Percent((100.0 * value / max).clamp(0.0, 100.0)));
            }
            ServerEvent::ExecutionSuccess { timestamp, .. }
            | ServerEvent::ExecutionInterrupted { timestamp, .. } => {
                self.end_ms = timestamp;
            }
            ServerEvent::ExecutionError { failure, .. } => self.end_ms = failure.timestamp,
            // `executing` with no node: finished (success, error or interruption); /history has it.
            ServerEvent::Executing { node: None, .. } => return self.on_finished().await,
            _ => {}
        }
        None
    }

    /// The prompt finished: ComfyUI stores the history entry before announcing it, but allow a
    /// moment for proxies and older servers before falling back to polling.
    async fn on_finished(&mut self) -> Option<Result<PromptOutcome, ComfyError>> {
        for attempt in 0..5u32 {
            match self.link.client().history(&self.job.prompt_id).await {
                Ok(Some(entry)) => return Some(self.finish(entry).await),
                Ok(None) => {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await
                }
                Err(e) if transient(&e) => return None,
                Err(e) => return Some(Err(self.with_spent(e))),
            }
        }
        None
    }

    /// Asks the server where the prompt stands; `Some` once it has ended or is lost.
    async fn reconcile(&mut self) -> Option<Result<PromptOutcome, ComfyError>> {
        let asked_at = Instant::now();
        match self.link.client().lookup(&self.job.prompt_id).await {
            Ok(PromptState::Running) => {
                self.seen_alive(self.link.open_session());
                self.mark_started();
                None
            }
            Ok(PromptState::Pending) => {
                self.seen_alive(self.link.open_session());
                None
            }
            Ok(PromptState::Finished(entry)) => Some(self.finish(*entry).await),
            Ok(PromptState::Unknown) => Some(Err(ComfyError::WebSocketDropped {
                server: self.server(),
                prompt_id: self.job.prompt_id.clone(),
                message: "the server knows the prompt neither in its queue nor in its history (restarted?)".into(),
                gpu_seconds: self.spent(),
            })),
            Err(e) if transient(&e) => {
                if e.is_connection_fault() {
                    self.link.report_failure(&e.to_string());
                    // The server did not answer: an open socket (half-open, say) no longer
                    // counts as it being there after the question was asked.
                    self.alive_at = self.alive_at.max(self.alive_until().min(asked_at));
                    self.socket = None;
                }
                let silent = self.last_contact.elapsed();
                (silent >= self.options.lost_after).then(|| {
                    Err(ComfyError::WebSocketDropped {
                        server: self.server(),
                        prompt_id: self.job.prompt_id.clone(),
                        message: format!("no contact with the server for {silent:.0?}: {e}"),
                        gpu_seconds: self.spent(),
                    })
                })
            }
            Err(e) => Some(Err(self.with_spent(e))),
        }
    }

    /// Turns a `/history` entry into the job's result, downloading outputs on success.
    async fn finish(&mut self, entry: HistoryEntry) -> Result<PromptOutcome, ComfyError> {
        let spent = entry
            .gpu_seconds()
            .or_else(|| gpu_seconds(self.start_ms, self.end_ms))
            .or_else(|| {
                self.started_at
                    .or(self.submitted_at)
                    .map(|t| t.elapsed().as_secs_f64())
            });
        let server = self.server();
        let prompt_id = self.job.prompt_id.clone();
        match entry.outcome.clone() {
            HistoryOutcome::Success => {
                let outputs = self
                    .link
                    .client()
                    .download_outputs(&entry, &self.job.output_dir)
                    .await
                    .map_err(|e| e.with_gpu_seconds(spent))?;
                let cached = entry.fully_cached()
                    || (!entry.outputs.is_empty()
                        && entry
                            .outputs
                            .iter()
                            .all(|f| self.ws_cached.contains(&f.node_id)));
                Ok(PromptOutcome {
                    server,
                    prompt_id,
                    outputs,
                    gpu_seconds: spent.unwrap_or(0.0),
                    cached,
                    adopted: self.submitted_at.is_none(),
                })
            }
            HistoryOutcome::Error(f) => Err(ComfyError::ExecutionError {
                server,
                prompt_id,
                out_of_memory: is_out_of_memory(&f.exception_type, &f.message),
                exception_type: f.exception_type,
                message: f.message,
                node_id: f.node_id,
                node_type: f.node_type,
                gpu_seconds: spent,
            }),
            HistoryOutcome::Interrupted { node_id, .. } => Err(ComfyError::Interrupted {
                server,
                prompt_id,
                message: match node_id {
                    Some(n) => format!("interrupted at node {n}"),
                    None => "interrupted".into(),
                },
                gpu_seconds: spent,
            }),
        }
    }

    /// The time limit passed: take the prompt off the server so it does not hold the GPU.
    async fn time_out(&mut self) -> ComfyError {
        let stop = cancel_on(self.link.client(), &self.job.prompt_id);
        match tokio::time::timeout(Duration::from_secs(10), stop).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(server = %self.server(), error = %e, "could not stop a timed-out prompt")
            }
            Err(_) => {
                tracing::warn!(server = %self.server(), "stopping a timed-out prompt did not finish in time")
            }
        }
        ComfyError::Timeout {
            server: self.server(),
            prompt_id: self.job.prompt_id.clone(),
            after: self.job.timeout,
            gpu_seconds: self.spent(),
        }
    }

    fn with_spent(&self, e: ComfyError) -> ComfyError {
        e.with_gpu_seconds(self.spent())
    }
}

/// Errors that may clear up by themselves (server restarting, proxy hiccup).
fn transient(e: &ComfyError) -> bool {
    e.is_connection_fault() || matches!(e, ComfyError::Http { status, .. } if *status >= 500)
}
