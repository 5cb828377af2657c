//! Cancelling: a running prompt is interrupted, a queued one deleted, a waiting one abandoned.

use crate::helpers::*;
use retake_comfyui::fake::{FakeComfy, Fault};
use retake_comfyui::{ComfyError, ComfyPool, PromptOutcome};
use std::sync::Arc;
use tokio::task::JoinHandle;

fn spawn_run(
    pool: &Arc<ComfyPool>,
    id: &str,
    seed: u64,
    dir: &std::path::Path,
) -> JoinHandle<Result<PromptOutcome, ComfyError>> {
    let pool = Arc::clone(pool);
    let job = job(id, workflow(seed, 7.0), dir);
    tokio::spawn(async move { pool.run(job, ignore).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_interrupts_a_running_prompt() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = Arc::new(pool_of(&[&fake], 1).await);
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::Hang, 1);
    let run = spawn_run(&pool, "long", 1, dir.path());
    wait_until("the prompt runs", || {
        fake.running().contains(&"long".to_owned())
    })
    .await;

    pool.cancel("long").await.unwrap();
    let err = run.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ComfyError::Interrupted { server, .. } if server == "gpu-a"),
        "{err:?}"
    );
    assert!(fake.running().is_empty());
    assert_eq!(pool.servers()[0].in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_a_pending_prompt_from_the_queue() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = Arc::new(pool_of(&[&fake], 2).await);
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::Hang, 1);
    let first = spawn_run(&pool, "blocker", 1, dir.path());
    wait_until("the blocker runs", || fake.running().len() == 1).await;
    let second = spawn_run(&pool, "queued", 2, dir.path());
    wait_until("the second waits in the server's queue", || {
        fake.pending().contains(&"queued".to_owned())
    })
    .await;

    pool.cancel("queued").await.unwrap();
    let err = second.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ComfyError::Interrupted { message, .. } if message.contains("queue")),
        "{err:?}"
    );
    assert!(fake.pending().is_empty());

    pool.cancel("blocker").await.unwrap();
    assert!(matches!(
        first.await.unwrap(),
        Err(ComfyError::Interrupted { .. })
    ));
    assert!(
        !fake.finished().contains(&"queued".to_owned()),
        "the deleted prompt never ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_abandons_a_job_still_waiting_for_a_slot() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = Arc::new(pool_of(&[&fake], 1).await);
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::Hang, 1);
    let first = spawn_run(&pool, "holder", 1, dir.path());
    wait_until("the holder runs", || fake.running().len() == 1).await;
    let waiting = spawn_run(&pool, "waiting", 2, dir.path());
    wait_until("the second job waits in the pool", || {
        pool.is_running("waiting")
    })
    .await;

    pool.cancel("waiting").await.unwrap();
    assert!(matches!(
        waiting.await.unwrap(),
        Err(ComfyError::Interrupted { .. })
    ));
    assert_eq!(
        fake.submitted().len(),
        1,
        "the waiting job was never submitted"
    );

    pool.cancel("holder").await.unwrap();
    assert!(first.await.unwrap().is_err());
    // Cancelling something unknown is a no-op.
    pool.cancel("never-heard-of-it").await.unwrap();
}
