//! A failed commit never acknowledges, on PostgreSQL. A deferred constraint trigger makes
//! `COMMIT` itself fail with SQLSTATE 53100 ("could not extend file": a full disk) while a switch
//! row is present, so the failure happens exactly where a full disk or an I/O error hits a real
//! server: after every statement of the transaction succeeded. Submissions refused that way are
//! a clear "storage full" error and store nothing; every acknowledged one is stored; the engine's
//! writes refused while the disk is full change nothing, and once it frees the engine takes every
//! segment to the end, no attempt twice, with exact statistics.

mod disk;

use retake_core::SegmentStatus;
use retake_engine::{Backends, Engine, EngineConfig};
use retake_store::StoreError;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

const FAULT: &str = r#"
CREATE TABLE test_disk_full (on_commit boolean NOT NULL);
CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM test_disk_full) THEN
    RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device'
      USING ERRCODE = '53100';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_disk_full_segments AFTER INSERT OR UPDATE ON segments
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_disk_full();
CREATE CONSTRAINT TRIGGER test_disk_full_events AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_disk_full();
"#;

async fn disk(admin: &sqlx::PgPool, full: bool) {
    let sql = if full {
        "INSERT INTO test_disk_full VALUES (true)"
    } else {
        "DELETE FROM test_disk_full"
    };
    sqlx::query(sql).execute(admin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_loses_no_acknowledged_write_and_work_resumes() {
    let Some((store, db)) = retake_store::testing::postgres().await else {
        return;
    };
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url())
        .await
        .unwrap();
    sqlx::raw_sql(FAULT).execute(&admin).await.unwrap();

    let (p, st) = disk::project(store.as_ref()).await;

    // Every third submission meets a full disk at COMMIT.
    let mut acknowledged: Vec<i64> = vec![];
    let mut refused = 0;
    for batch in 0..12u64 {
        disk(&admin, batch % 3 == 2).await;
        let segs = disk::batch(st.id, batch, 20);
        match store.submit_segments(segs).await {
            Ok(stored) => {
                assert!(
                    batch % 3 != 2,
                    "a submission whose commit failed was acknowledged"
                );
                acknowledged.extend(stored.iter().map(|s| s.id));
            }
            Err(StoreError::Unavailable {
                storage_full,
                message,
            }) => {
                assert_eq!(batch % 3, 2, "only refused commits fail: {message}");
                assert!(storage_full, "a full disk is named as such: {message}");
                assert!(message.contains("full"), "{message}");
                refused += 1;
            }
            Err(e) => panic!("a failed commit must be reported as unavailable storage, got {e}"),
        }
    }
    disk(&admin, false).await;
    assert_eq!(refused, 4);
    let stored = disk::all_segments(store.as_ref(), p.id).await;
    assert_eq!(stored.len(), acknowledged.len(), "stored = acknowledged");
    for id in &acknowledged {
        store.get_segment(*id).await.unwrap();
    }

    // The disk is full when the engine starts: its writes are refused at COMMIT; the disk frees
    // and everything is written, nothing twice.
    let backend = disk::backend();
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::new(
        store.clone(),
        Backends::new().with("simulated", Arc::new(backend)),
        None,
        EngineConfig::new(dir.path()),
    ));
    disk(&admin, true).await;
    let refused = Arc::new(AtomicUsize::new(0));
    let run = {
        let (engine, refused) = (engine.clone(), refused.clone());
        tokio::spawn(async move {
            // A claim refused by the full disk ends `run_until_idle` (the serving loop waits
            // and claims again); claim again until the queue is drained.
            loop {
                match engine.run_until_idle().await {
                    Ok(_) => return,
                    Err(StoreError::Unavailable {
                        storage_full,
                        message,
                    }) => {
                        assert!(storage_full, "{message}");
                        refused.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("the engine stopped on {e}"),
                }
            }
        })
    };
    // The disk frees once the engine has met it (a bounded wait, not a timing assertion).
    for _ in 0..600 {
        if refused.load(SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused.load(SeqCst) > 0,
        "the full disk refused the engine's writes too"
    );
    disk(&admin, false).await;
    run.await.unwrap();
    // Anything whose processing gave up is rescued when its lease expires; finish those too.
    for _ in 0..60 {
        let done = disk::all_segments(store.as_ref(), p.id).await;
        if done.iter().all(|s| s.status.is_terminal()) {
            break;
        }
        store.rescue_expired().await.unwrap();
        engine.run_until_idle().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let done = disk::all_segments(store.as_ref(), p.id).await;
    assert_eq!(done.len(), acknowledged.len());
    assert!(
        done.iter()
            .all(|s| matches!(s.status, SegmentStatus::Passed | SegmentStatus::NeedsReview)),
        "every segment reached the end: {:?}",
        done.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    for s in &done {
        let attempts = store.list_attempts(s.id).await.unwrap();
        let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt_number).collect();
        assert_eq!(
            numbers,
            (1..=attempts.len() as u32).collect::<Vec<_>>(),
            "segment {}: no gap or duplicate attempt",
            s.id
        );
        assert!(attempts.iter().all(|a| a.overall_status.is_terminal()));
    }
    let stats = store.project_stats(p.id).await.unwrap();
    assert_eq!(
        stats.segments as usize,
        done.len(),
        "every segment counted once"
    );
    assert_eq!(stats.in_progress, 0);
    admin.close().await;
}
