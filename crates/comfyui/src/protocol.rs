//! The ComfyUI wire protocol as data: WebSocket events, `/history` entries, `/queue` snapshots and
//! output file references, parsed from JSON. Parsing only; no I/O and no decisions.

use serde_json::Value;
use std::collections::BTreeSet;

/// One text frame from `/ws`, reduced to what a client acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Status {
        queue_remaining: Option<u64>,
        sid: Option<String>,
    },
    ProgressState {
        prompt_id: String,
    },
    ExecutionStart {
        prompt_id: String,
        timestamp: Option<i64>,
    },
    ExecutionCached {
        prompt_id: String,
        nodes: Vec<String>,
        timestamp: Option<i64>,
    },
    /// `node: None` means the prompt finished (after success, error or interruption).
    Executing {
        prompt_id: Option<String>,
        node: Option<String>,
    },
    Progress {
        prompt_id: Option<String>,
        value: f64,
        max: f64,
        node: Option<String>,
    },
    Executed {
        prompt_id: String,
        node: String,
        output: Value,
    },
    ExecutionSuccess {
        prompt_id: String,
        timestamp: Option<i64>,
    },
    ExecutionError {
        prompt_id: String,
        failure: ExecutionFailure,
    },
    ExecutionInterrupted {
        prompt_id: String,
        node_id: Option<String>,
        timestamp: Option<i64>,
    },
    /// A message type this client does not act on (custom nodes send their own).
    Other {
        kind: String,
    },
}

/// The details of an `execution_error`, from the WebSocket or from `/history`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionFailure {
    pub exception_type: String,
    pub message: String,
    pub node_id: Option<String>,
    pub node_type: Option<String>,
    pub timestamp: Option<i64>,
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn ts_of(v: &Value) -> Option<i64> {
    v.get("timestamp")
        .and_then(|t| t.as_i64().or_else(|| t.as_f64().map(|f| f as i64)))
}

impl ExecutionFailure {
    pub fn from_data(data: &Value) -> ExecutionFailure {
        ExecutionFailure {
            exception_type: str_of(data, "exception_type").unwrap_or_else(|| "UnknownError".into()),
            message: str_of(data, "exception_message")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            node_id: str_of(data, "node_id"),
            node_type: str_of(data, "node_type"),
            timestamp: ts_of(data),
        }
    }
}

impl ServerEvent {
    /// Parses a text frame. `Err` only when the frame is not a `{type, data}` JSON object.
    pub fn parse(text: &str) -> Result<ServerEvent, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or("no \"type\" field")?;
        let d = v.get("data").cloned().unwrap_or(Value::Null);
        Ok(Self::from_parts(kind, &d))
    }

    /// Builds an event from a message type and its data (as in `/history` `status.messages`).
    pub fn from_parts(kind: &str, d: &Value) -> ServerEvent {
        let pid = || str_of(d, "prompt_id").unwrap_or_default();
        match kind {
            "status" => ServerEvent::Status {
                queue_remaining: d
                    .pointer("/status/exec_info/queue_remaining")
                    .and_then(Value::as_u64),
                sid: str_of(d, "sid"),
            },
            "progress_state" => ServerEvent::ProgressState { prompt_id: pid() },
            "execution_start" => ServerEvent::ExecutionStart {
                prompt_id: pid(),
                timestamp: ts_of(d),
            },
            "execution_cached" => ServerEvent::ExecutionCached {
                prompt_id: pid(),
                nodes: d
                    .get("nodes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: ts_of(d),
            },
            "executing" => ServerEvent::Executing {
                prompt_id: str_of(d, "prompt_id"),
                node: str_of(d, "node"),
            },
            "progress" => ServerEvent::Progress {
                prompt_id: str_of(d, "prompt_id"),
                value: d.get("value").and_then(Value::as_f64).unwrap_or(0.0),
                max: d.get("max").and_then(Value::as_f64).unwrap_or(0.0),
                node: str_of(d, "node"),
            },
            "executed" => ServerEvent::Executed {
                prompt_id: pid(),
                node: str_of(d, "node").unwrap_or_default(),
                output: d.get("output").cloned().unwrap_or(Value::Null),
            },
            "execution_success" => ServerEvent::ExecutionSuccess {
                prompt_id: pid(),
                timestamp: ts_of(d),
            },
            "execution_error" => ServerEvent::ExecutionError {
                prompt_id: pid(),
                failure: ExecutionFailure::from_data(d),
            },
            "execution_interrupted" => ServerEvent::ExecutionInterrupted {
                prompt_id: pid(),
                node_id: str_of(d, "node_id"),
                timestamp: ts_of(d),
            },
            other => ServerEvent::Other {
                kind: other.to_owned(),
            },
        }
    }

    /// The prompt the event is about, if it names one.
    pub fn prompt_id(&self) -> Option<&str> {
        match self {
            ServerEvent::ProgressState { prompt_id }
            | ServerEvent::ExecutionStart { prompt_id, .. }
            | ServerEvent::ExecutionCached { prompt_id, .. }
            | ServerEvent::Executed { prompt_id, .. }
            | ServerEvent::ExecutionSuccess { prompt_id, .. }
            | ServerEvent::ExecutionError { prompt_id, .. }
            | ServerEvent::ExecutionInterrupted { prompt_id, .. } => Some(prompt_id),
            ServerEvent::Executing { prompt_id, .. } | ServerEvent::Progress { prompt_id, .. } => {
                prompt_id.as_deref()
            }
            ServerEvent::Status { .. } | ServerEvent::Other { .. } => None,
        }
    }
}

