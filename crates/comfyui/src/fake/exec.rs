//! Executing queued prompts in the fake: the scheduler (up to `concurrency` at once) and one
//! prompt's run, emitting WebSocket messages in ComfyUI's order with epoch-ms timestamps,
//! honouring interrupts and injected faults, writing a real mp4 with ffmpeg, and storing the
//! `/history` entry before the final `executing` with `node: null`.

use super::{nodes, FakeState, Fault, WsOut};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) async fn scheduler(state: Arc<FakeState>) {
    loop {
        loop {
            let task_state = Arc::clone(&state);
            let mut inner = state.inner.lock().unwrap();
            if inner.running.len() >= inner.concurrency || inner.pending.is_empty() {
                break;
            }
            let task = inner.pending.pop_front().expect("checked non-empty");
            let run = Run {
                prompt_id: task.prompt_id.clone(),
                prompt: task.prompt.clone(),
                client_id: task.client_id.clone(),
                extra_data: task.extra_data.clone(),
                number: task.number,
                outputs: task.outputs.clone(),
                fault: task.fault,
                interrupt: Arc::clone(&task.interrupt),
                exec_time: inner.exec_time,
            };
            inner.running.push(task);
            let handle = tokio::spawn(async move { run.execute(task_state).await });
            inner.exec_tasks.retain(|h| !h.is_finished());
            inner.exec_tasks.push(handle.abort_handle());
        }
        state.work.notified().await;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Run {
    prompt_id: String,
    prompt: Value,
    client_id: Option<String>,
    extra_data: Value,
    number: i64,
    outputs: Vec<String>,
    fault: Option<Fault>,
    interrupt: Arc<std::sync::atomic::AtomicBool>,
    exec_time: Duration,
}

enum End {
    Success(Map<String, Value>),
    Error {
        node: String,
        class: String,
        exception_type: String,
        message: String,
    },
    Interrupted {
        node: String,
        class: String,
    },
}

impl Run {
    fn send(&self, state: &FakeState, kind: &str, data: Value) {
        let text = json!({"type": kind, "data": data}).to_string();
        state.send_to(self.client_id.as_deref(), || WsOut::Text(text.clone()));
    }

    /// Sleeps `d` as a node computing, and tells whether an interrupt arrived meanwhile: like
    /// ComfyUI, which checks for one at every sampling step, not only between nodes.
    async fn nap(&self, d: Duration) -> bool {
        let end = tokio::time::Instant::now() + d;
        loop {
            if self.interrupt.load(Ordering::SeqCst) {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= end {
                return false;
            }
            tokio::time::sleep((end - now).min(Duration::from_millis(10))).await;
        }
    }

    fn class_of(&self, node: &str) -> String {
        self.prompt[node]["class_type"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn execute(self, state: Arc<FakeState>) {
        let mut messages: Vec<Value> = Vec::new();
        state.broadcast_status();
        let start = json!({"prompt_id": self.prompt_id, "timestamp": now_ms()});
        messages.push(json!(["execution_start", start]));
        self.send(&state, "execution_start", start);
        if self.fault == Some(Fault::WebSocketDrop) {
            state
                .inner
                .lock()
                .unwrap()
                .refuse_sockets
                .insert(self.prompt_id.clone());
            state.kill_sockets(self.client_id.as_deref());
        }

        let graph = self.prompt.as_object().cloned().unwrap_or_default();
        let order = nodes::execution_order(&graph);
        let sigs = nodes::signatures(&graph, &order);
        let cached: Vec<String> = {
            let inner = state.inner.lock().unwrap();
            order
                .iter()
                .filter(|id| inner.cache.contains_key(&sigs[*id]))
                .cloned()
                .collect()
        };
        let data = json!({"nodes": cached, "prompt_id": self.prompt_id, "timestamp": now_ms()});
        messages.push(json!(["execution_cached", data]));
        self.send(&state, "execution_cached", data);

        let end = self.run_nodes(&state, &order, &sigs, &cached).await;
        let (status_str, outputs) = match end {
            End::Success(outputs) => {
                let data = json!({"prompt_id": self.prompt_id, "timestamp": now_ms()});
                messages.push(json!(["execution_success", data]));
                self.send(&state, "execution_success", data);
                ("success", outputs)
            }
            End::Error {
                node,
                class,
                exception_type,
                message,
            } => {
                let data = json!({
                    "prompt_id": self.prompt_id, "node_id": node, "node_type": class, "executed": [],
                    "exception_message": message, "exception_type": exception_type,
                    "traceback": ["  File \"execution.py\", line 496, in execute\n"],
                    "current_inputs": {}, "current_outputs": {}, "timestamp": now_ms(),
                });
                messages.push(json!(["execution_error", data]));
                self.send(&state, "execution_error", data);
                ("error", Map::new())
            }
            End::Interrupted { node, class } => {
                let data = json!({"prompt_id": self.prompt_id, "node_id": node, "node_type": class, "executed": [], "timestamp": now_ms()});
                messages.push(json!(["execution_interrupted", data]));
                self.send(&state, "execution_interrupted", data);
                ("error", Map::new())
            }
        };
        let entry = json!({
            "prompt": [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs],
            "outputs": outputs,
            "status": {"status_str": status_str, "completed": status_str == "success", "messages": messages},
            "meta": {},
        });
        {
            let mut inner = state.inner.lock().unwrap();
            inner.running.retain(|t| t.prompt_id != self.prompt_id);
            inner.history.retain(|(p, _)| *p != self.prompt_id);
            inner.history.push((self.prompt_id.clone(), entry));
            if self.fault == Some(Fault::MalformedHistory) {
                inner.malformed_history.insert(self.prompt_id.clone());
            }
            inner.refuse_sockets.remove(&self.prompt_id);
        }
        state.broadcast_status();
        self.send(
            &state,
            "executing",
            json!({"node": null, "display_node": null, "prompt_id": self.prompt_id}),
        );
        state.work.notify_one();
    }

    async fn run_nodes(
        &self,
        state: &FakeState,
        order: &[String],
        sigs: &HashMap<String, String>,
        cached: &[String],
    ) -> End {
        let to_run: Vec<&String> = order.iter().filter(|id| !cached.contains(id)).collect();
        let step = self.exec_time / (to_run.len().max(1) as u32);
        let fail_at = order
            .iter()
            .find(|id| self.prompt[id.as_str()]["inputs"].get("seed").is_some())
            .or(order.last())
            .cloned()
            .unwrap_or_default();
        let mut outputs = Map::new();
        for id in order {
            let class = self.class_of(id);
            if cached.contains(id) {
                let ui = state.inner.lock().unwrap().cache.get(&sigs[id]).cloned();
                if let Some(ui) = ui.filter(|v| !v.is_null()) {
                    self.send(state, "executed", json!({"node": id, "display_node": id, "output": ui, "prompt_id": self.prompt_id}));
                    outputs.insert(id.clone(), ui);
                }
                continue;
            }
            if self.interrupt.load(Ordering::SeqCst) {
                return End::Interrupted {
                    node: id.clone(),
                    class,
                };
            }
            let progress = json!({"prompt_id": self.prompt_id, "nodes": {id: {
                "value": 0, "max": 1, "state": "running", "node_id": id, "prompt_id": self.prompt_id,
                "display_node_id": id, "parent_node_id": null, "real_node_id": id}}});
            state.broadcast("progress_state", progress);
            self.send(
                state,
                "executing",
                json!({"node": id, "display_node": id, "prompt_id": self.prompt_id}),
            );
            if *id == fail_at {
                match self.fault {
                    Some(Fault::ExecutionError) => {
                        return End::Error {
                            node: id.clone(),
                            class,
                            exception_type: "RuntimeError".into(),
                            message: "mat1 and mat2 shapes cannot be multiplied (77x768 and 1024x320)".into(),
                        }
                    }
                    Some(Fault::OutOfMemory) => {
                        return End::Error {
                            node: id.clone(),
                            class,
                            exception_type: "torch.OutOfMemoryError".into(),
                            message: "Allocation on device \nThis error means you ran out of memory on your GPU.".into(),
                        }
                    }
                    Some(Fault::Interrupted) => return End::Interrupted { node: id.clone(), class },
                    Some(Fault::Hang) => loop {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        if self.interrupt.load(Ordering::SeqCst) {
                            return End::Interrupted { node: id.clone(), class };
                        }
                    },
                    _ => {}
                }
            }
            if self.prompt[id.as_str()]["inputs"].get("steps").is_some() || *id == fail_at {
                let steps = 3u32;
                for value in 1..=steps {
                    if self.nap(step / steps).await {
                        return End::Interrupted {
                            node: id.clone(),
                            class,
                        };
                    }
                    self.send(state, "progress", json!({"value": value, "max": steps, "prompt_id": self.prompt_id, "node": id}));
                }
                // A latent preview, as a binary frame (event type 1, PNG header).
                state.send_to(self.client_id.as_deref(), || {
                    WsOut::Binary(vec![0, 0, 0, 1, 0, 0, 0, 2, 0x89, b'P', b'N', b'G'])
                });
            } else if self.nap(step).await {
                return End::Interrupted {
                    node: id.clone(),
                    class,
                };
            }
            let ui = if self.outputs.contains(id) {
                match self.save(state, id, &class).await {
                    Ok(ui) => Some(ui),
                    Err(message) => {
                        return End::Error {
                            node: id.clone(),
                            class,
                            exception_type: "RuntimeError".into(),
                            message,
                        };
                    }
                }
            } else {
                None
            };
            if let Some(ui) = &ui {
                self.send(state, "executed", json!({"node": id, "display_node": id, "output": ui, "prompt_id": self.prompt_id}));
                outputs.insert(id.clone(), ui.clone());
            }
            state
                .inner
                .lock()
                .unwrap()
                .cache
                .insert(sigs[id].clone(), ui.unwrap_or(Value::Null));
        }
        if self.fault == Some(Fault::Interrupted) {
            let last = order.last().cloned().unwrap_or_default();
            return End::Interrupted {
                class: self.class_of(&last),
                node: last,
            };
        }
        if self.fault == Some(Fault::EmptyOutputs) {
            outputs.clear();
        }
        End::Success(outputs)
    }

    /// Writes the output node's file and returns its UI output as the real node reports it.
    async fn save(&self, state: &FakeState, id: &str, class: &str) -> Result<Value, String> {
        let inputs = &self.prompt[id]["inputs"];
        let default_prefix = if class == "SaveVideo" {
            "video/ComfyUI"
        } else {
            "ComfyUI"
        };
        let prefix = inputs["filename_prefix"].as_str().unwrap_or(default_prefix);
        let (subfolder, stem) = match prefix.rsplit_once('/') {
            Some((dir, stem)) => (dir.to_owned(), stem.to_owned()),
            None => (String::new(), prefix.to_owned()),
        };
        let counter = {
            let mut inner = state.inner.lock().unwrap();
            inner.file_counter += 1;
            inner.file_counter
        };
        let (filename, image) = match class {
            "SaveImage" => (format!("{stem}_{counter:05}_.png"), true),
            "VHS_VideoCombine" => (format!("{stem}_{counter:05}.mp4"), false),
            _ => (format!("{stem}_{counter:05}_.mp4"), false),
        };
        let path = state.output_path(&subfolder, &filename);
        if self.fault != Some(Fault::ViewNotFound) {
            render(&path, self.seed(), image).await?;
        }
        let file = json!({"filename": filename, "subfolder": subfolder, "type": "output"});
        Ok(match class {
            "VHS_VideoCombine" => {
                let mut f = file;
                f["format"] = json!("video/h264-mp4");
                f["frame_rate"] = json!(8.0);
                f["workflow"] = json!(filename.replace(".mp4", ".png"));
                f["fullpath"] = json!(path.display().to_string());
                json!({"gifs": [f]})
            }
            "SaveVideo" => json!({"images": [file], "animated": [true]}),
            _ => json!({"images": [file]}),
        })
    }

    /// The prompt's seed (`seed` or `noise_seed` anywhere), which drives the noise in the video.
    fn seed(&self) -> u64 {
        self.prompt
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .find_map(|n| {
                n["inputs"]
                    .get("seed")
                    .or_else(|| n["inputs"].get("noise_seed"))
                    .and_then(Value::as_u64)
            })
            .unwrap_or(0)
    }
}

/// A 1 s, 160×120, 8 fps test pattern with seeded noise (or one frame as PNG).
async fn render(path: &Path, seed: u64, image: bool) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| e.to_string())?;
    }
    let noise = format!("noise=alls=30:allf=t:all_seed={}", seed % 2_147_483_647);
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args([
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=8",
        "-t",
        "1",
        "-vf",
        &noise,
    ]);
    if image {
        cmd.args(["-frames:v", "1"]);
    } else {
        cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ]);
    }
    let out = cmd
        .arg(path)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
