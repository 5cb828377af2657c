//! `FakeComfy`: a stand-in ComfyUI server for tests (feature `fake`). It listens on 127.0.0.1,
//! speaks the real HTTP and WebSocket protocol (also under `/api/…`), validates prompts against
//! its own small `/object_info`, runs them with a configurable execution time and concurrency,
//! writes a real short mp4 per prompt with ffmpeg (the seed drives the noise), records every
//! submitted workflow, and injects faults on demand. It is test infrastructure: no retry logic.

mod exec;
mod nodes;
mod routes;

pub use nodes::{
    core_video_workflow, example_bindings, example_workflow, object_info, seed32_video_workflow,
};

use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::task::{AbortHandle, JoinHandle};

/// A fault the fake injects into the next prompts (or, for `ConnectionRefused`, right away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Stop listening now (like `stop`): every request is refused until `restart`. `times` is
    /// ignored for this fault.
    ConnectionRefused,
    /// Close the submitting client's WebSockets right after `execution_start` and refuse new
    /// ones until the prompt has finished, so its end is only in `/history`.
    WebSocketDrop,
    /// `execution_error` at the sampler (a `RuntimeError`).
    ExecutionError,
    /// `execution_error` with `torch.OutOfMemoryError`.
    OutOfMemory,
    /// `execution_interrupted`, as if someone pressed cancel on the server.
    Interrupted,
    /// `POST /prompt` answers 400 with `node_errors`.
    NodeErrors,
    /// `POST /prompt` answers 200 with a body that is not JSON (the prompt is not queued).
    MalformedPrompt,
    /// `/history/{id}` of the prompt answers 200 with a body that is not JSON.
    MalformedHistory,
    /// Success, but `/history` lists no outputs.
    EmptyOutputs,
    /// Success, but the reported file is not there (`/view` answers 404).
    ViewNotFound,
    /// The prompt starts and never finishes (until interrupted).
    Hang,
}

/// What the fake is running or has queued.
pub(crate) struct Task {
    pub number: i64,
    pub prompt_id: String,
    pub prompt: Value,
    pub client_id: Option<String>,
    /// The posted `extra_data` with `client_id` added, as ComfyUI keeps it.
    pub extra_data: Value,
    pub outputs: Vec<String>,
    pub fault: Option<Fault>,
    pub interrupt: Arc<AtomicBool>,
}

impl Task {
    pub fn queue_entry(&self) -> Value {
        serde_json::json!([
            self.number,
            self.prompt_id,
            self.prompt,
            self.extra_data,
            self.outputs
        ])
    }
}

pub(crate) enum WsOut {
    Text(String),
    Binary(Vec<u8>),
    /// Drop the connection without a close frame.
    Kill,
}

pub(crate) struct Socket {
    pub id: u64,
    pub client_id: String,
    pub tx: tokio::sync::mpsc::UnboundedSender<WsOut>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub exec_time: Duration,
    pub concurrency: usize,
    pub faults: Vec<(Fault, usize)>,
    pub pending: VecDeque<Task>,
    pub running: Vec<Task>,
    pub history: Vec<(String, Value)>,
    pub malformed_history: HashSet<String>,
    pub sockets: Vec<Socket>,
    pub next_socket: u64,
    /// While a `WebSocketDrop` prompt runs: refuse new sockets.
    pub refuse_sockets: HashSet<String>,
    pub submitted: Vec<Value>,
    pub number: i64,
    pub file_counter: u64,
    /// Input signatures seen (the cache) and the UI output of cached output nodes.
    pub cache: HashMap<String, Value>,
    pub exec_tasks: Vec<AbortHandle>,
}

pub(crate) struct FakeState {
    pub name: String,
    pub inner: Mutex<Inner>,
    pub work: Notify,
    pub output_dir: PathBuf,
    pub object_info: Value,
}

impl FakeState {
    fn queue_remaining(inner: &Inner) -> usize {
        inner.pending.len() + inner.running.len()
    }

