//! `ComfyClient`: the HTTP and WebSocket conversation with ONE ComfyUI server — submitting a
//! prompt (without double-submitting an id the server already has), reading `/queue` and
//! `/history`, downloading outputs through `/view`, interrupting and deleting, health and node
//! info. Every failure becomes a classified `ComfyError` naming the server. It keeps no state about
//! prompts and makes no dispatch decisions; that is `pool`'s job.

use crate::error::ComfyError;
use crate::protocol::{HistoryEntry, OutputFile, PromptState, QueueSnapshot, ServerEvent};
use futures::{SinkExt, StreamExt};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// Per-request limit for small JSON routes; downloads get `DOWNLOAD_TIMEOUT`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct ComfyClient {
    name: String,
    base: Url,
    client_id: String,
    http: reqwest::Client,
}

/// What `submit_once` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// Posted now; `number` is the server's queue number.
    Submitted { number: Option<i64> },
    /// The server already had the id queued or running; nothing was posted.
    AlreadyQueued,
    /// The server already finished the id; nothing was posted.
    AlreadyFinished(Box<HistoryEntry>),
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("building the HTTP client cannot fail without custom TLS settings")
}

impl ComfyClient {
    /// `url` is the server's base address, e.g. `http://10.0.0.5:8188` (a path prefix is kept).
    /// `client_id` must be the id of the WebSocket that should receive this client's events.
    pub fn new(
        name: &str,
        url: &str,
        client_id: &str,
        http: reqwest::Client,
    ) -> Result<Self, ComfyError> {
        let mut base = Url::parse(url).map_err(|e| ComfyError::Unreachable {
            server: name.to_owned(),
            message: format!("invalid server URL {url:?}: {e}"),
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(ComfyClient {
            name: name.to_owned(),
            base,
            client_id: client_id.to_owned(),
            http,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    fn route(&self, route: &str) -> Url {
        self.base.join(route).expect("routes are relative paths")
    }

    pub(crate) fn transport_error(&self, e: &reqwest::Error) -> ComfyError {
        let message = error_chain(e);
        let refused = {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
            let mut found = false;
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<std::io::Error>() {
                    found |= io.kind() == std::io::ErrorKind::ConnectionRefused;
                }
                source = s.source();
            }
            found
        };
        if refused {
            ComfyError::ConnectionRefused {
                server: self.name.clone(),
                message,
            }
        } else {
            ComfyError::Unreachable {
                server: self.name.clone(),
                message,
            }
        }
    }

    fn malformed(&self, route: &str, message: impl Into<String>) -> ComfyError {
        ComfyError::Malformed {
            server: self.name.clone(),
            route: route.to_owned(),
            message: message.into(),
        }
    }

    async fn read_body(
        &self,
        route: &str,
        resp: reqwest::Response,
    ) -> Result<(StatusCode, String), ComfyError> {
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_error(&e))?;
        if !status.is_success() && status != StatusCode::BAD_REQUEST {
            return Err(ComfyError::Http {
                server: self.name.clone(),
                route: route.to_owned(),
                status: status.as_u16(),
                message: snippet(&text),
            });
        }
        Ok((status, text))
    }

    async fn get_json(&self, path: &str) -> Result<Value, ComfyError> {
        let route = &format!("/{path}");
        let resp = self
            .http
            .get(self.route(path))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let (status, text) = self.read_body(route, resp).await?;
        if status == StatusCode::BAD_REQUEST {
            return Err(ComfyError::Http {
                server: self.name.clone(),
                route: route.into(),
                status: 400,
                message: snippet(&text),
            });
        }
        serde_json::from_str(&text)
            .map_err(|e| self.malformed(route, format!("{e}: {}", snippet(&text))))
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, String), ComfyError> {
        let route = &format!("/{path}");
        let resp = self
            .http
            .post(self.route(path))
            .timeout(REQUEST_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        self.read_body(route, resp).await
    }

    /// `GET /system_stats`: the health check.
    pub async fn system_stats(&self) -> Result<Value, ComfyError> {
        let v = self.get_json("system_stats").await?;
        if v.get("system").is_none() {
            return Err(self.malformed("/system_stats", "no \"system\" object"));
        }
        Ok(v)
    }

    /// `GET /object_info`: every installed node class with its inputs.
    pub async fn object_info(&self) -> Result<Value, ComfyError> {
        let v = self.get_json("object_info").await?;
        if !v.is_object() {
            return Err(self.malformed("/object_info", "not a JSON object"));
        }
        Ok(v)
    }

    /// `POST /prompt` with this client's `client_id`, the caller's `prompt_id` and `extra_data`
    /// (an object the server keeps with the prompt and shows in `/queue` and `/history`; `null`
    /// sends none). The server does not de-duplicate ids; use `submit_once` when the id may
    /// already exist.
    pub async fn submit(
        &self,
        prompt_id: &str,
        workflow: &Value,
        extra_data: &Value,
    ) -> Result<Option<i64>, ComfyError> {
        let extra_data = if extra_data.is_object() {
            extra_data.clone()
        } else {
            json!({})
        };
        let body = json!({
            "prompt": workflow,
            "client_id": self.client_id,
            "prompt_id": prompt_id,
            "extra_data": extra_data,
        });
        let (status, text) = self.post("prompt", &body).await?;
        let parsed: Result<Value, _> = serde_json::from_str(&text);
        if status == StatusCode::BAD_REQUEST {
            return match parsed {
                Ok(details)
                    if details.get("error").is_some() || details.get("node_errors").is_some() =>
                {
                    Err(ComfyError::NodeErrors {
                        server: self.name.clone(),
                        message: describe_rejection(&details),
                        details,
                    })
                }
                _ => Err(ComfyError::Http {
                    server: self.name.clone(),
                    route: "/prompt".into(),
                    status: 400,
                    message: snippet(&text),
                }),
            };
        }
        let v =
            parsed.map_err(|e| self.malformed("/prompt", format!("{e}: {}", snippet(&text))))?;
        match v.get("prompt_id").and_then(Value::as_str) {
            Some(id) if id == prompt_id => Ok(v.get("number").and_then(Value::as_i64)),
            Some(other) => Err(self.malformed(
                "/prompt",
                format!("server assigned prompt id {other} instead of {prompt_id}; it is too old to accept client-chosen ids"),
            )),
            None => Err(self.malformed("/prompt", format!("no prompt_id in {}", snippet(&text)))),
        }
    }

    /// Submits unless the server already knows `prompt_id` (queued, running or finished), so a
    /// client resuming after a crash never runs the same attempt twice.
    pub async fn submit_once(
        &self,
        prompt_id: &str,
        workflow: &Value,
        extra_data: &Value,
    ) -> Result<Submission, ComfyError> {
        match self.lookup(prompt_id).await? {
            PromptState::Running | PromptState::Pending => Ok(Submission::AlreadyQueued),
            PromptState::Finished(entry) => Ok(Submission::AlreadyFinished(entry)),
            PromptState::Unknown => Ok(Submission::Submitted {
                number: self.submit(prompt_id, workflow, extra_data).await?,
            }),
        }
    }

    /// `GET /queue`.
    pub async fn queue(&self) -> Result<QueueSnapshot, ComfyError> {
        let v = self.get_json("queue").await?;
        QueueSnapshot::parse(&v).map_err(|e| self.malformed("/queue", e))
    }

    /// `GET /history/{prompt_id}`: `None` while the prompt is unknown or not finished.
    pub async fn history(&self, prompt_id: &str) -> Result<Option<HistoryEntry>, ComfyError> {
        let path = format!("history/{prompt_id}");
        let v = self.get_json(&path).await?;
        HistoryEntry::parse(prompt_id, &v).map_err(|e| self.malformed(&format!("/{path}"), e))
    }

    /// Where `prompt_id` stands. The queue is read before the history: a prompt leaves the queue
    /// and enters the history atomically, so this order cannot miss one that finishes in between.
    pub async fn lookup(&self, prompt_id: &str) -> Result<PromptState, ComfyError> {
        Ok(self.find(prompt_id).await?.0)
    }

    /// `lookup`, with the `extra_data` the prompt was posted with (`null` when unknown), which
    /// tells whose prompt it is.
    pub async fn find(&self, prompt_id: &str) -> Result<(PromptState, Value), ComfyError> {
        let queue = self.queue().await?;
        let extra = || {
            queue
                .extra_data
                .get(prompt_id)
                .cloned()
                .unwrap_or(Value::Null)
        };
        if queue.running.iter().any(|p| p == prompt_id) {
            return Ok((PromptState::Running, extra()));
        }
        if queue.pending.iter().any(|p| p == prompt_id) {
            return Ok((PromptState::Pending, extra()));
        }
        Ok(match self.history(prompt_id).await? {
            Some(entry) => {
                let extra = entry.extra_data.clone();
                (PromptState::Finished(Box::new(entry)), extra)
            }
            None => (PromptState::Unknown, Value::Null),
        })
    }

    /// `POST /interrupt {"prompt_id"}`: stops the prompt at its next node boundary if it is the
    /// one running.
    pub async fn interrupt(&self, prompt_id: &str) -> Result<(), ComfyError> {
        self.post("interrupt", &json!({ "prompt_id": prompt_id }))
            .await
            .map(drop)
    }

    /// `POST /queue {"delete": [...]}`: removes pending prompts.
    pub async fn delete_from_queue(&self, prompt_ids: &[String]) -> Result<(), ComfyError> {
        self.post("queue", &json!({ "delete": prompt_ids }))
            .await
            .map(drop)
    }

    /// Downloads every output of a finished prompt into `dir`, in node order. A file the server
    /// cannot serve (404) is `MissingOutput`.
    pub async fn download_outputs(
        &self,
        entry: &HistoryEntry,
        dir: &Path,
    ) -> Result<Vec<PathBuf>, ComfyError> {
        if entry.outputs.is_empty() {
            return Err(ComfyError::MissingOutput {
                server: self.name.clone(),
                prompt_id: entry.prompt_id.clone(),
                message: "history reports success but lists no output file".into(),
                gpu_seconds: None,
            });
        }
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| self.io_error(dir, e))?;
        let mut paths: Vec<PathBuf> = Vec::new();
        for file in &entry.outputs {
            let base = safe_basename(&file.filename);
            let mut dest = dir.join(&base);
            if paths.contains(&dest) {
                dest = dir.join(format!("{}_{base}", file.node_id));
            }
            self.download(&entry.prompt_id, file, &dest).await?;
            paths.push(dest);
        }
        Ok(paths)
    }

    /// `GET /view?filename=&subfolder=&type=` streamed into `dest` (written to a temporary name
    /// first, so a partial download never looks like an output).
    pub async fn download(
        &self,
        prompt_id: &str,
        file: &OutputFile,
        dest: &Path,
    ) -> Result<(), ComfyError> {
        let mut url = self.route("view");
        url.query_pairs_mut()
            .append_pair("filename", &file.filename)
            .append_pair("subfolder", &file.subfolder)
            .append_pair("type", &file.kind);
        let resp = self
            .http
            .get(url)
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(ComfyError::MissingOutput {
                server: self.name.clone(),
                prompt_id: prompt_id.to_owned(),
                message: format!(
                    "/view answered 404 for {}/{} ({})",
                    file.subfolder, file.filename, file.kind
                ),
                gpu_seconds: None,
            });
        }
        if !status.is_success() {
            return Err(ComfyError::Http {
                server: self.name.clone(),
                route: "/view".into(),
                status: status.as_u16(),
                message: format!("for {}/{}", file.subfolder, file.filename),
            });
        }
        let part = dest.with_file_name(format!(
            ".{}.part",
            dest.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("output")
        ));
        let mut out = tokio::fs::File::create(&part)
            .await
            .map_err(|e| self.io_error(&part, e))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transport_error(&e))?;
            out.write_all(&chunk)
                .await
                .map_err(|e| self.io_error(&part, e))?;
        }
        out.flush().await.map_err(|e| self.io_error(&part, e))?;
        drop(out);
        tokio::fs::rename(&part, dest)
            .await
            .map_err(|e| self.io_error(dest, e))?;
        Ok(())
    }

