//! A failed commit never acknowledges. The SQLite database is capped a few pages above its size
//! (`PRAGMA max_page_count`, as a full disk behaves): submissions start failing with
//! "disk is full", and every submission that was acknowledged is stored, none that failed is, no
//! later write lands in a transaction that never commits, and once space frees the engine takes
//! every segment to the end.

use retake_core::{CheckConfig, Parameters, SegmentStatus};
use retake_engine::backends::{Scenario, SimulatedBackend};
use retake_engine::{Backends, Engine, EngineConfig};
use retake_store::sqlite::SqliteStore;
use retake_store::{NewProject, NewSceneType, NewSegment, SegmentFilter, Store, StoreError};
use serde_json::json;
use std::sync::Arc;

const SCENARIO: &str = r#"
[profiles.st]
gpu_seconds = { mean = 5.0, sd = 1.0, min = 1.0, max = 10.0 }
[profiles.st.checks.face_confidence]
fail_probability = 0.5
"#;

#[tokio::test]
async fn a_full_disk_loses_no_acknowledged_write_and_work_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("retake.db").display());
    let store = Arc::new(SqliteStore::open(&url).await.unwrap());
    let p = store
        .create_project(NewProject {
            name: "disk".into(),
            gpu_budget_seconds: None,
            default_gpu_estimate_seconds: 5.0,
            default_retry_policy: Default::default(),
        })
        .await
        .unwrap();
    let st = store
        .create_scene_type(NewSceneType {
            project_id: p.id,
            name: "st".into(),
            backend: "simulated".into(),
            backend_config: json!({"profile": "st"}),
            workflow_template: json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new().with("cfg_scale", 7.0),
            qa_checks: vec![CheckConfig::new("face_confidence", 0.7, 0.5)],
            qa_commands: vec![],
            retry_policy: serde_json::from_value(json!({"enabled": true, "max_attempts": 3}))
                .unwrap(),
            parameter_domains: Default::default(),
        })
        .await
        .unwrap();

    store.set_page_limit(Some(40)).await.unwrap();
    let mut acknowledged: Vec<i64> = vec![];
    let mut refused = 0;
    for batch in 0..40u64 {
        let segs: Vec<NewSegment> = (0..100)
            .map(|i| NewSegment {
                scene_type_id: st.id,
                label: Some(format!("b{batch}-{i}")),
                parameters: Parameters::new(),
                rng_seed: batch * 1000 + i,
            })
            .collect();
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
    let stored = all_segments(store.as_ref(), p.id).await;
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

    let backend = SimulatedBackend::new(Scenario::parse(SCENARIO).unwrap(), Some(0.0), None);
    let engine = Engine::new(
        store.clone(),
        Backends::new().with("simulated", Arc::new(backend)),
        None,
        EngineConfig::new(dir.path()),
    );
    engine.run_until_idle().await.unwrap();
    let done = all_segments(store.as_ref(), p.id).await;
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

async fn all_segments(store: &dyn Store, project: i64) -> Vec<retake_store::Segment> {
    let mut out = vec![];
    let mut before = None;
    loop {
        let page = store
            .list_segments(&SegmentFilter {
                project_id: Some(project),
                before_id: before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        before = page.last().map(|s| s.id);
        out.extend(page);
    }
}
