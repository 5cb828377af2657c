//! Cancelling a segment stops its generation on the server: a running prompt is interrupted, a
//! queued one deleted from the server's queue.

use crate::fixture::*;
use retake_comfyui::fake::{FakeComfy, Fault};
use retake_core::{AttemptStatus, SegmentStatus};
use retake_store::{Segment, Store};
use std::sync::Arc;
use std::time::Duration;

pub async fn cancelling_segments_stops_their_prompts_on_the_server(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    // Both prompts would hang: only an interrupt ends the running one. The pool keeps two on the
    // server, which runs one at a time, so the other waits in the server's queue.
    fake.inject(Fault::Hang, 2);
    let pool = pool_of(&[&fake], 2).await;
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    let segs = rig.submit(vec![vec![PASS]; 2]).await;
    let engine = rig.engine(
        &pool,
        EngineOpts {
            slots: 2,
            ..Default::default()
        },
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(engine.clone().run(stopped));

    eventually("one prompt runs and one waits on the server", || {
        let fake = &fake;
        async move { fake.running().len() == 1 && fake.pending().len() == 1 }
    })
    .await;
    let mut by_prompt: Vec<(String, Segment)> = vec![];
    for s in &segs {
        let (_, attempts) = rig.segment(s.id).await;
        by_prompt.push((rig.prompt_id(&attempts[0], 0), s.clone()));
    }
    let running_id = fake.running()[0].clone();
    let pending_id = fake.pending()[0].clone();
    let seg_of = |pid: &str| {
        by_prompt
            .iter()
            .find(|(p, _)| p == pid)
            .map(|(_, s)| s.id)
            .expect("a prompt of ours")
    };
    let (running_seg, pending_seg) = (seg_of(&running_id), seg_of(&pending_id));

    // The queued one: deleted from the server's queue, never run.
    let (seg, cancelled) = rig
        .store
        .cancel_segment(pending_seg, "editor")
        .await
        .unwrap();
    assert_eq!(seg.status, SegmentStatus::Cancelled);
    assert_eq!(cancelled.len(), 1);
    engine.backends().cancel_all(&*rig.store, &cancelled).await;
    assert!(fake.pending().is_empty(), "deleted from the server's queue");
    assert_eq!(
        fake.running(),
        vec![running_id.clone()],
        "the other prompt is untouched"
    );

    // The running one: interrupted, and it ends on the server.
    let (seg, cancelled) = rig
        .store
        .cancel_segment(running_seg, "editor")
        .await
        .unwrap();
    assert_eq!(seg.status, SegmentStatus::Cancelled);
    engine.backends().cancel_all(&*rig.store, &cancelled).await;
    eventually("the running prompt was interrupted", || {
        let fake = &fake;
        let id = running_id.clone();
        async move { fake.running().is_empty() && fake.finished().contains(&id) }
    })
    .await;
    assert!(
        !fake.finished().contains(&pending_id),
        "the deleted prompt never ran"
    );

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the engine stops once its generations ended")
        .unwrap();

    assert_eq!(
        fake.submitted().len(),
        2,
        "nothing was resubmitted after cancelling"
    );
    for s in &segs {
        let (seg, attempts) = rig.segment(s.id).await;
        assert_eq!(seg.status, SegmentStatus::Cancelled);
        assert_eq!(attempts.len(), 1);
        let a = &attempts[0];
        assert_eq!(a.overall_status, AttemptStatus::Cancelled);
        assert!(
            a.infra_errors.is_empty(),
            "a cancelled generation is not an infrastructure error: {:#?}",
            a.infra_errors
        );
    }
    assert!(rig.qa.scored().is_empty());
    let audit = retake_store::testing::budget_audit(
        &retake_store::testing::current_db_url(),
        rig.project.id,
    )
    .await;
    assert!(
        audit.reserved.abs() < 1e-9,
        "cancelling released the reservations"
    );
}