    fn io_error(&self, path: &Path, e: std::io::Error) -> ComfyError {
        ComfyError::Io {
            server: self.name.clone(),
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The WebSocket address for this client's id: `ws(s)://…/ws?clientId=…`.
    pub fn ws_url(&self) -> String {
        let mut url = self.route("ws");
        let scheme = if self.base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        url.set_scheme(scheme)
            .expect("ws and wss are valid schemes");
        url.query_pairs_mut()
            .append_pair("clientId", &self.client_id);
        url.to_string()
    }

    /// Opens `/ws?clientId=`. Execution events for prompts posted with this client's id arrive
    /// only here.
    pub async fn connect_events(&self) -> Result<EventStream, ComfyError> {
        let url = self.ws_url();
        let (ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url.as_str()))
            .await
            .map_err(|_| ComfyError::Unreachable { server: self.name.clone(), message: "WebSocket handshake timed out".into() })?
            .map_err(|e| {
                let message = e.to_string();
                let refused = matches!(&e, tokio_tungstenite::tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
                if refused {
                    ComfyError::ConnectionRefused { server: self.name.clone(), message }
                } else {
                    ComfyError::Unreachable { server: self.name.clone(), message: format!("WebSocket {url}: {message}") }
                }
            })?;
        Ok(EventStream { ws })
    }
}

/// The event side of `/ws`: text frames parsed, binary preview frames skipped.
pub struct EventStream {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl EventStream {
    /// The next event; `None` when the socket closed or failed (the reason is logged). Frames
    /// that are not protocol JSON are logged and skipped.
    pub async fn next(&mut self) -> Option<ServerEvent> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => match ServerEvent::parse(text.as_str()) {
                    Ok(event) => return Some(event),
                    Err(e) => {
                        tracing::debug!(error = %e, "skipping a WebSocket frame that is not an event")
                    }
                },
                Ok(Message::Ping(payload)) => {
                    let _ = self.ws.send(Message::Pong(payload)).await;
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => {} // binary previews, pongs
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket read failed");
                    return None;
                }
            }
        }
    }
}

fn describe_rejection(body: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(message) = body.pointer("/error/message").and_then(Value::as_str) {
        let details = body
            .pointer("/error/details")
            .and_then(Value::as_str)
            .unwrap_or("");
        parts.push(if details.is_empty() {
            message.to_owned()
        } else {
            format!("{message}: {details}")
        });
    }
    if let Some(nodes) = body.get("node_errors").and_then(Value::as_object) {
        for (node, info) in nodes {
            let class = info
                .get("class_type")
                .and_then(Value::as_str)
                .unwrap_or("?");
            for err in info
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let message = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("invalid");
                let details = err.get("details").and_then(Value::as_str).unwrap_or("");
                parts.push(format!(
                    "node {node} ({class}): {message}{}",
                    if details.is_empty() {
                        String::new()
                    } else {
                        format!(": {details}")
                    }
                ));
            }
        }
    }
    if parts.is_empty() {
        "the server rejected the workflow".into()
    } else {
        parts.join("; ")
    }
}

fn safe_basename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    if base.is_empty() || base == "." || base == ".." {
        "output".into()
    } else {
        base.to_owned()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    if t.len() <= 200 {
        t.to_owned()
    } else {
        let mut end = 200;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &t[..end])
    }
}
