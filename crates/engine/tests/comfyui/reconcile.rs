//! What the engine does when it loses sight of a prompt: a dropped WebSocket is reconciled from
//! `/history`, and an engine that died mid-generation is replaced by one that re-attaches to the
//! same prompt instead of running it twice.

use crate::fixture::*;
use retake_comfyui::fake::{FakeComfy, Fault};
use retake_core::{AttemptStatus, SegmentStatus};
use retake_store::Store;
use std::sync::Arc;
use std::time::Duration;

pub async fn websocket_drop_mid_run_is_reconciled_from_history(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    fake.set_exec_time(Duration::from_millis(500));
    let pool = pool_of(&[&fake], 1).await;
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);
    // The fake closes the socket right after `execution_start` and refuses new ones until the
    // prompt is done: its end is only in /history.
    fake.inject(Fault::WebSocketDrop, 1);

    rig.run(&rig.engine(&pool, EngineOpts::default())).await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a.overall_status, AttemptStatus::Passed);
    assert!(
        a.infra_errors.is_empty(),
        "recovered without an infrastructure error: {:#?}",
        a.infra_errors
    );
    let submitted = fake.submitted();
    assert_eq!(
        submitted.len(),
        1,
        "picked up from /history, not resubmitted"
    );
    rig.assert_provenance_matches(a, &submitted[0], 0, "gpu-a");
    rig.assert_output_in_attempt_folder(a);
    assert!(
        a.gpu_seconds > 0.0,
        "GPU time from the timestamps in /history"
    );
    assert_charged(
        &retake_store::testing::current_db_url(),
        rig.project.id,
        &[a],
    )
    .await;
    eventually("the pool's WebSocket is back", || {
        let pool = pool.clone();
        async move { pool.servers()[0].websocket_connected }
    })
    .await;
}

/// An engine dies mid-generation (its task is aborted, its lease never renewed). Once the lease
/// expires and the attempt is rescued, a new engine with a new pool finds the prompt still on
/// the server under the same id and follows it to the end: one submission, not two.
pub async fn restarted_engine_reattaches_to_the_running_prompt(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    fake.set_exec_time(Duration::from_millis(2500));
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);
    let attempt = rig.segment(seg.id).await.1.remove(0);
    let pid = rig.prompt_id(&attempt, 0);

    // A short lease kept alive by heartbeats while the engine lives.
    let old_pool = pool_of(&[&fake], 1).await;
    let old = rig.engine(
        &old_pool,
        EngineOpts {
            worker: "engine-old".into(),
            lease: Duration::from_millis(600),
            heartbeat: Duration::from_millis(150),
            ..Default::default()
        },
    );
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(old.clone().run(stopped));
    eventually("the old engine's prompt runs on the server", || {
        let (fake, pid) = (&fake, pid.clone());
        async move { fake.running().contains(&pid) }
    })
    .await;
    // The process dies: its loops (the heartbeat included) stop with it.
    run.abort();
    let _ = run.await;
    drop(old);
    drop(old_pool);
    let a = rig.store.get_attempt(attempt.id).await.unwrap();
    assert_eq!(
        a.worker.as_deref(),
        Some("engine-old"),
        "still leased by the dead engine"
    );
    assert_eq!(
        a.provenance["prompt_id"],
        serde_json::json!(pid),
        "it recorded its prompt id before dying"
    );

    // The lease expires; the rescuer returns the attempt to the queue with the same parameters.
    eventually("the expired lease is rescued", || {
        let store = rig.store.clone();
        async move {
            let _ = store.rescue_expired().await.unwrap();
            store.get_attempt(attempt.id).await.unwrap().overall_status == AttemptStatus::Queued
        }
    })
    .await;
    // Its prompt still runs on the GPU: the reservation stays, so the budget keeps covering it.
    let rescued = rig.store.get_attempt(attempt.id).await.unwrap();
    assert!(
        rescued.reserved_gpu_seconds > 0.0,
        "the rescued attempt kept its reservation"
    );
    let audit = retake_store::testing::budget_audit(
        &retake_store::testing::current_db_url(),
        rig.project.id,
    )
    .await;
    assert!(
        (audit.reserved - rescued.reserved_gpu_seconds).abs() < 1e-9,
        "the project still holds it: {} vs {}",
        audit.reserved,
        rescued.reserved_gpu_seconds
    );

    let new_pool = pool_of(&[&fake], 1).await;
    rig.run(&rig.engine(
        &new_pool,
        EngineOpts {
            worker: "engine-new".into(),
            ..Default::default()
        },
    ))
    .await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a.overall_status, AttemptStatus::Passed);
    assert!(a.infra_errors.is_empty(), "{:#?}", a.infra_errors);
    assert_eq!(
        a.parameters, attempt.parameters,
        "rescued with the same parameters"
    );
    let submitted = fake.submitted();
    assert_eq!(
        submitted.len(),
        1,
        "the new engine re-attached instead of submitting the prompt again"
    );
    assert_eq!(fake.finished(), vec![pid.clone()], "the prompt ran once");
    rig.assert_provenance_matches(a, &submitted[0], 0, "gpu-a");
    assert_eq!(a.provenance["adopted"], serde_json::json!(true));
    // Charged what the server reports the prompt ran, the part before the crash included.
    let probe = retake_comfyui::ComfyClient::new(
        "gpu-a",
        &fake.url(),
        "probe",
        retake_comfyui::client::http_client(),
    )
    .unwrap();
    let ran = probe
        .history(&pid)
        .await
        .unwrap()
        .and_then(|e| e.gpu_seconds())
        .expect("the server's timestamps");
    assert!(ran >= 2.0, "the fake ran it for its 2.5 s: {ran}");
    assert!(
        (a.gpu_seconds - ran).abs() < 1e-9,
        "charged {} for a prompt that ran {ran} s",
        a.gpu_seconds
    );
    rig.assert_output_in_attempt_folder(a);
    let events = rig.store.list_events(0, Some(seg.id), 1000).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == "lease_rescued").count(),
        1,
        "rescued once"
    );
    assert_charged(
        &retake_store::testing::current_db_url(),
        rig.project.id,
        &[a],
    )
    .await;
}

