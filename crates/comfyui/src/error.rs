//! `ComfyError`: every way a generation on a ComfyUI server can fail, classified so the engine can
//! tell an infrastructure fault (retry the same parameters elsewhere) from a broken workflow (stop).
//! Each variant carries the server's name and the server's own words. This module decides nothing
//! about retries beyond `is_retriable`.

use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ComfyError {
    /// Nothing listens on the server's port.
    #[error("{server}: connection refused: {message}")]
    ConnectionRefused { server: String, message: String },

    /// The server could not be reached or dropped the connection mid-request (DNS, reset, TLS,
    /// request timeout).
    #[error("{server}: unreachable: {message}")]
    Unreachable { server: String, message: String },

    /// The server answered with an unexpected HTTP status (a 5xx, a proxy error page).
    #[error("{server}: HTTP {status} from {route}: {message}")]
    Http {
        server: String,
        route: String,
        status: u16,
        message: String,
    },

    /// The WebSocket went away and reconciliation with `/queue` and `/history` could not recover
    /// the prompt (the server restarted, or stayed unreachable).
    #[error("{server}: lost prompt {prompt_id}: {message}")]
    WebSocketDropped {
        server: String,
        prompt_id: String,
        message: String,
        gpu_seconds: Option<f64>,
    },

    /// The prompt ran and a node raised (`execution_error`). `out_of_memory` marks GPU/host
    /// memory exhaustion, which is an infrastructure failure rather than a bad parameter.
    #[error("{server}: {exception_type} in node {} ({}): {message}", node_id.as_deref().unwrap_or("?"), node_type.as_deref().unwrap_or("?"))]
    ExecutionError {
        server: String,
        prompt_id: String,
        exception_type: String,
        message: String,
        out_of_memory: bool,
        node_id: Option<String>,
        node_type: Option<String>,
        gpu_seconds: Option<f64>,
    },

    /// The prompt was interrupted (by `cancel`, a timeout clean-up, or someone at the server) or
    /// deleted from the queue before it ran.
    #[error("{server}: prompt {prompt_id} interrupted: {message}")]
    Interrupted {
        server: String,
        prompt_id: String,
        message: String,
        gpu_seconds: Option<f64>,
    },

    /// `POST /prompt` answered 400: the workflow does not validate on this server. Nothing ran,
    /// and retrying the same workflow cannot help.
    #[error("{server}: workflow rejected: {message}")]
    NodeErrors {
        server: String,
        message: String,
        details: Value,
    },

    /// The server sent something that is not the JSON the protocol promises.
    #[error("{server}: malformed response from {route}: {message}")]
    Malformed {
        server: String,
        route: String,
        message: String,
    },

    /// `/history` says the prompt succeeded, but it lists no output file or a file cannot be
    /// downloaded.
    #[error("{server}: prompt {prompt_id} has no usable output: {message}")]
    MissingOutput {
        server: String,
        prompt_id: String,
        message: String,
        gpu_seconds: Option<f64>,
    },

    /// The job's time limit passed; the prompt was interrupted or removed from the queue.
    #[error("{server}: prompt {prompt_id} timed out after {after:?}")]
    Timeout {
        server: String,
        prompt_id: String,
        after: Duration,
        gpu_seconds: Option<f64>,
    },

    /// No server is healthy, non-drained and able to take the job.
    #[error("no healthy ComfyUI server: {message}")]
    NoHealthyServer { message: String },

    /// The server holds a prompt under the job's id that this installation did not submit (its
    /// `extra_data` names another installation or another workflow). It is never adopted; a
    /// retry under the next id submits afresh.
    #[error("{server}: prompt {prompt_id} on the server is not ours: {message}")]
    ForeignPrompt {
        server: String,
        prompt_id: String,
        message: String,
    },

    /// A second `run` for a prompt id that is already running in this pool.
    #[error("prompt {prompt_id} is already being run by this pool")]
    AlreadyRunning { prompt_id: String },

    /// Writing a downloaded output to the caller's directory failed.
    #[error("{server}: cannot write output {path}: {message}")]
    Io {
        server: String,
        path: String,
        message: String,
    },
}

impl ComfyError {
    /// Whether trying again (with the same parameters, preferably elsewhere) can succeed. Only a
    /// workflow the server rejects outright is final.
    pub fn is_retriable(&self) -> bool {
        !matches!(self, ComfyError::NodeErrors { .. })
    }

    /// Whether the work never reached a server: none was healthy, or the one picked could not
    /// be reached to post it. Such work has not failed; it waits for a server.
    pub fn never_reached_a_server(&self) -> bool {
        matches!(self, ComfyError::NoHealthyServer { .. })
    }

