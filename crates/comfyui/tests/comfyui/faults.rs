//! Each injected fault surfaces as the right `ComfyError`, and the fault does not stick.

use crate::helpers::*;
use retake_comfyui::client::http_client;
use retake_comfyui::fake::{FakeComfy, Fault};
use retake_comfyui::{ComfyClient, ComfyError, ComfyPool, PromptJob};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

async fn run_with_fault(fault: Fault) -> (ComfyError, FakeComfy, ComfyPool, tempfile::TempDir) {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();
    fake.inject(fault, 1);
    let err = pool
        .run(job("faulty", workflow(9, 7.0), dir.path()), ignore)
        .await
        .unwrap_err();
    assert_eq!(err.server(), Some("gpu-a"), "{err}");
    (err, fake, pool, dir)
}

/// After the one-shot fault, the same server runs the next prompt normally.
async fn next_run_succeeds(pool: &ComfyPool, dir: &Path) {
    pool.run(job("after", workflow(10, 7.0), dir), ignore)
        .await
        .expect("the fault was one-shot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_error_names_the_node_and_is_not_oom() {
    let (err, _fake, pool, dir) = run_with_fault(Fault::ExecutionError).await;
    match &err {
        ComfyError::ExecutionError {
            exception_type,
            message,
            out_of_memory,
            node_id,
            node_type,
            gpu_seconds,
            ..
        } => {
            assert_eq!(exception_type, "RuntimeError");
            assert!(message.contains("mat1 and mat2"), "{message}");
            assert!(!out_of_memory);
            assert_eq!(node_id.as_deref(), Some("3"));
            assert_eq!(node_type.as_deref(), Some("KSampler"));
            assert!(gpu_seconds.is_some());
        }
        other => panic!("expected ExecutionError, got {other:?}"),
    }
    assert!(err.is_retriable());
    next_run_succeeds(&pool, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_flagged() {
    let (err, _fake, _pool, _dir) = run_with_fault(Fault::OutOfMemory).await;
    assert!(
        matches!(&err, ComfyError::ExecutionError { out_of_memory: true, exception_type, .. } if exception_type == "torch.OutOfMemoryError"),
        "{err:?}"
    );
    assert_eq!(err.kind(), "out_of_memory");
    assert!(err.is_retriable());
    assert!(err.gpu_seconds_spent().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interruption_at_the_server_is_interrupted() {
    let (err, _fake, pool, dir) = run_with_fault(Fault::Interrupted).await;
    assert!(matches!(&err, ComfyError::Interrupted { .. }), "{err:?}");
    assert!(err.is_retriable());
    next_run_succeeds(&pool, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_errors_are_final_and_carry_the_details() {
    let (err, fake, _pool, _dir) = run_with_fault(Fault::NodeErrors).await;
    match &err {
        ComfyError::NodeErrors {
            details, message, ..
        } => {
            assert!(
                details["node_errors"]["3"]["errors"][0]["type"] == "custom_validation_failed",
                "{details}"
            );
            assert!(message.contains("node 3 (KSampler)"), "{message}");
        }
        other => panic!("expected NodeErrors, got {other:?}"),
    }
    assert!(!err.is_retriable());
    assert!(fake.finished().is_empty(), "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_input_is_rejected_by_validation() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let err = pool
        .run(job("cfg-150", workflow(1, 150.0), dir.path()), ignore)
        .await
        .unwrap_err();
    match &err {
        ComfyError::NodeErrors {
            details, message, ..
        } => {
            assert_eq!(
                details["node_errors"]["3"]["errors"][0]["type"],
                "value_bigger_than_max"
            );
            assert!(message.contains("bigger than max"), "{message}");
        }
        other => panic!("expected NodeErrors, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_from_prompt_or_history_is_malformed() {
    let (err, _fake, pool, dir) = run_with_fault(Fault::MalformedPrompt).await;
    assert!(
        matches!(&err, ComfyError::Malformed { route, .. } if route == "/prompt"),
        "{err:?}"
    );
    next_run_succeeds(&pool, dir.path()).await;

    let (err, _fake, _pool, _dir) = run_with_fault(Fault::MalformedHistory).await;
    assert!(
        matches!(&err, ComfyError::Malformed { route, .. } if route.starts_with("/history/")),
        "{err:?}"
    );
    assert!(err.is_retriable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_without_a_usable_file_is_missing_output() {
    let (err, _fake, pool, dir) = run_with_fault(Fault::EmptyOutputs).await;
    assert!(
        matches!(&err, ComfyError::MissingOutput { message, .. } if message.contains("no output")),
        "{err:?}"
    );
    assert!(
        err.gpu_seconds_spent().is_some(),
        "the GPU time was spent all the same"
    );
    next_run_succeeds(&pool, dir.path()).await;

    let (err, _fake, _pool, _dir) = run_with_fault(Fault::ViewNotFound).await;
    assert!(
        matches!(&err, ComfyError::MissingOutput { message, .. } if message.contains("404")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_prompt_times_out_and_is_taken_off_the_gpu() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::Hang, 1);
    let job = PromptJob {
        timeout: Duration::from_millis(800),
        ..job("hung", workflow(3, 7.0), dir.path())
    };
    let err = pool.run(job, ignore).await.unwrap_err();
    assert!(
        matches!(&err, ComfyError::Timeout { server, .. } if server == "gpu-a"),
        "{err:?}"
    );
    assert!(err.gpu_seconds_spent().is_some());
    wait_until("the hung prompt was interrupted", || {
        fake.running().is_empty() && fake.finished().contains(&"hung".to_owned())
    })
    .await;
    assert_eq!(pool.servers()[0].in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stopped_listening_refuses_and_is_skipped_by_the_pool() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::ConnectionRefused, 1);
    fake.stop().await;

    let client = ComfyClient::new("gpu-a", &fake.url(), "probe", http_client()).unwrap();
    let err = client
        .submit("direct", &workflow(1, 7.0), &Value::Null)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ComfyError::ConnectionRefused { server, .. } if server == "gpu-a"),
        "{err:?}"
    );
    assert!(err.is_retriable());

    wait_until("the pool sees the server down", || !healthy(&pool, "gpu-a")).await;
    let err = pool
        .run(job("nowhere", workflow(1, 7.0), dir.path()), ignore)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ComfyError::NoHealthyServer { message } if message.contains("gpu-a")),
        "{err:?}"
    );

    fake.restart().await;
    wait_until("the pool sees the server back", || healthy(&pool, "gpu-a")).await;
    // Healthy again: the refusal is history, not shown next to `healthy: true`.
    let status = pool.servers()[0].clone();
    assert!(status.healthy && status.last_error.is_none(), "{status:?}");
    next_run_succeeds(&pool, dir.path()).await;
}
