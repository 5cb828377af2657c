//! `ServerLink`: the pool's live connection to one ComfyUI server — its configuration, health,
//! load (slots in flight), and two background loops: the periodic `/system_stats` health check
//! and the reconnecting WebSocket (capped exponential backoff) whose events are routed to the
//! waiting jobs. It decides nothing about which server gets a job.

use crate::client::ComfyClient;
use crate::pool::{JobSignal, PoolOptions, ServerConfig, ServerStatus, Shared};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

struct LinkState {
    config: ServerConfig,
    healthy: bool,
    last_error: Option<String>,
    in_flight: usize,
    ws_connected: bool,
    /// Numbers the WebSocket's connections: events and the close are told apart by it, so a job
    /// never takes a socket opened after a restart as proof its prompt still runs.
    ws_session: u64,
    removed: bool,
}

pub(crate) struct ServerLink {
    name: String,
    client: ComfyClient,
    state: Mutex<LinkState>,
    /// Wakes the health loop for an immediate check (after a failed request).
    recheck: Notify,
    loops: Mutex<Vec<JoinHandle<()>>>,
}

impl ServerLink {
    pub fn new(config: ServerConfig, client: ComfyClient) -> ServerLink {
        ServerLink {
            name: config.name.clone(),
            client,
            state: Mutex::new(LinkState {
                config,
                healthy: false,
                last_error: None,
                in_flight: 0,
                ws_connected: false,
                ws_session: 0,
                removed: false,
            }),
            recheck: Notify::new(),
            loops: Mutex::new(Vec::new()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &ComfyClient {
        &self.client
    }

    pub fn config(&self) -> ServerConfig {
        self.state.lock().unwrap().config.clone()
    }

    pub fn update(&self, config: ServerConfig) {
        self.state.lock().unwrap().config = config;
    }

    pub fn is_healthy(&self) -> bool {
        self.state.lock().unwrap().healthy
    }

    pub fn ws_connected(&self) -> bool {
        self.state.lock().unwrap().ws_connected
    }

    /// The WebSocket connection open now, if any.
    pub fn open_session(&self) -> Option<u64> {
        let s = self.state.lock().unwrap();
        s.ws_connected.then_some(s.ws_session)
    }

    /// Healthy, not drained, not removed, and configured to run something.
    pub fn accepts_work(&self) -> bool {
        let s = self.state.lock().unwrap();
        s.healthy && !s.config.drained && !s.removed && s.config.max_concurrency > 0
    }

    pub fn has_room(&self) -> bool {
        let s = self.state.lock().unwrap();
        s.in_flight < s.config.max_concurrency
    }

    /// Fraction of the server's slots in use.
    pub fn load(&self) -> f64 {
        let s = self.state.lock().unwrap();
        s.in_flight as f64 / s.config.max_concurrency.max(1) as f64
    }

    /// Takes a slot if one is free and the server still accepts work.
    pub fn try_reserve(&self) -> bool {
        let mut s = self.state.lock().unwrap();
        if s.healthy && !s.config.drained && !s.removed && s.in_flight < s.config.max_concurrency {
            s.in_flight += 1;
            true
        } else {
            false
        }
    }

    /// Takes a slot regardless of capacity: a job attaching to a prompt the server already has.
    pub fn attach(&self) {
        self.state.lock().unwrap().in_flight += 1;
    }

    /// Gives a slot back; a removed server's loops stop once its last job is done.
    pub fn release(&self) {
        let stop = {
            let mut s = self.state.lock().unwrap();
            s.in_flight = s.in_flight.saturating_sub(1);
            s.removed && s.in_flight == 0
        };
        if stop {
            self.abort_loops();
        }
    }

    /// Takes the server out of the pool; its loops stop now, or when its running work is done.
    pub fn remove(&self) {
        let idle = {
            let mut s = self.state.lock().unwrap();
            s.removed = true;
            s.in_flight == 0
        };
        if idle {
            self.abort_loops();
        }
    }

    /// Records a failed request and asks the health loop to check the server now.
    pub fn report_failure(&self, error: &str) {
        {
            let mut s = self.state.lock().unwrap();
            s.healthy = false;
            s.last_error = Some(error.to_owned());
        }
        self.recheck.notify_one();
    }

    pub fn status(&self) -> ServerStatus {
        let s = self.state.lock().unwrap();
        ServerStatus {
            name: self.name.clone(),
            url: s.config.url.clone(),
            healthy: s.healthy,
            drained: s.config.drained,
            in_flight: s.in_flight,
            max_concurrency: s.config.max_concurrency,
            websocket_connected: s.ws_connected,
            last_error: s.last_error.clone(),
        }
    }

    /// One `/system_stats` check; returns whether the server is healthy now.
    pub async fn check_health(&self, options: &PoolOptions) -> bool {
        let result = tokio::time::timeout(options.health_timeout, self.client.system_stats()).await;
        let mut s = self.state.lock().unwrap();
        match result {
            Ok(Ok(_)) => {
                if !s.healthy {
                    tracing::info!(server = %self.name, "ComfyUI server is healthy");
                }
                s.healthy = true;
                // An old failure next to `healthy: true` reads as a current one.
                s.last_error = None;
            }
            Ok(Err(e)) => {
                if s.healthy {
                    tracing::warn!(server = %self.name, error = %e, "ComfyUI server failed its health check");
                }
                s.healthy = false;
                s.last_error = Some(e.to_string());
            }
            Err(_) => {
                s.healthy = false;
                s.last_error = Some(format!(
                    "/system_stats did not answer within {:?}",
                    options.health_timeout
                ));
            }
        }
        s.healthy
    }

    pub fn spawn_loops(self: &Arc<Self>, shared: &Arc<Shared>) {
        let health = tokio::spawn(health_loop(Arc::clone(self), Arc::clone(shared)));
        let events = tokio::spawn(event_loop(Arc::clone(self), Arc::clone(shared)));
        let mut loops = self.loops.lock().unwrap();
        loops.push(health);
        loops.push(events);
    }

    pub fn abort_loops(&self) {
        for handle in self.loops.lock().unwrap().drain(..) {
            handle.abort();
        }
    }

    /// A WebSocket connection opened; returns its session number.
    fn socket_opened(&self) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.ws_connected = true;
        s.ws_session += 1;
        s.ws_session
    }

    fn set_ws_closed(&self, error: String) {
        let mut s = self.state.lock().unwrap();
        s.ws_connected = false;
        s.last_error = Some(error);
    }
}

async fn health_loop(link: Arc<ServerLink>, shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.options.health_interval) => {}
            _ = link.recheck.notified() => {}
        }
        let was_healthy = link.is_healthy();
        if link.check_health(&shared.options).await && !was_healthy {
            shared.capacity.notify_waiters();
        }
    }
}