    /// GPU time the failed prompt consumed before it failed, when the server's timestamps (or the
    /// wall clock since it started) tell.
    pub fn gpu_seconds_spent(&self) -> Option<f64> {
        match self {
            ComfyError::WebSocketDropped { gpu_seconds, .. }
            | ComfyError::ExecutionError { gpu_seconds, .. }
            | ComfyError::Interrupted { gpu_seconds, .. }
            | ComfyError::MissingOutput { gpu_seconds, .. }
            | ComfyError::Timeout { gpu_seconds, .. } => *gpu_seconds,
            ComfyError::NodeErrors { .. } => Some(0.0),
            _ => None,
        }
    }

    /// The server the error came from, if it came from one.
    pub fn server(&self) -> Option<&str> {
        match self {
            ComfyError::ConnectionRefused { server, .. }
            | ComfyError::Unreachable { server, .. }
            | ComfyError::Http { server, .. }
            | ComfyError::WebSocketDropped { server, .. }
            | ComfyError::ExecutionError { server, .. }
            | ComfyError::Interrupted { server, .. }
            | ComfyError::NodeErrors { server, .. }
            | ComfyError::Malformed { server, .. }
            | ComfyError::MissingOutput { server, .. }
            | ComfyError::Timeout { server, .. }
            | ComfyError::ForeignPrompt { server, .. }
            | ComfyError::Io { server, .. } => Some(server),
            ComfyError::NoHealthyServer { .. } | ComfyError::AlreadyRunning { .. } => None,
        }
    }

    /// A short machine-readable name of the class, for the store and the UI.
    pub fn kind(&self) -> &'static str {
        match self {
            ComfyError::ConnectionRefused { .. } => "connection_refused",
            ComfyError::Unreachable { .. } => "unreachable",
            ComfyError::Http { .. } => "http_status",
            ComfyError::WebSocketDropped { .. } => "websocket_dropped",
            ComfyError::ExecutionError {
                out_of_memory: true,
                ..
            } => "out_of_memory",
            ComfyError::ExecutionError { .. } => "execution_error",
            ComfyError::Interrupted { .. } => "interrupted",
            ComfyError::NodeErrors { .. } => "node_errors",
            ComfyError::Malformed { .. } => "malformed",
            ComfyError::MissingOutput { .. } => "missing_output",
            ComfyError::Timeout { .. } => "timeout",
            ComfyError::NoHealthyServer { .. } => "no_healthy_server",
            ComfyError::AlreadyRunning { .. } => "already_running",
            ComfyError::ForeignPrompt { .. } => "foreign_prompt",
            ComfyError::Io { .. } => "io",
        }
    }

    /// Fills in the GPU time spent, for variants that carry it and do not know it yet.
    pub(crate) fn with_gpu_seconds(mut self, spent: Option<f64>) -> Self {
        match &mut self {
            ComfyError::WebSocketDropped { gpu_seconds, .. }
            | ComfyError::ExecutionError { gpu_seconds, .. }
            | ComfyError::Interrupted { gpu_seconds, .. }
            | ComfyError::MissingOutput { gpu_seconds, .. }
            | ComfyError::Timeout { gpu_seconds, .. }
                if gpu_seconds.is_none() =>
            {
                *gpu_seconds = spent;
            }
            _ => {}
        }
        self
    }

    /// Whether the fault says the server itself is unwell (so it should be health-checked now).
    pub(crate) fn is_connection_fault(&self) -> bool {
        matches!(
            self,
            ComfyError::ConnectionRefused { .. } | ComfyError::Unreachable { .. }
        )
    }
}

/// Whether an exception reported by `execution_error` is memory exhaustion (CUDA, MPS, host).
pub fn is_out_of_memory(exception_type: &str, message: &str) -> bool {
    let t = exception_type.to_ascii_lowercase();
    let m = message.to_ascii_lowercase();
    t.contains("outofmemory")
        || m.contains("out of memory")
        || m.contains("outofmemory")
        || m.contains("not enough memory")
        || m.contains("allocation on device")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_node_errors_are_final() {
        let e = ComfyError::NodeErrors {
            server: "a".into(),
            message: "bad".into(),
            details: Value::Null,
        };
        assert!(!e.is_retriable());
        let e = ComfyError::Timeout {
            server: "a".into(),
            prompt_id: "p".into(),
            after: Duration::from_secs(1),
            gpu_seconds: Some(1.0),
        };
        assert!(e.is_retriable());
        assert_eq!(e.gpu_seconds_spent(), Some(1.0));
    }

    #[test]
    fn recognises_torch_oom() {
        assert!(is_out_of_memory(
            "torch.OutOfMemoryError",
            "Allocation on device"
        ));
        assert!(is_out_of_memory(
            "RuntimeError",
            "CUDA out of memory. Tried to allocate 2 GiB"
        ));
        assert!(!is_out_of_memory("ValueError", "width must be even"));
    }
}
