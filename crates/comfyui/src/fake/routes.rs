//! The fake's HTTP and WebSocket routes, shaped like ComfyUI's `server.py` (and mounted again
//! under `/api`). Execution itself is in `exec`.

use super::{nodes, FakeState, Fault, Socket, Task, WsOut};
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type Shared = State<Arc<FakeState>>;

pub(super) fn router(state: Arc<FakeState>) -> Router {
    let routes = || {
        Router::new()
            .route("/prompt", post(submit).get(prompt_info))
            .route("/ws", get(websocket))
            .route("/history", get(history_all).post(history_post))
            .route("/history/{id}", get(history_one))
            .route("/view", get(view))
            .route("/queue", get(queue).post(queue_post))
            .route("/interrupt", post(interrupt))
            .route("/system_stats", get(system_stats))
            .route("/object_info", get(object_info))
            .route("/object_info/{class}", get(object_info_one))
    };
    Router::new()
        .merge(routes())
        .nest("/api", routes())
        .with_state(state)
}

fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

async fn submit(State(state): Shared, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let error = json!({"error": {"type": "invalid_prompt", "message": format!("invalid JSON: {e}"), "details": "", "extra_info": {}}, "node_errors": {}});
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
    };
    let prompt = body.get("prompt").cloned().unwrap_or(Value::Null);
    state.inner.lock().unwrap().submitted.push(prompt.clone());
    let fault = state.take_fault();
    match fault {
        Some(Fault::MalformedPrompt) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"prompt_id\": \"",
            )
                .into_response();
        }
        Some(Fault::NodeErrors) => {
            let id = prompt
                .as_object()
                .and_then(|m| nodes::sorted_ids(m.keys()).into_iter().next())
                .unwrap_or_default();
            let class = prompt[&id]["class_type"].clone();
            let error = json!({
                "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
                "node_errors": {id: {"errors": [{"type": "custom_validation_failed", "message": "Custom validation failed for node", "details": "injected fault", "extra_info": {}}], "dependent_outputs": [], "class_type": class}},
            });
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
        _ => {}
    }
    let outputs = match nodes::validate(&prompt, &state.object_info) {
        Ok(outputs) => outputs,
        Err(error) => return (StatusCode::BAD_REQUEST, Json(error)).into_response(),
    };
    let prompt_id = body
        .get("prompt_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // ComfyUI keeps the posted extra_data with the prompt and adds the client id to it.
    let mut extra_data = body
        .get("extra_data")
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(c) = &client_id {
        extra_data["client_id"] = json!(c);
    }
    let number = {
        let mut inner = state.inner.lock().unwrap();
        let number = inner.number;
        inner.number += 1;
        inner.pending.push_back(Task {
            number,
            prompt_id: prompt_id.clone(),
            prompt,
            client_id,
            extra_data,
            outputs,
            fault,
            interrupt: Arc::new(AtomicBool::new(false)),
        });
        number
    };
    state.broadcast_status();
    state.work.notify_one();
    Json(json!({"prompt_id": prompt_id, "number": number, "node_errors": {}})).into_response()
}

async fn prompt_info(State(state): Shared) -> Json<Value> {
    let inner = state.inner.lock().unwrap();
    Json(json!({"exec_info": {"queue_remaining": inner.pending.len() + inner.running.len()}}))
}

async fn websocket(
    State(state): Shared,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let client_id = q
        .get("clientId")
        .cloned()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if !state.inner.lock().unwrap().refuse_sockets.is_empty() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    ws.on_upgrade(move |socket| serve_socket(state, client_id, socket))
}

async fn serve_socket(state: Arc<FakeState>, client_id: String, mut socket: WebSocket) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (id, hello) = {
        let mut inner = state.inner.lock().unwrap();
        let id = inner.next_socket;
        inner.next_socket += 1;
        inner.sockets.push(Socket {
            id,
            client_id: client_id.clone(),
            tx,
        });
        (id, FakeState::status_message(&inner, Some(&client_id)))
    };
    if socket.send(Message::Text(hello.into())).await.is_ok() {
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(WsOut::Text(text)) => {
                        if socket.send(Message::Text(text.into())).await.is_err() { break; }
                    }
                    Some(WsOut::Binary(bytes)) => {
                        if socket.send(Message::Binary(bytes.into())).await.is_err() { break; }
                    }
                    Some(WsOut::Kill) | None => break,
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    state.inner.lock().unwrap().sockets.retain(|s| s.id != id);
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    max_items: Option<usize>,
}