/// A file a node reported, fetchable through `/view`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutputFile {
    pub node_id: String,
    pub filename: String,
    pub subfolder: String,
    /// `output`, `temp` or `input`.
    pub kind: String,
}

/// Files in one node's `output` object: `images` (SaveImage, and SaveVideo with `animated`),
/// `gifs` (VideoHelperSuite, even for mp4) and `videos`.
pub fn output_files(node_id: &str, output: &Value) -> Vec<OutputFile> {
    let mut files = Vec::new();
    for key in ["images", "gifs", "videos"] {
        for item in output
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(filename) = item.get("filename").and_then(Value::as_str) else {
                continue;
            };
            files.push(OutputFile {
                node_id: node_id.to_owned(),
                filename: filename.to_owned(),
                subfolder: item
                    .get("subfolder")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                kind: item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("output")
                    .to_owned(),
            });
        }
    }
    files
}

/// How a prompt ended, according to `/history`.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryOutcome {
    Success,
    Error(ExecutionFailure),
    Interrupted {
        node_id: Option<String>,
        timestamp: Option<i64>,
    },
}

/// One prompt's entry in `/history/{prompt_id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub prompt_id: String,
    pub outcome: HistoryOutcome,
    /// Files of kind `output` (or, when a workflow saves only previews, of any kind), by node id.
    pub outputs: Vec<OutputFile>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub cached_nodes: BTreeSet<String>,
    /// The `extra_data` the prompt was posted with (`prompt[3]`: `client_id` and the
    /// submitter's own marks), `null` when the server does not say.
    pub extra_data: Value,
}

impl HistoryEntry {
    /// Parses the body of `/history/{prompt_id}`: `Ok(None)` for `{}` (not finished or unknown).
    pub fn parse(prompt_id: &str, body: &Value) -> Result<Option<HistoryEntry>, String> {
        let obj = body.as_object().ok_or("history is not a JSON object")?;
        let Some(entry) = obj.get(prompt_id) else {
            return Ok(None);
        };
        let entry = entry.as_object().ok_or("history entry is not an object")?;
        let status = entry.get("status").cloned().unwrap_or(Value::Null);
        let mut start_ms = None;
        let mut end_ms = None;
        let mut cached_nodes = BTreeSet::new();
        let mut failure = None;
        let mut interrupted = None;
        for message in status
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(kind), Some(data)) = (message.get(0).and_then(Value::as_str), message.get(1))
            else {
                continue;
            };
            match ServerEvent::from_parts(kind, data) {
                ServerEvent::ExecutionStart { timestamp, .. } => start_ms = timestamp,
                ServerEvent::ExecutionCached { nodes, .. } => cached_nodes.extend(nodes),
                ServerEvent::ExecutionSuccess { timestamp, .. } => end_ms = timestamp,
                ServerEvent::ExecutionError { failure: f, .. } => {
                    end_ms = f.timestamp;
                    failure = Some(f);
                }
                ServerEvent::ExecutionInterrupted {
                    node_id, timestamp, ..
                } => {
                    end_ms = timestamp;
                    interrupted = Some(HistoryOutcome::Interrupted { node_id, timestamp });
                }
                _ => {}
            }
        }
        let status_str = status.get("status_str").and_then(Value::as_str);
        let outcome = if let Some(f) = failure {
            HistoryOutcome::Error(f)
        } else if let Some(i) = interrupted {
            i
        } else if status_str == Some("error") {
            HistoryOutcome::Error(ExecutionFailure {
                exception_type: "UnknownError".into(),
                message: "history reports an error without an execution_error message".into(),
                node_id: None,
                node_type: None,
                timestamp: None,
            })
        } else {
            HistoryOutcome::Success
        };
        let mut all = Vec::new();
        if let Some(outputs) = entry.get("outputs") {
            let outputs = outputs
                .as_object()
                .ok_or("history \"outputs\" is not an object")?;
            for (node, output) in outputs {
                all.extend(output_files(node, output));
            }
        }
        all.sort();
        let saved: Vec<OutputFile> = all.iter().filter(|f| f.kind == "output").cloned().collect();
        let outputs = if saved.is_empty() { all } else { saved };
        Ok(Some(HistoryEntry {
            prompt_id: prompt_id.to_owned(),
            outcome,
            outputs,
            start_ms,
            end_ms,
            cached_nodes,
            extra_data: entry
                .get("prompt")
                .and_then(|p| p.get(3))
                .cloned()
                .unwrap_or(Value::Null),
        }))
    }

    /// Whether every node that produced an output was answered from cache, i.e. no new file was
    /// written for this prompt.
    pub fn fully_cached(&self) -> bool {
        !self.outputs.is_empty()
            && self
                .outputs
                .iter()
                .all(|f| self.cached_nodes.contains(&f.node_id))
    }

    /// Execution time from the server's own timestamps.
    pub fn gpu_seconds(&self) -> Option<f64> {
        gpu_seconds(self.start_ms, self.end_ms)
    }
}

