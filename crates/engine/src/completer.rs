//! The completer: one per process, between the worker tasks and the store (River's
//! `BatchCompleter`, graphile-worker's completion batching).
//!
//! Workers hand it what they finished — generations, QA verdicts, infrastructure failures — and
//! await the answer. It writes them in batches, one transaction each: when idle a batch is the
//! one completion that just arrived, so dispatch latency stays low; under load, completions that
//! arrive while a batch is being written wait and go together in the next one (up to
//! `max_batch`). The store applies a batch set-based and answers each completion separately.

use retake_store::{Applied, Completion, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<Result<Applied, StoreError>>;

#[derive(Clone)]
pub struct Completer {
    tx: mpsc::UnboundedSender<(Completion, Reply)>,
}

/// How long a batch whose write the database refused (disk full, unreachable) waits before it
/// is written again. The completions stay queued here; their leases are kept by the heartbeat.
const RETRY_AFTER_UNAVAILABLE: Duration = Duration::from_millis(500);
/// Writes of one batch the database refused before its callers are told.
const UNAVAILABLE_TRIES: u32 = 20;

impl Completer {
    /// Starts the completer's task on the current runtime. It ends when every handle is dropped.
    pub fn start<S: Store + ?Sized>(store: Arc<S>, max_batch: usize) -> Completer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx, max_batch.max(1)));
        Completer { tx }
    }

    /// Queue one completion and wait until its batch is written.
    pub async fn complete(&self, c: Completion) -> Result<Applied, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((c, reply))
            .map_err(|_| StoreError::unavailable("the completer has stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("the completer dropped the completion"))?
    }
}

async fn run<S: Store + ?Sized>(
    store: Arc<S>,
    mut rx: mpsc::UnboundedReceiver<(Completion, Reply)>,
    max_batch: usize,
) {
    let mut batch: Vec<(Completion, Reply)> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
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
        let items: Vec<Completion> = batch.iter().map(|(c, _)| c.clone()).collect();
        let size = items.len();
        let started = std::time::Instant::now();
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match store.complete(items.clone()).await {
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
            Ok(results) => {
                crate::metrics::completed(&items, &results);
                for ((_, reply), r) in batch.drain(..).zip(results) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.shared()));
                }
            }
        }
    }
}
