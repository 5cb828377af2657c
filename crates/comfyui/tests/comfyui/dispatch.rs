//! Dispatch across servers: least-loaded, drained, down, excluded, added and removed at run time.

use crate::helpers::*;
use retake_comfyui::fake::FakeComfy;
use retake_comfyui::{Progress, PromptJob, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_spread_to_the_least_loaded_server() {
    let a = FakeComfy::start("gpu-a").await;
    let b = FakeComfy::start("gpu-b").await;
    a.set_exec_time(Duration::from_millis(300));
    b.set_exec_time(Duration::from_millis(300));
    let pool = pool_of(&[&a, &b], 2).await;
    let dir = tempfile::tempdir().unwrap();

    let (x, y) = tokio::join!(
        pool.run(job("x", workflow(1, 7.0), dir.path()), ignore),
        pool.run(job("y", workflow(2, 7.0), dir.path()), ignore),
    );
    let mut servers = vec![x.unwrap().server, y.unwrap().server];
    servers.sort();
    assert_eq!(
        servers,
        ["gpu-a", "gpu-b"],
        "one each, not two on the first server"
    );
    assert_eq!((a.submitted().len(), b.submitted().len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_server_gets_no_new_work_but_finishes_what_it_runs() {
    let a = FakeComfy::start("gpu-a").await;
    let b = FakeComfy::start("gpu-b").await;
    a.set_exec_time(Duration::from_millis(400));
    let pool = Arc::new(pool_of(&[&a, &b], 2).await);
    let dir = tempfile::tempdir().unwrap();

    let running = {
        let pool = Arc::clone(&pool);
        let job = job("on-a", workflow(1, 7.0), dir.path());
        tokio::spawn(async move { pool.run(job, ignore).await })
    };
    wait_until("the first job runs on gpu-a", || a.running().len() == 1).await;
    assert!(pool.set_drained("gpu-a", true));
    for i in 0..3 {
        let outcome = pool
            .run(
                job(&format!("later-{i}"), workflow(10 + i, 7.0), dir.path()),
                ignore,
            )
            .await
            .unwrap();
        assert_eq!(outcome.server, "gpu-b");
    }
    assert_eq!(
        running.await.unwrap().unwrap().server,
        "gpu-a",
        "running work finishes on the drained server"
    );
    assert_eq!(a.submitted().len(), 1);
    let status = pool.servers();
    assert!(status.iter().any(|s| s.name == "gpu-a" && s.drained));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_server_is_skipped() {
    let a = FakeComfy::start("gpu-a").await;
    let b = FakeComfy::start("gpu-b").await;
    let pool = pool_of(&[&a, &b], 1).await;
    let dir = tempfile::tempdir().unwrap();
    a.stop().await;
    wait_until("gpu-a is seen down", || !healthy(&pool, "gpu-a")).await;
    for i in 0..2 {
        let outcome = pool
            .run(job(&format!("j{i}"), workflow(i, 7.0), dir.path()), ignore)
            .await
            .unwrap();
        assert_eq!(outcome.server, "gpu-b");
    }
    let down = pool
        .servers()
        .into_iter()
        .find(|s| s.name == "gpu-a")
        .unwrap();
    assert!(down.last_error.is_some_and(|e| !e.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_server_is_avoided_when_another_can_run_the_job() {
    let a = FakeComfy::start("gpu-a").await;
    let b = FakeComfy::start("gpu-b").await;
    let pool = pool_of(&[&a, &b], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let retry = PromptJob {
        exclude_server: Some("gpu-a".into()),
        ..job("retry", workflow(1, 7.0), dir.path())
    };
    assert_eq!(pool.run(retry, ignore).await.unwrap().server, "gpu-b");

    // With no other server, the excluded one is still used rather than failing.
    let alone = pool_of(&[&a], 1).await;
    let retry = PromptJob {
        exclude_server: Some("gpu-a".into()),
        ..job("retry-2", workflow(2, 7.0), dir.path())
    };
    assert_eq!(alone.run(retry, ignore).await.unwrap().server, "gpu-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_queues_jobs_until_a_slot_frees() {
    let a = FakeComfy::start("gpu-a").await;
    a.set_exec_time(Duration::from_millis(300));
    let pool = pool_of(&[&a], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let (seen_x, record_x) = recorder();
    let (seen_y, record_y) = recorder();
    let (seen_z, record_z) = recorder();
    let (x, y, z) = tokio::join!(
        pool.run(job("x", workflow(1, 7.0), dir.path()), record_x),
        pool.run(job("y", workflow(2, 7.0), dir.path()), record_y),
        pool.run(job("z", workflow(3, 7.0), dir.path()), record_z),
    );
    assert!(x.is_ok() && y.is_ok() && z.is_ok());
    assert_eq!(a.submitted().len(), 3);
    assert_eq!(pool.servers()[0].in_flight, 0);
    // The jobs that found the only slot taken said they wait for a slot on a healthy server
    // (once, before they were queued): that is not waiting for a server to come back.
    let mut waited = 0;
    for seen in [seen_x, seen_y, seen_z] {
        let seen = seen.lock().unwrap().clone();
        let slot = seen.iter().position(|p| *p == Progress::WaitingForSlot);
        let queued = seen
            .iter()
            .position(|p| matches!(p, Progress::Queued { .. }));
        assert!(queued.is_some(), "{seen:?}");
        if slot.is_some() {
            waited += 1;
            assert!(slot < queued, "{seen:?}");
        }
        assert!(
            seen.iter()
                .filter(|p| **p == Progress::WaitingForSlot)
                .count()
                <= 1,
            "{seen:?}"
        );
    }
    assert!(waited >= 1, "one slot, three jobs: someone waited for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_can_be_added_and_removed_at_run_time() {
    let a = FakeComfy::start("gpu-a").await;
    let b = FakeComfy::start("gpu-b").await;
    let pool = pool_of(&[&a], 1).await;
    let dir = tempfile::tempdir().unwrap();

    pool.set_servers(vec![ServerConfig::new("gpu-b", &b.url(), 4)])
        .await;
    let names: Vec<String> = pool.servers().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["gpu-b"]);
    assert_eq!(pool.servers()[0].max_concurrency, 4);
    assert_eq!(
        pool.run(job("moved", workflow(1, 7.0), dir.path()), ignore)
            .await
            .unwrap()
            .server,
        "gpu-b"
    );
    assert!(a.submitted().is_empty());

    pool.set_servers(vec![]).await;
    let err = pool
        .run(job("none", workflow(2, 7.0), dir.path()), ignore)
        .await
        .unwrap_err();
    assert!(
        matches!(err, retake_comfyui::ComfyError::NoHealthyServer { .. }),
        "{err:?}"
    );
}