/// Keeps one WebSocket open to the server under the pool's client id, routing events to jobs.
/// Every (re)connection tells the server's jobs to reconcile with `/history`, since events sent
/// while the socket was down are lost.
async fn event_loop(link: Arc<ServerLink>, shared: Arc<Shared>) {
    let initial = shared.options.reconnect_initial;
    let mut backoff = initial;
    loop {
        match link.client.connect_events().await {
            Ok(mut events) => {
                backoff = initial;
                let session = link.socket_opened();
                tracing::debug!(server = %link.name, session, "WebSocket connected");
                // A server that accepts a socket is probably back: check it now.
                if !link.is_healthy() {
                    link.recheck.notify_one();
                }
                shared.broadcast(&link.name, || JobSignal::Connected);
                while let Some(event) = events.next().await {
                    shared.forward(&link.name, session, event);
                }
                // The server was there until now: a killed process closes its sockets at once.
                let at = Instant::now();
                link.set_ws_closed("WebSocket closed".into());
                tracing::debug!(server = %link.name, session, "WebSocket closed");
                shared.broadcast(&link.name, || JobSignal::Disconnected { session, at });
            }
            Err(e) => {
                link.set_ws_closed(e.to_string());
                if matches!(e, crate::ComfyError::ConnectionRefused { .. }) && link.is_healthy() {
                    link.report_failure(&e.to_string());
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = next_backoff(backoff, shared.options.reconnect_max);
    }
}

/// Doubles the delay up to `max`.
pub(crate) fn next_backoff(current: Duration, max: Duration) -> Duration {
    (current * 2).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut d = Duration::from_millis(100);
        let mut seen = vec![d];
        for _ in 0..8 {
            d = next_backoff(d, Duration::from_secs(5));
            seen.push(d);
        }
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(*seen.last().unwrap(), Duration::from_secs(5));
    }
}
