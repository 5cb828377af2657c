//! Reading `/api/events` as a browser's EventSource would.

use futures::StreamExt;
use serde_json::Value;
use std::pin::Pin;
use std::time::Duration;

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: Option<String>,
    pub data: Value,
}

pub struct EventStream {
    pub(super) body:
        Pin<Box<dyn futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    pub(super) buf: String,
}

impl EventStream {
    /// The next event (keep-alive comments skipped), or `None` if none arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, self.next_inner())
            .await
            .ok()
            .flatten()
    }

    /// Events until one of kind `kind` arrives (returned with those before it), within `within`.
    pub async fn until(&mut self, kind: &str, within: Duration) -> Vec<SseEvent> {
        let mut out = vec![];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no `{kind}` event within {within:?}; got {out:?}"));
            let done = e.event.as_deref() == Some(kind);
            out.push(e);
            if done {
                return out;
            }
        }
    }

    async fn next_inner(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf[..end].to_owned();
                self.buf.drain(..end + 2);
                let mut ev = SseEvent {
                    id: None,
                    event: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().parse().expect("numeric event id"));
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if ev.event.is_none() && data.is_empty() {
                    continue; // a keep-alive comment
                }
                ev.data = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"));
                return Some(ev);
            }
            let chunk = self.body.next().await?.ok()?;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }
}
