//! The fake speaks ComfyUI's protocol: event order, `/api` prefix, edge answers of the routes.

use crate::helpers::*;
use retake_comfyui::client::http_client;
use retake_comfyui::fake::FakeComfy;
use retake_comfyui::{ComfyClient, ServerConfig, ServerEvent};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_comfyuis_order_for_the_submitting_client_only() {
    let fake = FakeComfy::start("gpu-a").await;
    let client = ComfyClient::new("gpu-a", &fake.url(), "client-1", http_client()).unwrap();
    let bystander = ComfyClient::new("gpu-a", &fake.url(), "client-2", http_client()).unwrap();
    let mut events = client.connect_events().await.unwrap();
    let mut other = bystander.connect_events().await.unwrap();
    client
        .submit("ordered", &workflow(3, 7.0), &Value::Null)
        .await
        .unwrap();

    let mut kinds = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(15), events.next())
        .await
        .unwrap()
    {
        let kind = match &event {
            ServerEvent::Status { .. } => "status",
            ServerEvent::ProgressState { .. } => "progress_state",
            ServerEvent::ExecutionStart { timestamp, .. } => {
                assert!(
                    timestamp.is_some_and(|t| t > 1_600_000_000_000),
                    "epoch milliseconds"
                );
                "execution_start"
            }
            ServerEvent::ExecutionCached { .. } => "execution_cached",
            ServerEvent::Executing { node: Some(_), .. } => "executing",
            ServerEvent::Executing { node: None, .. } => "finished",
            ServerEvent::Progress { .. } => "progress",
            ServerEvent::Executed { .. } => "executed",
            ServerEvent::ExecutionSuccess { .. } => "execution_success",
            other => panic!("unexpected {other:?}"),
        };
        kinds.push(kind);
        if kind == "finished" {
            break;
        }
    }
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    assert_eq!(kinds[0], "status", "the greeting carries the sid");
    assert!(pos("execution_start") < pos("execution_cached"));
    assert!(pos("execution_cached") < pos("executing"));
    assert!(pos("executing") < pos("progress"));
    assert!(pos("progress") < pos("executed"));
    assert!(pos("executed") < pos("execution_success"));
    assert_eq!(*kinds.last().unwrap(), "finished");
    assert!(kinds.iter().rposition(|k| *k == "status").unwrap() > pos("execution_success"));

    // The other client sees status and progress_state, never execution messages.
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), other.next()).await
    {
        seen.push(event);
    }
    assert!(
        seen.iter().all(|e| matches!(
            e,
            ServerEvent::Status { .. } | ServerEvent::ProgressState { .. }
        )),
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .any(|e| matches!(e, ServerEvent::ProgressState { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_also_answers_under_api() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = retake_comfyui::ComfyPool::new(
        vec![ServerConfig::new(
            "gpu-a",
            &format!("{}/api", fake.url()),
            1,
        )],
        fast_options(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = pool
        .run(job("via-api", workflow(4, 7.0), dir.path()), ignore)
        .await
        .unwrap();
    assert_eq!(outcome.outputs.len(), 1);
    wait_until("the /api/ws socket is up", || {
        pool.servers()[0].websocket_connected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_answer_empty_objects_and_view_guards_paths() {
    let fake = FakeComfy::start("gpu-a").await;
    let http = http_client();
    let get = |path: &str| http.get(format!("{}{path}", fake.url())).send();
    let body: Value = get("/history/nope").await.unwrap().json().await.unwrap();
    assert_eq!(body, json!({}));
    let body: Value = get("/api/object_info/NoSuchNode")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({}));
    let body: Value = get("/object_info/KSampler")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["KSampler"]["input"]["required"]["cfg"][0], "FLOAT");
    assert_eq!(
        get("/view?filename=missing.mp4&subfolder=&type=output")
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        get("/view?filename=..%2Fx.mp4&type=output")
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        get("/view?filename=x.mp4&subfolder=..%2F..&type=output")
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        get("/view?filename=x.mp4&type=bogus")
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_comfyui_the_fake_does_not_deduplicate_prompt_ids() {
    let fake = FakeComfy::start("gpu-a").await;
    fake.set_exec_time(Duration::from_millis(500));
    let client = ComfyClient::new("gpu-a", &fake.url(), "c", http_client()).unwrap();
    client
        .submit("twice", &workflow(1, 7.0), &Value::Null)
        .await
        .unwrap();
    client
        .submit("twice", &workflow(1, 7.0), &Value::Null)
        .await
        .unwrap();
    let queue = client.queue().await.unwrap();
    assert_eq!(
        queue
            .running
            .iter()
            .chain(&queue.pending)
            .filter(|p| *p == "twice")
            .count(),
        2
    );
    // submit_once is what a resuming client uses: it sees the id and posts nothing.
    assert_eq!(
        client
            .submit_once("twice", &workflow(1, 7.0), &Value::Null)
            .await
            .unwrap(),
        retake_comfyui::Submission::AlreadyQueued
    );
    assert_eq!(fake.submitted().len(), 2);
}
