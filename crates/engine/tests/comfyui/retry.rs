//! A QA-driven retry through ComfyUI: the retry is a new workflow with a new seed and a jittered
//! cfg, and what the store records is exactly what the server received.

use crate::fixture::*;
use retake_comfyui::fake::FakeComfy;
use retake_core::{AttemptStatus, SegmentStatus};
use retake_store::Store;
use std::sync::Arc;

pub async fn qa_failure_is_retried_with_a_new_seed_and_cfg(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let rig = rig(
        store,
        serde_json::json!({"enabled": true, "max_attempts": 3, "cfg_jitter": 1.5}),
    )
    .await;
    let seg = rig.submit(vec![vec![FAIL, PASS]]).await.remove(0);

    rig.run(&rig.engine(&pool, EngineOpts::default())).await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(seg.selected_attempt_number, Some(2));
    assert_eq!(attempts.len(), 2, "one retry");
    let (first, second) = (&attempts[0], &attempts[1]);
    assert_eq!(first.overall_status, AttemptStatus::Failed);
    assert!(
        first
            .failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("face_confidence"),
        "{:?}",
        first.failure_reason
    );
    assert_eq!(second.overall_status, AttemptStatus::Passed);
    assert!(second.is_selected);
    assert!(attempts.iter().all(|a| a.infra_errors.is_empty()));

    // The server received one workflow per attempt, each with that attempt's parameters.
    let submitted = fake.submitted();
    assert_eq!(submitted.len(), 2);
    for (a, w) in attempts.iter().zip(&submitted) {
        assert_workflow_carries(w, a, 0);
        rig.assert_provenance_matches(a, w, 0, "gpu-a");
        assert_eq!(a.backend.as_deref(), Some("comfyui"));
    }
    let (seed1, cfg1, _) = sampler_inputs(&submitted[0]);
    let (seed2, cfg2, _) = sampler_inputs(&submitted[1]);
    assert_ne!(seed1, seed2, "the retry draws a new seed");
    assert_ne!(cfg1, cfg2, "the retry jitters cfg");
    assert_eq!(cfg1, ORIGINAL_CFG, "attempt 1 runs the scene's own cfg");
    assert!(
        (cfg2 - ORIGINAL_CFG).abs() <= 1.5 + 1e-9,
        "cfg {cfg2} within the jitter range"
    );
    assert_ne!(
        second.provenance["workflow_hash"],
        first.provenance["workflow_hash"]
    );
    // The fake ran both under the ids the backend chose.
    let finished = fake.finished();
    for a in &attempts {
        assert!(
            finished.contains(&rig.prompt_id(a, 0)),
            "{} not in {finished:?}",
            rig.prompt_id(a, 0)
        );
    }

    // Each output is a real file in its attempt's folder, and QA scored exactly those files.
    let out1 = rig.assert_output_in_attempt_folder(first);
    let out2 = rig.assert_output_in_attempt_folder(second);
    assert_ne!(out1, out2);
    let scored: Vec<_> = rig
        .qa
        .scored()
        .into_iter()
        .map(|(p, len)| {
            assert!(len > 0, "{p:?} was empty when scored");
            p
        })
        .collect();
    assert_eq!(scored, vec![out1, out2.clone()]);
    assert_eq!(
        seg.output_video_path.as_deref(),
        Some(out2.to_str().unwrap())
    );

    // Both generations were charged from the server's timestamps.
    assert!(
        attempts.iter().all(|a| a.gpu_seconds > 0.0),
        "{:?}",
        attempts.iter().map(|a| a.gpu_seconds).collect::<Vec<_>>()
    );
    assert_charged(
        &retake_store::testing::current_db_url(),
        rig.project.id,
        &attempts.iter().collect::<Vec<_>>(),
    )
    .await;
}

/// A seed bound to a custom node's 32-bit seed input: the learnt range is recorded on the scene
/// type, every retry seed is drawn inside it (and the server accepts it), seeds stay distinct,
/// and each attempt records the range it was drawn from.
pub async fn retry_seeds_stay_inside_a_32_bit_seed_input(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let map = [("seed".to_owned(), "2.seed".to_owned())].into();
    let rig = rig_with(
        store,
        serde_json::json!({"enabled": true, "max_attempts": 4}),
        retake_comfyui::fake::seed32_video_workflow(),
        map,
    )
    .await;
    const MAX: u64 = 4_294_967_295;
    let domain = &rig.scene.parameter_domains["seed"];
    assert_eq!(
        (domain.min, domain.max, domain.integer),
        (0.0, MAX as f64, true)
    );
    let segs = rig.submit(vec![vec![FAIL, FAIL, FAIL, PASS]; 3]).await;

    rig.run(&rig.engine(&pool, EngineOpts::default())).await;

    for s in &segs {
        let (seg, attempts) = rig.segment(s.id).await;
        assert_eq!(seg.status, SegmentStatus::Passed, "{:?}", seg.review_reason);
        assert_eq!(attempts.len(), 4);
        let mut seeds = vec![];
        for a in &attempts {
            assert!(a.infra_errors.is_empty(), "{:#?}", a.infra_errors);
            assert!(
                a.seed <= MAX,
                "attempt {} seed {}",
                a.attempt_number,
                a.seed
            );
            seeds.push(a.seed);
            if a.attempt_number > 1 {
                let jitter = a.jitter.as_ref().expect("a retry records its draw");
                assert_eq!(jitter.seed_range, Some([0, MAX]));
            }
        }
        seeds.sort();
        seeds.dedup();
        assert_eq!(seeds.len(), 4, "distinct seeds");
    }
    // Every workflow the server received carried the attempt's seed, inside the input's range.
    for w in fake.submitted() {
        let seed = w["2"]["inputs"]["seed"].as_u64().unwrap();
        assert!(seed <= MAX);
    }
    assert_eq!(fake.submitted().len(), 12);
}
