//! Work spread over two servers: both get work, a drained one gets none, and an infrastructure
//! retry goes to the server that did not fail.

use crate::fixture::*;
use retake_comfyui::fake::{FakeComfy, Fault};
use retake_core::{AttemptStatus, SegmentStatus};
use retake_store::{Attempt, Store};
use std::sync::Arc;
use std::time::Duration;

async fn servers_of(rig: &Rig, segs: &[retake_store::Segment]) -> Vec<(Attempt, String)> {
    let mut out = vec![];
    for s in segs {
        let (seg, attempts) = rig.segment(s.id).await;
        assert_eq!(seg.status, SegmentStatus::Passed, "segment {}", seg.id);
        assert_eq!(attempts.len(), 1);
        let a = attempts.into_iter().next().unwrap();
        let server = a.provenance["server"]
            .as_str()
            .expect("provenance names the server")
            .to_owned();
        out.push((a, server));
    }
    out
}

pub async fn work_spreads_over_servers_and_skips_a_drained_one(store: Arc<dyn Store>) {
    let a = FakeComfy::start("gpu-a").await;
    let b = FakeComfy::start("gpu-b").await;
    for f in [&a, &b] {
        f.set_exec_time(Duration::from_millis(300));
    }
    let pool = pool_of(&[&a, &b], 1).await;
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    let engine = rig.engine(
        &pool,
        EngineOpts {
            slots: 4,
            ..Default::default()
        },
    );

    let first = rig.submit(vec![vec![PASS]; 4]).await;
    rig.run(&engine).await;
    let ran = servers_of(&rig, &first).await;
    assert!(
        !a.submitted().is_empty() && !b.submitted().is_empty(),
        "both servers got work: {} / {}",
        a.submitted().len(),
        b.submitted().len()
    );
    assert_eq!(
        a.submitted().len() + b.submitted().len(),
        4,
        "one submission per attempt"
    );
    for (att, server) in &ran {
        let fake = if server == "gpu-a" { &a } else { &b };
        assert!(
            fake.finished().contains(&rig.prompt_id(att, 0)),
            "attempt {} ran where its provenance says",
            att.id
        );
        rig.assert_output_in_attempt_folder(att);
    }

    // Drained: gpu-b finishes nothing new; everything goes to gpu-a.
    assert!(pool.set_drained("gpu-b", true));
    let b_before = b.submitted().len();
    let second = rig.submit(vec![vec![PASS]; 3]).await;
    rig.run(&engine).await;
    assert_eq!(
        b.submitted().len(),
        b_before,
        "a drained server receives no work"
    );
    for (_, server) in servers_of(&rig, &second).await {
        assert_eq!(server, "gpu-a");
    }
}

/// gpu-a (first by name, equally idle) fails the prompt; the retry runs on gpu-b.
pub async fn infra_retry_goes_to_the_other_server(store: Arc<dyn Store>) {
    let a = FakeComfy::start("gpu-a").await;
    let b = FakeComfy::start("gpu-b").await;
    let pool = pool_of(&[&a, &b], 1).await;
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);
    a.inject(Fault::ExecutionError, 1);

    rig.run(&rig.engine(&pool, EngineOpts::default())).await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(attempts.len(), 1);
    let att = &attempts[0];
    assert_eq!(att.overall_status, AttemptStatus::Passed);
    assert_eq!(att.infra_errors.len(), 1);
    assert!(
        att.infra_errors[0].message.contains("gpu-a"),
        "{:?}",
        att.infra_errors[0].message
    );
    let (on_a, on_b) = (a.submitted(), b.submitted());
    assert_eq!((on_a.len(), on_b.len()), (1, 1), "one try on each server");
    assert_workflow_carries(&on_a[0], att, 0);
    assert_workflow_carries(&on_b[0], att, 1);
    rig.assert_provenance_matches(att, &on_b[0], 1, "gpu-b");
    assert!(a.finished().contains(&rig.prompt_id(att, 0)));
    assert!(b.finished().contains(&rig.prompt_id(att, 1)));
    rig.assert_output_in_attempt_folder(att);
}