    /// A `status` message as ComfyUI sends it to every socket when the queue changes.
    pub fn status_message(inner: &Inner, sid: Option<&str>) -> String {
        let mut data = serde_json::json!({"status": {"exec_info": {"queue_remaining": Self::queue_remaining(inner)}}});
        if let Some(sid) = sid {
            data["sid"] = Value::String(sid.to_owned());
        }
        serde_json::json!({"type": "status", "data": data}).to_string()
    }

    pub fn broadcast_status(&self) {
        let inner = self.inner.lock().unwrap();
        let text = Self::status_message(&inner, None);
        for s in &inner.sockets {
            let _ = s.tx.send(WsOut::Text(text.clone()));
        }
    }

    pub fn broadcast(&self, kind: &str, data: Value) {
        let text = serde_json::json!({"type": kind, "data": data}).to_string();
        for s in &self.inner.lock().unwrap().sockets {
            let _ = s.tx.send(WsOut::Text(text.clone()));
        }
    }

    /// Sends to the sockets of `client_id` only, as ComfyUI does for execution messages.
    pub fn send_to(&self, client_id: Option<&str>, out: impl Fn() -> WsOut) {
        let Some(client_id) = client_id else { return };
        for s in self
            .inner
            .lock()
            .unwrap()
            .sockets
            .iter()
            .filter(|s| s.client_id == client_id)
        {
            let _ = s.tx.send(out());
        }
    }

    pub fn kill_sockets(&self, client_id: Option<&str>) {
        let mut inner = self.inner.lock().unwrap();
        inner.sockets.retain(|s| {
            let hit = client_id.is_none_or(|c| c == s.client_id);
            if hit {
                let _ = s.tx.send(WsOut::Kill);
            }
            !hit
        });
    }

    /// The fault for the next prompt, consuming one of its remaining uses.
    pub fn take_fault(&self) -> Option<Fault> {
        let mut inner = self.inner.lock().unwrap();
        let slot = inner.faults.iter_mut().find(|(_, n)| *n > 0)?;
        slot.1 -= 1;
        Some(slot.0)
    }

    pub fn output_path(&self, subfolder: &str, filename: &str) -> PathBuf {
        self.output_dir.join(subfolder).join(filename)
    }
}

struct Listener {
    shutdown: oneshot::Sender<()>,
    serve: JoinHandle<()>,
    scheduler: JoinHandle<()>,
}

/// A fake ComfyUI server. Dropping it stops it.
pub struct FakeComfy {
    state: Arc<FakeState>,
    addr: SocketAddr,
    listener: tokio::sync::Mutex<Option<Listener>>,
    _dir: tempfile::TempDir,
}

