//! The completer: one per process, between the worker tasks and the store (River's
//! `BatchCompleter`, graphile-worker's completion batching).
//!
//! Workers hand it what they finished — generations, QA verdicts, infrastructure failures — and
//! await the answer. It writes them in batches, one transaction each: when idle a batch is the
//! one completion that just arrived, so dispatch latency stays low; under load, completions that
//! arrive while a batch is being written wait and go together in the next one (up to
//! `max_batch`). The store applies a batch set-based and answers each completion separately.
//!
//! A completion that ends its attempt here frees its slot, so it can ask for the slot's next
//! attempt: the same transaction then claims that many attempts for this worker and hands one to
//! each asker (a retry the batch scheduled among them). Under load, one transaction per batch
//! ends attempts and starts the next ones, instead of a completion and a claim each.

use retake_store::{Applied, ClaimRequest, Completion, Store, StoreError, Work};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A completion's outcome, and the attempt its slot takes next (when it asked for one and work
/// was ready). The next attempt is claimed for this worker even when the completion itself
/// failed, so it must be worked on either way.
pub type Answer = (Result<Applied, StoreError>, Option<Work>);

struct Request {
    completion: Completion,
    wants_next: bool,
    reply: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub struct Completer {
    tx: mpsc::UnboundedSender<Request>,
}

/// Who claims with the completions, and for how long.
#[derive(Debug, Clone)]
pub struct ClaimAs {
    pub worker: String,
    pub lease: Duration,
}

/// How long a batch whose write the database refused (disk full, unreachable) waits before it
/// is written again. The completions stay queued here; their leases are kept by the heartbeat.
const RETRY_AFTER_UNAVAILABLE: Duration = Duration::from_millis(500);
/// Writes of one batch the database refused before its callers are told.
const UNAVAILABLE_TRIES: u32 = 20;

impl Completer {
    /// Starts the completer's task on the current runtime. It ends when every handle is dropped.
    pub fn start<S: Store + ?Sized>(store: Arc<S>, max_batch: usize, claim: ClaimAs) -> Completer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx, max_batch.max(1), claim));
        Completer { tx }
    }

    /// Queue one completion and wait until its batch is written. With `wants_next`, the answer
    /// may carry the next attempt for the slot this completion frees, already claimed for this
    /// worker.
    pub async fn complete(&self, completion: Completion, wants_next: bool) -> Answer {
        let (reply, answer) = oneshot::channel();
        if self
            .tx
            .send(Request {
                completion,
                wants_next,
                reply,
            })
            .is_err()
        {
            return (
                Err(StoreError::unavailable("the completer has stopped")),
                None,
            );
        }
        answer.await.unwrap_or_else(|_| {
            (
                Err(StoreError::unavailable(
                    "the completer dropped the completion",
                )),
                None,
            )
        })
    }
}

async fn run<S: Store + ?Sized>(
    store: Arc<S>,
    mut rx: mpsc::UnboundedReceiver<Request>,
    max_batch: usize,
    claim_as: ClaimAs,
) {
    // One batch at a time: while it is written, completions queue up and go together in the
    // next one. Two batches in flight were measured (BENCHMARKS.md): batches halved in size and
    // both stores got slower.
    while let Some(first) = rx.recv().await {
        let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
        batch.push(first);
        // Let the tasks that are ready to run hand in theirs too: completions often arrive
        // together (a claim's attempts end together), and this costs no waiting.
        for _ in 0..2 {
            tokio::task::yield_now().await;
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        write(store.as_ref(), batch, &claim_as).await;
    }
}

/// Write one batch (again while the database refuses it) and answer each of its callers.
async fn write<S: Store + ?Sized>(store: &S, mut batch: Vec<Request>, claim_as: &ClaimAs) {
    let items: Vec<Completion> = batch.iter().map(|r| r.completion.clone()).collect();
    let askers = batch.iter().filter(|r| r.wants_next).count() as u32;
    let claim = (askers > 0).then(|| ClaimRequest {
        worker: claim_as.worker.clone(),
        limit: askers,
        lease: claim_as.lease,
    });
    let size = items.len();
    let started = std::time::Instant::now();
    let mut tries = 0;
    let result = loop {
        tries += 1;
        match store.complete_and_claim(items.clone(), claim.clone()).await {
            Err(e @ StoreError::Unavailable { .. }) if tries < UNAVAILABLE_TRIES => {
                tracing::warn!(error = %e, size, "the database refused a batch of completions; writing it again shortly");
                tokio::time::sleep(RETRY_AFTER_UNAVAILABLE).await;
            }
            r => break r,
        }
    };
    tracing::debug!(
        size,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "completion batch written"
    );
    match result {
        Ok(done) => {
            crate::metrics::completed(&items, &done.applied);
            let mut claimed = done.claimed.into_iter();
            for (req, r) in batch.drain(..).zip(done.applied) {
                let next = if req.wants_next { claimed.next() } else { None };
                if let Err((_, Some(w))) = req.reply.send((r, next)) {
                    // The asker is gone (its task was stopped): the attempt it would have
                    // taken keeps its lease until it expires, then is rescued.
                    tracing::warn!(
                        attempt = w.attempt.id,
                        "claimed work lost its worker task; it returns to the queue when its lease expires"
                    );
                }
            }
        }
        Err(e) => {
            for req in batch.drain(..) {
                let _ = req.reply.send((Err(e.shared()), None));
            }
        }
    }
}