/// Two installations (this store and a fresh SQLite database, e.g. staging next to production,
/// or a recreated database) share one ComfyUI server. Their attempt ids are the same numbers, yet
/// each runs and records its own prompts: the second does not adopt the first one's prompts, and
/// every recorded seed is the seed the server executed for that attempt's prompt.
pub async fn two_installations_sharing_a_server_keep_their_own_work(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("shared").await;
    let first = rig(store, serde_json::json!({"enabled": true})).await;
    let (other_store, _other_db) = retake_store::testing::sqlite().await;
    let second = rig(other_store, serde_json::json!({"enabled": true})).await;
    assert_ne!(first.installation, second.installation);

    let a = first.submit(vec![vec![PASS]; 2]).await;
    let pool_a = pool_of(&[&fake], 1).await;
    first
        .run(&first.engine(&pool_a, EngineOpts::default()))
        .await;
    // Other segments (other seeds) under the same attempt ids.
    let b = second
        .store
        .submit_segments(
            (0..2)
                .map(|i| retake_store::NewSegment {
                    scene_type_id: second.scene.id,
                    label: None,
                    parameters: retake_core::Parameters::new(),
                    rng_seed: 1_000 + i,
                })
                .collect(),
        )
        .await
        .unwrap();
    let pool_b = pool_of(&[&fake], 1).await;
    second
        .run(&second.engine(&pool_b, EngineOpts::default()))
        .await;

    let submitted = fake.submitted();
    assert_eq!(
        submitted.len(),
        4,
        "each installation ran its own two prompts"
    );
    let mut ids = vec![];
    for (rig, segs, sent) in [
        (&first, &a, &submitted[..2]),
        (&second, &b, &submitted[2..]),
    ] {
        for s in segs {
            let (seg, attempts) = rig.segment(s.id).await;
            assert_eq!(seg.status, SegmentStatus::Passed);
            let att = &attempts[0];
            assert!(
                att.provenance.get("adopted").is_none(),
                "submitted, not adopted"
            );
            // The workflow this installation posted for the attempt (they run in either order).
            let w = sent
                .iter()
                .find(|w| {
                    serde_json::json!(retake_comfyui::canonical_hash(w))
                        == att.provenance["workflow_hash"]
                })
                .expect("the attempt's workflow reached the server");
            rig.assert_provenance_matches(att, w, 0, "shared");
            assert_eq!(
                w["3"]["inputs"]["seed"].as_u64(),
                Some(att.seed),
                "the recorded seed is the one the server executed"
            );
            ids.push((att.id, rig.prompt_id(att, 0), att.seed));
        }
    }
    // Same attempt ids, different prompt ids and seeds.
    assert_eq!(ids[0].0, ids[2].0);
    assert_ne!(ids[0].1, ids[2].1);
    assert_ne!(
        submitted[0]["3"]["inputs"]["seed"],
        submitted[2]["3"]["inputs"]["seed"]
    );
    let finished = fake.finished();
    assert!(ids.iter().all(|(_, p, _)| finished.contains(p)));
}

