//! Losing the WebSocket, losing the server, and resuming after a crash without double-submitting.

use crate::helpers::*;
use retake_comfyui::fake::{FakeComfy, Fault};
use retake_comfyui::ComfyError;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_drop_mid_run_is_recovered_from_history() {
    let fake = FakeComfy::start("gpu-a").await;
    fake.set_exec_time(Duration::from_millis(300));
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::WebSocketDrop, 1);

    // The fake refuses new sockets until the prompt is done: its end is only in /history.
    let outcome = pool
        .run(job("dropped", workflow(77, 7.0), dir.path()), ignore)
        .await
        .unwrap();
    assert_eq!(outcome.outputs.len(), 1);
    assert!(outcome.outputs[0].exists());
    assert!(
        outcome.gpu_seconds > 0.0,
        "timestamps come from /history status.messages"
    );
    assert_eq!(fake.submitted().len(), 1, "recovered, not resubmitted");
    wait_until("the WebSocket reconnected", || {
        pool.servers()[0].websocket_connected
    })
    .await;

    // Events flow again after reconnecting.
    pool.run(job("after-drop", workflow(78, 7.0), dir.path()), ignore)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_the_restarted_server_no_longer_knows_is_reported_lost() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::Hang, 1);

    let pool = Arc::new(pool);
    let runner = {
        let pool = Arc::clone(&pool);
        let job = job("doomed", workflow(5, 7.0), dir.path());
        tokio::spawn(async move { pool.run(job, ignore).await })
    };
    wait_until("the prompt runs", || {
        fake.running().contains(&"doomed".to_owned())
    })
    .await;
    fake.restart().await;

    let err = runner.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ComfyError::WebSocketDropped { server, prompt_id, .. } if server == "gpu-a" && prompt_id == "doomed"),
        "{err:?}"
    );
    assert!(err.is_retriable());
    assert!(err.gpu_seconds_spent().is_some(), "it had started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_after_a_crash_attaches_to_the_running_prompt_instead_of_resubmitting() {
    let fake = FakeComfy::start("gpu-a").await;
    fake.set_exec_time(Duration::from_millis(600));
    let dir = tempfile::tempdir().unwrap();

    // The first engine submits, then dies mid-run.
    let crashed = Arc::new(pool_of(&[&fake], 1).await);
    let runner = {
        let pool = Arc::clone(&crashed);
        let job = job("attempt-7-try-1", workflow(7, 7.0), dir.path());
        tokio::spawn(async move { pool.run(job, ignore).await })
    };
    wait_until("the prompt runs", || {
        fake.running().contains(&"attempt-7-try-1".to_owned())
    })
    .await;
    runner.abort();
    drop(crashed);

    // The restarted engine asks for the same prompt id.
    let pool = pool_of(&[&fake], 1).await;
    let outcome = pool
        .run(job("attempt-7-try-1", workflow(7, 7.0), dir.path()), ignore)
        .await
        .unwrap();
    assert_eq!(outcome.outputs.len(), 1);
    assert_eq!(
        fake.submitted().len(),
        1,
        "the server does not de-duplicate; the client must not resubmit"
    );

    // Once finished, asking again is answered from /history, still without a new submission.
    let again = pool
        .run(job("attempt-7-try-1", workflow(7, 7.0), dir.path()), ignore)
        .await
        .unwrap();
    assert_eq!(again.outputs.len(), 1);
    assert_eq!(fake.submitted().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_finds_a_queued_prompt_on_whichever_server_has_it() {
    let a = FakeComfy::start("gpu-a").await;
    let b = FakeComfy::start("gpu-b").await;
    b.set_exec_time(Duration::from_millis(400));
    let dir = tempfile::tempdir().unwrap();

    // The crashed engine left one prompt running and one queued behind it on gpu-b.
    let crashed = Arc::new(pool_of(&[&b], 2).await);
    let runners: Vec<_> = [("first", 11), ("queued", 12)]
        .into_iter()
        .map(|(id, seed)| {
            let pool = Arc::clone(&crashed);
            let job = job(id, workflow(seed, 7.0), dir.path());
            tokio::spawn(async move { pool.run(job, ignore).await })
        })
        .collect();
    wait_until("one runs and one waits", || {
        b.running().len() == 1 && b.pending().len() == 1
    })
    .await;
    let queued = b.pending()[0].clone();
    runners.iter().for_each(|r| r.abort());
    drop(crashed);
    // Either job may have reached the server first: resume the one left in the queue with its
    // own workflow (another workflow under its id would not be ours).
    let seed = if queued == "first" { 11 } else { 12 };

    // gpu-a is idle and first by name, but the prompt is already queued on gpu-b.
    let pool = pool_of(&[&a, &b], 2).await;
    let outcome = pool
        .run(job(&queued, workflow(seed, 7.0), dir.path()), ignore)
        .await
        .unwrap();
    assert_eq!(outcome.server, "gpu-b");
    assert!(a.submitted().is_empty());
    assert_eq!(b.submitted().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_mid_run_and_stays_down_is_reported_lost() {
    let fake = FakeComfy::start("gpu-a").await;
    let options = retake_comfyui::PoolOptions {
        lost_after: Duration::from_millis(500),
        ..fast_options()
    };
    let pool = Arc::new(
        retake_comfyui::ComfyPool::new(
            vec![retake_comfyui::ServerConfig::new("gpu-a", &fake.url(), 1)],
            options,
        )
        .await,
    );
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::Hang, 1);
    let runner = {
        let pool = Arc::clone(&pool);
        let job = job("stranded", workflow(5, 7.0), dir.path());
        tokio::spawn(async move { pool.run(job, ignore).await })
    };
    wait_until("the prompt runs", || {
        fake.running().contains(&"stranded".to_owned())
    })
    .await;
    fake.stop().await;

    let err = runner.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ComfyError::WebSocketDropped { message, .. } if message.contains("no contact")),
        "{err:?}"
    );
    assert!(!healthy(&pool, "gpu-a"));
    assert_eq!(pool.servers()[0].in_flight, 0);
}
