//! What the full-disk tests (`disk_full.rs` on SQLite, `failed_commit_pg.rs` on PostgreSQL)
//! share: one project with one retrying scene type of the simulated backend, and a read of every
//! segment of a project.

use retake_core::{CheckConfig, Parameters};
use retake_engine::backends::{Scenario, SimulatedBackend};
use retake_store::{
    NewProject, NewSceneType, NewSegment, Project, SceneType, SegmentFilter, Store,
};
use serde_json::json;

const SCENARIO: &str = r#"
[profiles.st]
gpu_seconds = { mean = 5.0, sd = 1.0, min = 1.0, max = 10.0 }
[profiles.st.checks.face_confidence]
fail_probability = 0.5
"#;

/// The simulated backend the scene type runs on: zero latency, half of first attempts fail.
pub fn backend() -> SimulatedBackend {
    SimulatedBackend::new(Scenario::parse(SCENARIO).unwrap(), Some(0.0), None)
}

pub async fn project(store: &dyn Store) -> (Project, SceneType) {
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
    (p, st)
}

pub async fn all_segments(store: &dyn Store, project: i64) -> Vec<retake_store::Segment> {
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

/// Submission `batch` of a disk test: `n` segments labelled `b<batch>-<i>`, seeds unique across
/// batches.
pub fn batch(scene_type_id: i64, batch: u64, n: u64) -> Vec<NewSegment> {
    (0..n)
        .map(|i| NewSegment {
            scene_type_id,
            label: Some(format!("b{batch}-{i}")),
            parameters: Parameters::new(),
            rng_seed: batch * 1000 + i,
        })
        .collect()
}