/// `end − start` in seconds, when both epoch-millisecond timestamps are known and ordered.
pub fn gpu_seconds(start_ms: Option<i64>, end_ms: Option<i64>) -> Option<f64> {
    match (start_ms, end_ms) {
        (Some(s), Some(e)) if e >= s => Some((e - s) as f64 / 1000.0),
        _ => None,
    }
}

/// The prompt ids in `/queue`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueSnapshot {
    pub running: Vec<String>,
    pub pending: Vec<String>,
    /// Each listed prompt's `extra_data` (item 3 of a queue entry).
    pub extra_data: std::collections::HashMap<String, Value>,
}

impl QueueSnapshot {
    pub fn parse(body: &Value) -> Result<QueueSnapshot, String> {
        let ids = |key: &str| -> Result<Vec<String>, String> {
            let items = body
                .get(key)
                .and_then(Value::as_array)
                .ok_or(format!("no \"{key}\" list"))?;
            Ok(items
                .iter()
                .filter_map(|item| str_of_index(item, 1))
                .collect())
        };
        let mut extra_data = std::collections::HashMap::new();
        for key in ["queue_running", "queue_pending"] {
            for item in body
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(id), Some(extra)) = (str_of_index(item, 1), item.get(3)) {
                    extra_data.insert(id, extra.clone());
                }
            }
        }
        Ok(QueueSnapshot {
            running: ids("queue_running")?,
            pending: ids("queue_pending")?,
            extra_data,
        })
    }

    pub fn contains(&self, prompt_id: &str) -> bool {
        self.running
            .iter()
            .chain(&self.pending)
            .any(|p| p == prompt_id)
    }
}

fn str_of_index(item: &Value, i: usize) -> Option<String> {
    item.get(i).and_then(Value::as_str).map(str::to_owned)
}

/// Where a prompt id stands on one server.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptState {
    Running,
    Pending,
    Finished(Box<HistoryEntry>),
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_history_with_save_video_and_timestamps() {
        let body = json!({"p1": {
            "prompt": [1, "p1", {}, {}, ["9"]],
            "outputs": {"9": {"images": [{"filename": "a.mp4", "subfolder": "video", "type": "output"}], "animated": [true]},
                        "10": {"images": [{"filename": "prev.png", "subfolder": "", "type": "temp"}]}},
            "status": {"status_str": "success", "completed": true, "messages": [
                ["execution_start", {"prompt_id": "p1", "timestamp": 1000}],
                ["execution_cached", {"nodes": ["4"], "prompt_id": "p1", "timestamp": 1001}],
                ["execution_success", {"prompt_id": "p1", "timestamp": 3500}]]}}});
        let e = HistoryEntry::parse("p1", &body).unwrap().unwrap();
        assert_eq!(e.outcome, HistoryOutcome::Success);
        assert_eq!(e.outputs.len(), 1);
        assert_eq!(e.outputs[0].subfolder, "video");
        assert_eq!(e.gpu_seconds(), Some(2.5));
        assert!(!e.fully_cached());
        assert_eq!(HistoryEntry::parse("p2", &body).unwrap(), None);
    }

    #[test]
    fn parses_events() {
        let e = ServerEvent::parse(r#"{"type":"executing","data":{"node":null,"prompt_id":"x"}}"#)
            .unwrap();
        assert_eq!(
            e,
            ServerEvent::Executing {
                prompt_id: Some("x".into()),
                node: None
            }
        );
        assert!(ServerEvent::parse("nope").is_err());
    }
}
