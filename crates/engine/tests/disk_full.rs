//! A failed commit never acknowledges. The SQLite database is capped a few pages above its size
//! (`PRAGMA max_page_count`, as a full disk behaves): submissions start failing with
//! "disk is full", and every submission that was acknowledged is stored, none that failed is, no
//! later write lands in a transaction that never commits, and once space frees the engine takes
//! every segment to the end.

mod disk;

use retake_core::{Parameters, SegmentStatus};
use retake_engine::{Backends, Engine, EngineConfig};
use retake_store::sqlite::SqliteStore;
use retake_store::{NewSegment, Store, StoreError};
use std::sync::Arc;

#[tokio::test]
async fn a_full_disk_loses_no_acknowledged_write_and_work_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("retake.db").display());
    let store = Arc::new(SqliteStore::open(&url).await.unwrap());
    let (p, st) = disk::project(store.as_ref()).await;

    store.set_page_limit(Some(40)).await.unwrap();
    let mut acknowledged: Vec<i64> = vec![];
    let mut refused = 0;
    for batch in 0..40u64 {
        let segs = disk::batch(st.id, batch, 100);
        match store.submit_segments(segs).await {
            Ok(stored) => acknowledged.extend(stored.iter().map(|s| s.id)),
            Err(StoreError::Unavailable {
                storage_full,
                message,
            }) => {
                assert!(storage_full, "a full disk is named as such: {message}");
                assert!(message.contains("full"), "{message}");
                refused += 1;
            }
            Err(e) => panic!("a full disk must be reported as unavailable storage, got {e}"),
        }
    }
    assert!(refused >= 3, "the cap was reached ({refused} refused)");
    assert!(!acknowledged.is_empty(), "some submissions fit");

    // Every acknowledged segment is stored and readable by other connections; none of the
    // refused ones is.
    let stored = disk::all_segments(store.as_ref(), p.id).await;
    assert_eq!(stored.len(), acknowledged.len(), "stored = acknowledged");
    for id in &acknowledged {
        store.get_segment(*id).await.unwrap();
    }

    // Space frees: a new submission is acknowledged and visible (not swallowed by a transaction
    // that never commits), and the engine takes every segment to the end.
    store.set_page_limit(None).await.unwrap();
    let late = store
        .submit_segments(vec![NewSegment {
            scene_type_id: st.id,
            label: Some("after".into()),
            parameters: Parameters::new(),
            rng_seed: 99,
        }])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        store.get_segment(late.id).await.unwrap().label.as_deref(),
        Some("after")
    );

    let backend = disk::backend();
    let engine = Engine::new(
        store.clone(),
        Backends::new().with("simulated", Arc::new(backend)),
        None,
        EngineConfig::new(dir.path()),
    );
    engine.run_until_idle().await.unwrap();
    let done = disk::all_segments(store.as_ref(), p.id).await;
    assert_eq!(done.len(), acknowledged.len() + 1);
    assert!(
        done.iter()
            .all(|s| matches!(s.status, SegmentStatus::Passed | SegmentStatus::NeedsReview)),
        "every segment reached the end"
    );
    let stats = store.project_stats(p.id).await.unwrap();
    assert_eq!(
        stats.segments as usize,
        done.len(),
        "statistics count every segment once"
    );
    assert_eq!(stats.in_progress, 0);
}