/// The hard cap holds for the GPU time a re-attached prompt really uses. An engine dies while its
/// prompt runs; nobody watches the prompt until the lease expires and a new engine re-attaches.
/// The new engine must count the prompt's GPU time from when it started on the server, not from
/// the re-attach: with a budget that covers one reservation and no extension, it stops the prompt
/// before its real GPU time passes the budget, and charges what the server reports it ran.
pub async fn reattached_prompt_is_stopped_by_the_budget_from_its_real_start(store: Arc<dyn Store>) {
    const BUDGET: f64 = 5.0;
    let fake = FakeComfy::start("gpu-a").await;
    // Far longer than the budget: only the budget can end it.
    fake.set_exec_time(Duration::from_secs(120));
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    let project = rig
        .store
        .update_project(
            rig.project.id,
            retake_store::ProjectPatch {
                gpu_budget_seconds: Some(Some(BUDGET)),
                default_gpu_estimate_seconds: Some(BUDGET),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(project.gpu_budget_seconds, Some(BUDGET));
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);
    let attempt = rig.segment(seg.id).await.1.remove(0);
    let pid = rig.prompt_id(&attempt, 0);

    // The lease outlives the crash by 2 s: the prompt runs at least that long unwatched.
    let old_pool = pool_of(&[&fake], 1).await;
    let old = rig.engine(
        &old_pool,
        EngineOpts {
            worker: "engine-old".into(),
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(150),
            ..Default::default()
        },
    );
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(old.clone().run(stopped));
    eventually("the old engine's prompt runs on the server", || {
        let (fake, pid) = (&fake, pid.clone());
        async move { fake.running().contains(&pid) }
    })
    .await;
    run.abort();
    let _ = run.await;
    drop(old);
    drop(old_pool);
    let claimed = rig.store.get_attempt(attempt.id).await.unwrap();
    assert!(
        (claimed.reserved_gpu_seconds - BUDGET).abs() < 1e-9,
        "the whole budget is its reservation: {}",
        claimed.reserved_gpu_seconds
    );

    eventually("the expired lease is rescued", || {
        let store = rig.store.clone();
        async move {
            let _ = store.rescue_expired().await.unwrap();
            store.get_attempt(attempt.id).await.unwrap().overall_status == AttemptStatus::Queued
        }
    })
    .await;
    assert!(
        fake.running().contains(&pid),
        "the prompt still runs on the GPU"
    );

    let new_pool = pool_of(&[&fake], 1).await;
    rig.run(&rig.engine(
        &new_pool,
        EngineOpts {
            worker: "engine-new".into(),
            ..Default::default()
        },
    ))
    .await;

    assert_eq!(
        fake.submitted().len(),
        1,
        "re-attached, not submitted again"
    );
    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(attempts.len(), 1, "no retry: the budget is used up");
    let a = &attempts[0];
    assert_eq!(a.overall_status, AttemptStatus::Cancelled, "{a:#?}");
    assert!(
        a.failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("stopped by the budget")),
        "{:?}",
        a.failure_reason
    );
    assert_eq!(seg.status, SegmentStatus::NeedsReview);
    // What the GPU really ran, as the server's own timestamps say.
    let probe = retake_comfyui::ComfyClient::new(
        "gpu-a",
        &fake.url(),
        "probe",
        retake_comfyui::client::http_client(),
    )
    .unwrap();
    let ran = probe
        .history(&pid)
        .await
        .unwrap()
        .and_then(|e| e.gpu_seconds())
        .expect("the stopped prompt is in the server's history with its timestamps");
    assert!(
        ran <= BUDGET,
        "the prompt really ran {ran} GPU-s on a budget of {BUDGET}: the re-attached run counted from the re-attach"
    );
    assert!(
        (a.gpu_seconds - ran).abs() < 1e-9,
        "charged {} for a prompt that ran {ran} GPU-s",
        a.gpu_seconds
    );
    let audit = retake_store::testing::budget_audit(
        &retake_store::testing::current_db_url(),
        rig.project.id,
    )
    .await;
    assert!(
        audit.spent + audit.reserved <= BUDGET + 1e-9,
        "spent {} + reserved {} within the budget {BUDGET}",
        audit.spent,
        audit.reserved
    );
    assert_charged(
        &retake_store::testing::current_db_url(),
        rig.project.id,
        &[a],
    )
    .await;
}