async fn history_all(State(state): Shared, Query(q): Query<HistoryQuery>) -> Json<Value> {
    let inner = state.inner.lock().unwrap();
    let skip = q
        .max_items
        .map_or(0, |n| inner.history.len().saturating_sub(n));
    let all: serde_json::Map<String, Value> = inner.history.iter().skip(skip).cloned().collect();
    Json(Value::Object(all))
}

async fn history_one(State(state): Shared, Path(id): Path<String>) -> Response {
    let inner = state.inner.lock().unwrap();
    if inner.malformed_history.contains(&id) {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "<html>502 Bad Gateway</html>",
        )
            .into_response();
    }
    match inner.history.iter().find(|(p, _)| *p == id) {
        Some((p, entry)) => Json(json!({ p: entry })).into_response(),
        None => Json(json!({})).into_response(),
    }
}

async fn history_post(State(state): Shared, Json(body): Json<Value>) -> Response {
    let mut inner = state.inner.lock().unwrap();
    if body.get("clear").and_then(Value::as_bool) == Some(true) {
        inner.history.clear();
    }
    if let Some(ids) = body.get("delete").and_then(Value::as_array) {
        inner
            .history
            .retain(|(p, _)| !ids.iter().any(|i| i.as_str() == Some(p)));
    }
    empty_ok()
}

#[derive(serde::Deserialize)]
struct ViewQuery {
    filename: String,
    #[serde(default)]
    subfolder: String,
    #[serde(rename = "type", default = "output_type")]
    kind: String,
}

fn output_type() -> String {
    "output".into()
}

async fn view(State(state): Shared, Query(q): Query<ViewQuery>) -> Response {
    if q.filename.contains("..")
        || q.filename.contains('/')
        || !["output", "temp", "input"].contains(&q.kind.as_str())
    {
        return StatusCode::BAD_REQUEST.into_response();
    }
    if q.subfolder.split(['/', '\\']).any(|part| part == "..") || q.subfolder.starts_with('/') {
        return StatusCode::FORBIDDEN.into_response();
    }
    if q.kind != "output" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = state.output_path(&q.subfolder, &q.filename);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let kind = match path.extension().and_then(|e| e.to_str()) {
                Some("mp4") => "video/mp4",
                Some("webm") => "video/webm",
                Some("png") => "image/png",
                Some("gif") => "image/gif",
                _ => "application/octet-stream",
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, kind)],
                Body::from(bytes),
            )
                .into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn queue(State(state): Shared) -> Json<Value> {
    let inner = state.inner.lock().unwrap();
    let running: Vec<Value> = inner.running.iter().map(Task::queue_entry).collect();
    let pending: Vec<Value> = inner.pending.iter().map(Task::queue_entry).collect();
    Json(json!({"queue_running": running, "queue_pending": pending}))
}

async fn queue_post(State(state): Shared, Json(body): Json<Value>) -> Response {
    {
        let mut inner = state.inner.lock().unwrap();
        if body.get("clear").and_then(Value::as_bool) == Some(true) {
            inner.pending.clear();
        }
        if let Some(ids) = body.get("delete").and_then(Value::as_array) {
            inner
                .pending
                .retain(|t| !ids.iter().any(|i| i.as_str() == Some(&t.prompt_id)));
        }
    }
    state.broadcast_status();
    empty_ok()
}

async fn interrupt(State(state): Shared, body: Bytes) -> Response {
    let target = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("prompt_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let inner = state.inner.lock().unwrap();
    for task in &inner.running {
        if target.as_deref().is_none_or(|t| t == task.prompt_id) {
            task.interrupt.store(true, Ordering::SeqCst);
        }
    }
    empty_ok()
}

async fn system_stats(State(state): Shared) -> Json<Value> {
    Json(json!({
        "system": {
            "os": "posix", "ram_total": 68_719_476_736u64, "ram_free": 34_359_738_368u64,
            "comfyui_version": "0.3.64", "python_version": "3.12.3", "pytorch_version": "2.8.0+cu128",
            "embedded_python": false, "argv": ["main.py", "--listen", "127.0.0.1"], "fake_name": state.name,
        },
        "devices": [{"name": "cuda:0 FakeGPU 24GB", "type": "cuda", "index": 0,
                     "vram_total": 25_769_803_776u64, "vram_free": 23_622_320_128u64,
                     "torch_vram_total": 0, "torch_vram_free": 0}],
    }))
}

async fn object_info(State(state): Shared) -> Json<Value> {
    Json(state.object_info.clone())
}

async fn object_info_one(State(state): Shared, Path(class): Path<String>) -> Json<Value> {
    match state.object_info.get(&class) {
        Some(info) => Json(json!({ class: info })),
        None => Json(json!({})),
    }
}