impl FakeComfy {
    /// Starts a fake on 127.0.0.1 on a free port, with 50 ms execution time and concurrency 1.
    pub async fn start(name: &str) -> FakeComfy {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// Starts a fake listening on `addr` (the `fake-comfyui` example, for demos).
    pub async fn start_on(name: &str, addr: SocketAddr) -> std::io::Result<FakeComfy> {
        let dir = tempfile::tempdir().expect("temporary directory for fake outputs");
        let state = Arc::new(FakeState {
            name: name.to_owned(),
            inner: Mutex::new(Inner {
                exec_time: Duration::from_millis(50),
                concurrency: 1,
                ..Inner::default()
            }),
            work: Notify::new(),
            output_dir: dir.path().join("output"),
            object_info: nodes::object_info(),
        });
        std::fs::create_dir_all(&state.output_dir).expect("fake output directory");
        let socket = bind(addr)?;
        let addr = socket.local_addr()?;
        let fake = FakeComfy {
            state,
            addr,
            listener: tokio::sync::Mutex::new(None),
            _dir: dir,
        };
        *fake.listener.lock().await = Some(fake.listen(socket));
        Ok(fake)
    }

    fn listen(&self, socket: tokio::net::TcpListener) -> Listener {
        let (shutdown, signal) = oneshot::channel::<()>();
        let app = routes::router(Arc::clone(&self.state));
        let serve = tokio::spawn(async move {
            let _ = axum::serve(socket, app)
                .with_graceful_shutdown(async move {
                    let _ = signal.await;
                })
                .await;
        });
        let scheduler = tokio::spawn(exec::scheduler(Arc::clone(&self.state)));
        Listener {
            shutdown,
            serve,
            scheduler,
        }
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// `http://127.0.0.1:PORT` — the same after `restart`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects `fault` into the next `times` prompts (faults queue up in injection order).
    pub fn inject(&self, fault: Fault, times: usize) {
        if fault == Fault::ConnectionRefused {
            if let Ok(mut listener) = self.listener.try_lock() {
                if let Some(l) = listener.take() {
                    self.shut(l);
                }
            }
            return;
        }
        self.state.inner.lock().unwrap().faults.push((fault, times));
    }

    /// Every workflow posted to `/prompt`, accepted or not, in order.
    pub fn submitted(&self) -> Vec<Value> {
        self.state.inner.lock().unwrap().submitted.clone()
    }

    pub fn set_exec_time(&self, d: Duration) {
        self.state.inner.lock().unwrap().exec_time = d;
    }

    /// How many prompts run at once (ComfyUI itself runs one).
    pub fn set_concurrency(&self, n: usize) {
        self.state.inner.lock().unwrap().concurrency = n.max(1);
        self.state.work.notify_one();
    }

    /// Prompt ids running now.
    pub fn running(&self) -> Vec<String> {
        self.state
            .inner
            .lock()
            .unwrap()
            .running
            .iter()
            .map(|t| t.prompt_id.clone())
            .collect()
    }

    /// Prompt ids waiting in the queue.
    pub fn pending(&self) -> Vec<String> {
        self.state
            .inner
            .lock()
            .unwrap()
            .pending
            .iter()
            .map(|t| t.prompt_id.clone())
            .collect()
    }

    /// Prompt ids in `/history`, oldest first.
    pub fn finished(&self) -> Vec<String> {
        self.state
            .inner
            .lock()
            .unwrap()
            .history
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Where the fake writes outputs (`/view?type=output` serves from here).
    pub fn output_dir(&self) -> &Path {
        &self.state.output_dir
    }

    /// Dies like a ComfyUI process: stops listening, drops every socket, and loses its queue,
    /// running prompts, history and cache. Files already written stay.
    pub async fn stop(&self) {
        if let Some(l) = self.listener.lock().await.take() {
            self.shut(l);
        }
        // Let the graceful shutdown close idle keep-alive connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn shut(&self, l: Listener) {
        let _ = l.shutdown.send(());
        l.scheduler.abort();
        let serve = l.serve;
        tokio::spawn(async move {
            let abort = serve.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), serve)
                .await
                .is_err()
            {
                abort.abort();
            }
        });
        self.state.kill_sockets(None);
        let mut inner = self.state.inner.lock().unwrap();
        for task in inner.exec_tasks.drain(..) {
            task.abort();
        }
        inner.pending.clear();
        inner.running.clear();
        inner.history.clear();
        inner.cache.clear();
        inner.refuse_sockets.clear();
    }

    /// Starts again on the same port with an empty queue and history (as a restarted ComfyUI).
    pub async fn restart(&self) {
        self.stop().await;
        let mut last = None;
        for _ in 0..50 {
            match bind(self.addr) {
                Ok(socket) => {
                    *self.listener.lock().await = Some(self.listen(socket));
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "fake {} cannot listen on {} again: {last:?}",
            self.state.name, self.addr
        );
    }
}

impl Drop for FakeComfy {
    fn drop(&mut self) {
        if let Some(l) = self.listener.get_mut().take() {
            let _ = l.shutdown.send(());
            l.scheduler.abort();
            l.serve.abort();
        }
        self.state.kill_sockets(None);
        for task in self.state.inner.lock().unwrap().exec_tasks.drain(..) {
            task.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}
