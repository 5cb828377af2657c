//! Wake-ups across replicas: one background task per store `LISTEN`s on `retake_work` and
//! `retake_events` and wakes the store's in-process [`Notify`]s. It reconnects (with backoff)
//! when its connection drops, and wakes everyone after each (re)connect because notifications
//! sent while it was away are lost. It never reads or writes data; a waiter's timeout remains
//! the polling fallback.

use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub const WORK_CHANNEL: &str = "retake_work";
pub const EVENTS_CHANNEL: &str = "retake_events";
/// Lets tests find (and kill) the listener's connection.
pub const APPLICATION_NAME: &str = "retake-listener";

/// The store's wake-up signals.
#[derive(Clone, Default)]
pub struct Signals {
    pub work: Arc<Notify>,
    pub events: Arc<Notify>,
}

impl Signals {
    /// Wakes every waiting loop, and leaves a permit for one that is about to wait (as the
    /// SQLite store does), so work queued just before a loop sleeps is not left for the timeout.
    pub fn wake_work(&self) {
        self.work.notify_waiters();
        self.work.notify_one();
    }

    fn wake_all(&self) {
        self.wake_work();
        self.events.notify_waiters();
    }
}

/// Stops the listener task when the last clone of the store goes away.
pub struct ListenerTask(JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects the listener (so a store that returns from `connect` already hears other replicas),
/// then keeps it running in the background. A failed first connection is retried by the task.
pub async fn start(url: &str, signals: Signals) -> ListenerTask {
    let url = listener_url(url);
    let first = subscribe(&url).await;
    if let Err(e) = &first {
        tracing::warn!(error = %e, "PostgreSQL LISTEN failed; waking by polling until it reconnects");
    }
    ListenerTask(tokio::spawn(run(url, signals, first.ok())))
}

async fn subscribe(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(url).await?;
    l.listen_all([WORK_CHANNEL, EVENTS_CHANNEL]).await?;
    Ok(l)
}

async fn run(url: String, signals: Signals, mut listener: Option<PgListener>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut l = match listener.take() {
            Some(l) => l,
            None => match subscribe(&url).await {
                Ok(l) => {
                    tracing::info!("PostgreSQL LISTEN reconnected");
                    l
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "PostgreSQL LISTEN connection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        signals.wake_all();
        loop {
            match l.try_recv().await {
                Ok(Some(n)) => match n.channel() {
                    WORK_CHANNEL => signals.wake_work(),
                    EVENTS_CHANNEL => signals.events.notify_waiters(),
                    _ => {}
                },
                // The connection dropped and `PgListener` re-subscribed on a new one; whatever
                // was sent in between is lost.
                Ok(None) => signals.wake_all(),
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL LISTEN connection lost");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// The store's URL with the listener's `application_name`.
fn listener_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    if url.contains("application_name=") {
        url.to_owned()
    } else {
        format!("{url}{sep}application_name={APPLICATION_NAME}")
    }
}
