//! The store contract: the same test bodies run against SQLite and PostgreSQL, each on a fresh
//! database.

use retake_core::{
    AttemptStatus, CheckConfig, CheckScore, Parameters, PolicyOverrides, QaVerdict, RetryPolicy,
    ReviewReason, SegmentStatus,
};
use retake_store::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

retake_store::contract_tests!(
    projects_crud_and_conflicts,
    scene_type_policy_round_trips,
    claim_hands_out_each_attempt_once,
    a_completion_claims_the_retry_it_scheduled,
    a_claim_with_completions_takes_only_ready_work,
    passing_verdict_selects_the_attempt,
    failed_verdict_schedules_a_retry_with_a_new_seed,
    duplicate_qa_delivery_is_ignored,
    concurrent_duplicate_deliveries_make_one_retry,
    budget_refuses_what_it_cannot_cover,
    reservations_made_without_a_budget_count_once_one_is_set,
    only_the_lease_owner_finishes,
    expired_leases_are_rescued,
    selection_and_review_actions,
    infra_errors_requeue_then_escalate,
    tokens_and_servers,
    racing_workers_never_overspend_the_budget,
    text_from_outside_with_a_nul_character_is_stored,
    deleting_with_work_in_flight_needs_force,
    a_wait_for_a_server_ends_when_a_server_takes_the_work,
    a_healthy_busy_server_ends_every_wait,
);

const W: &str = "worker-a";

async fn project(store: &Arc<dyn Store>, budget: Option<f64>, enabled: bool) -> Project {
    store
        .create_project(NewProject {
            name: format!("p-{}", uuid::Uuid::new_v4().simple()),
            gpu_budget_seconds: budget,
            default_gpu_estimate_seconds: 10.0,
            default_retry_policy: RetryPolicy {
                enabled,
                ..RetryPolicy::default()
            },
        })
        .await
        .unwrap()
}

async fn scene(store: &Arc<dyn Store>, p: &Project, overrides: PolicyOverrides) -> SceneType {
    store
        .create_scene_type(NewSceneType {
            project_id: p.id,
            name: "portrait".into(),
            backend: "simulated".into(),
            backend_config: serde_json::json!({}),
            workflow_template: serde_json::json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new()
                .with("cfg_scale", 7.0)
                .with("denoise_strength", 0.9),
            qa_checks: vec![
                CheckConfig::new("face_confidence", 0.7, 0.5),
                CheckConfig::new("black_frames", 0.9, 0.8),
            ],
            qa_commands: vec![],
            retry_policy: overrides,
            parameter_domains: Default::default(),
        })
        .await
        .unwrap()
}

async fn submit(store: &Arc<dyn Store>, st: &SceneType, n: usize) -> Vec<Segment> {
    let segs = (0..n)
        .map(|i| NewSegment {
            scene_type_id: st.id,
            label: Some(format!("s{i}")),
            parameters: Parameters::new(),
            rng_seed: 1000 + i as u64,
        })
        .collect();
    store.submit_segments(segs).await.unwrap()
}

fn verdict(face: f64, black: f64) -> QaVerdict {
    QaVerdict {
        scores: vec![
            CheckScore {
                check: "face_confidence".into(),
                score: face,
                details: serde_json::Value::Null,
            },
            CheckScore {
                check: "black_frames".into(),
                score: black,
                details: serde_json::Value::Null,
            },
        ],
        error: None,
        source: "test".into(),
    }
}

fn done(a: &Attempt, worker: &str, v: Option<QaVerdict>) -> GenerationDone {
    GenerationDone {
        attempt_id: a.id,
        worker: worker.into(),
        backend: "simulated".into(),
        output_video_path: Some(format!("/tmp/out-{}.mp4", a.id)),
        gpu_seconds: 8.0,
        verdict: v,
        stopped_by_budget: false,
        scored_by_worker: false,
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn projects_crud_and_conflicts(store: Arc<dyn Store>) {
    let p = project(&store, Some(100.0), false).await;
    let dup = store
        .create_project(NewProject {
            name: p.name.clone(),
            gpu_budget_seconds: None,
            default_gpu_estimate_seconds: 5.0,
            default_retry_policy: RetryPolicy::default(),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
    let p2 = store
        .update_project(
            p.id,
            ProjectPatch {
                gpu_budget_seconds: Some(Some(200.0)),
                ..Default::default()
            },
            Some(p.updated_at),
        )
        .await
        .unwrap();
    assert_eq!(p2.gpu_budget_seconds, Some(200.0));
    let stale = store
        .update_project(p.id, ProjectPatch::default(), Some(p.updated_at))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "a stale precondition must conflict: {stale:?}"
    );
    assert!(matches!(
        store.get_project(99_999).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.list_projects().await.unwrap().len(), 1);
    store.delete_project(p.id, false).await.unwrap();
    assert!(store.list_projects().await.unwrap().is_empty());
}

async fn scene_type_policy_round_trips(store: Arc<dyn Store>) {
    let p = project(&store, None, false).await;
    let o: PolicyOverrides = serde_json::from_value(
        serde_json::json!({"enabled": true, "denoise_jitter": 0.1, "selection_mode": "best_of_n"}),
    )
    .unwrap();
    let st = scene(&store, &p, o.clone()).await;
    let back = store.get_scene_type(st.id).await.unwrap();
    assert_eq!(back.retry_policy, o);
    assert_eq!(back.qa_checks.len(), 2);
    let o2 = PolicyOverrides {
        max_attempts: Some(5),
        ..o
    };
    let updated = store
        .update_scene_type(
            st.id,
            SceneTypePatch {
                retry_policy: Some(o2.clone()),
                ..Default::default()
            },
            Some(back.updated_at),
        )
        .await
        .unwrap();
    assert_eq!(updated.retry_policy, o2);
    let stale = store
        .update_scene_type(st.id, SceneTypePatch::default(), Some(back.updated_at))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })));

    // A seed domain's bound comes back exactly (2^53 − 1, not one below: JSON floats are
    // parsed with correct rounding).
    let seed = DomainRecord {
        min: 0.0,
        min_inclusive: true,
        max: 9_007_199_254_740_991.0,
        integer: true,
    };
    let with_domain = store
        .update_scene_type(
            st.id,
            SceneTypePatch {
                parameter_domains: Some([("seed".to_owned(), seed)].into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(with_domain.parameter_domains["seed"], seed);
    let back = store.get_scene_type(st.id).await.unwrap();
    assert_eq!(back.parameter_domains["seed"].max, 9_007_199_254_740_991.0);
}

async fn claim_hands_out_each_attempt_once(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    let segs = submit(&store, &st, 3).await;
    assert!(segs
        .iter()
        .all(|s| s.status == SegmentStatus::Queued && s.attempt_count == 1));
    let a = store.claim(W, 2, LEASE).await.unwrap();
    let b = store.claim("worker-b", 5, LEASE).await.unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 1);
    assert!(store.claim(W, 5, LEASE).await.unwrap().is_empty());
    let w = &a[0].attempt;
    assert_eq!(w.overall_status, AttemptStatus::Generating);
    assert_eq!(w.worker.as_deref(), Some(W));
    assert!(w.reserved_gpu_seconds > 0.0);
    let proj = store.get_project(p.id).await.unwrap();
    assert!(
        (proj.gpu_reserved_seconds - 30.0).abs() < 1e-6,
        "three attempts reserve 10 s each: {}",
        proj.gpu_reserved_seconds
    );
    assert_eq!(
        store.get_segment(w.segment_id).await.unwrap().status,
        SegmentStatus::Generating
    );
}

fn claim_req(limit: u32) -> Option<ClaimRequest> {
    Some(ClaimRequest {
        worker: W.into(),
        limit,
        lease: LEASE,
    })
}

async fn a_completion_claims_the_retry_it_scheduled(store: Arc<dyn Store>) {
    let p = project(&store, Some(1000.0), true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    let done = store
        .complete_and_claim(
            vec![Completion::Generated(done(
                &w.attempt,
                W,
                Some(verdict(0.3, 1.0)),
            ))],
            claim_req(1),
        )
        .await
        .unwrap();
    let applied = done.applied.into_iter().next().unwrap().unwrap();
    assert_eq!(applied.segment_status, Some(SegmentStatus::Retrying));
    assert_eq!(
        done.claimed.len(),
        1,
        "the retry is claimed in the same transaction"
    );
    let next = &done.claimed[0];
    assert_eq!(next.attempt.id, applied.new_attempts[0]);
    assert_eq!(next.attempt.attempt_number, 2);
    assert_eq!(next.attempt.overall_status, AttemptStatus::Generating);
    assert_eq!(next.attempt.worker.as_deref(), Some(W));
    assert!(next.attempt.lease_expires_at.is_some());
    assert!(next.attempt.reserved_gpu_seconds > 0.0);
    let stored = store.get_attempt(next.attempt.id).await.unwrap();
    assert_eq!(stored.overall_status, AttemptStatus::Generating);
    assert_eq!(stored.worker.as_deref(), Some(W));
    assert_eq!(
        stored.reserved_gpu_seconds,
        next.attempt.reserved_gpu_seconds
    );
    let proj = store.get_project(p.id).await.unwrap();
    assert!((proj.gpu_spent_seconds - 8.0).abs() < 1e-9);
    assert!(
        (proj.gpu_reserved_seconds - next.attempt.reserved_gpu_seconds).abs() < 1e-9,
        "only the retry's reservation remains: {}",
        proj.gpu_reserved_seconds
    );
    let seg = store.get_segment(w.attempt.segment_id).await.unwrap();
    assert_eq!(seg.status, SegmentStatus::Retrying);
    let events = store.list_events(0, Some(seg.id), 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let scheduled = kinds.iter().position(|k| *k == "retry_scheduled").unwrap();
    let started = kinds.iter().rposition(|k| *k == "attempt_started").unwrap();
    assert!(
        scheduled < started,
        "the retry starts after it is scheduled: {kinds:?}"
    );
    assert!(store.claim(W, 5, LEASE).await.unwrap().is_empty());
}

async fn a_claim_with_completions_takes_only_ready_work(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 2).await;
    let mut held = store.claim(W, 2, LEASE).await.unwrap();
    let (b, a) = (held.pop().unwrap(), held.pop().unwrap());
    let waiting = submit(&store, &st, 1).await.remove(0);
    // `a` passes; `b` meets an infrastructure error and waits a minute before it runs again.
    let failure = InfraFailure {
        attempt_id: b.attempt.id,
        worker: W.into(),
        message: "connection reset".into(),
        retriable: true,
        gpu_seconds_spent: 0.0,
        max_infra_retries: 3,
        backoff: Duration::from_secs(60),
        reached_server: true,
    };
    let done = store
        .complete_and_claim(
            vec![
                Completion::Generated(done(&a.attempt, W, Some(verdict(0.9, 1.0)))),
                Completion::Infra(failure),
            ],
            claim_req(5),
        )
        .await
        .unwrap();
    assert!(done
        .applied
        .iter()
        .all(|r| r.as_ref().is_ok_and(|a| a.applied)));
    let claimed: Vec<i64> = done.claimed.iter().map(|w| w.attempt.segment_id).collect();
    assert_eq!(
        claimed,
        vec![waiting.id],
        "only the segment that was ready to run"
    );
    assert_eq!(
        store
            .get_attempt(b.attempt.id)
            .await
            .unwrap()
            .overall_status,
        AttemptStatus::Queued
    );
    assert_eq!(
        store
            .get_segment(a.attempt.segment_id)
            .await
            .unwrap()
            .status,
        SegmentStatus::Passed
    );
    // Without completions it is a plain claim; nothing else is ready.
    let done = store
        .complete_and_claim(vec![], claim_req(5))
        .await
        .unwrap();
    assert!(done.applied.is_empty() && done.claimed.is_empty());
}

async fn passing_verdict_selects_the_attempt(store: Arc<dyn Store>) {
    let p = project(&store, Some(1000.0), true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    let r = store
        .finish_generation(done(&w.attempt, W, Some(verdict(0.9, 1.0))))
        .await
        .unwrap();
    assert!(r.applied);
    assert_eq!(r.segment_status, Some(SegmentStatus::Passed));
    let seg = store.get_segment(w.attempt.segment_id).await.unwrap();
    assert_eq!(seg.selected_attempt_number, Some(1));
    assert_eq!(
        seg.output_video_path.as_deref(),
        Some(format!("/tmp/out-{}.mp4", w.attempt.id).as_str())
    );
    let attempts = store.list_attempts(seg.id).await.unwrap();
    assert!(attempts[0].is_selected);
    let q = attempts[0].quality_scores.as_ref().unwrap();
    assert!((q.overall - 0.95).abs() < 1e-9);
    let proj = store.get_project(p.id).await.unwrap();
    assert!((proj.gpu_spent_seconds - 8.0).abs() < 1e-9);
    assert!(proj.gpu_reserved_seconds.abs() < 1e-9);
    let events = store.list_events(0, Some(seg.id), 100).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "selected"), "{events:?}");
}

async fn failed_verdict_schedules_a_retry_with_a_new_seed(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    let r = store
        .finish_generation(done(&w.attempt, W, Some(verdict(0.3, 1.0))))
        .await
        .unwrap();
    assert_eq!(r.segment_status, Some(SegmentStatus::Retrying));
    assert_eq!(r.new_attempts.len(), 1);
    let attempts = store.list_attempts(w.attempt.segment_id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    let (a1, a2) = (&attempts[0], &attempts[1]);
    assert_eq!(a1.overall_status, AttemptStatus::Failed);
    assert_eq!(a2.overall_status, AttemptStatus::Queued);
    assert_ne!(a1.seed, a2.seed);
    assert_eq!(a2.original_parameters, a1.parameters);
    let j = a2.jitter.as_ref().expect("jitter provenance recorded");
    assert_eq!(j.stream, 2);
    assert!(a2
        .why
        .as_deref()
        .unwrap()
        .contains("face_confidence 0.30 < fail 0.50"));
    let events = store
        .list_events(0, Some(a1.segment_id), 100)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == "retry_scheduled"));
}

async fn duplicate_qa_delivery_is_ignored(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    let r = store
        .finish_generation(done(&w.attempt, W, None))
        .await
        .unwrap();
    assert!(r.applied);
    assert_eq!(
        store
            .get_attempt(w.attempt.id)
            .await
            .unwrap()
            .overall_status,
        AttemptStatus::Scoring
    );
    let first = store
        .deliver_verdict(w.attempt.id, verdict(0.2, 1.0), None)
        .await
        .unwrap();
    let second = store
        .deliver_verdict(w.attempt.id, verdict(0.2, 1.0), None)
        .await
        .unwrap();
    assert!(first.applied);
    assert!(!second.applied);
    assert_eq!(
        store
            .list_attempts(w.attempt.segment_id)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn concurrent_duplicate_deliveries_make_one_retry(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    store
        .finish_generation(done(&w.attempt, W, None))
        .await
        .unwrap();
    let mut tasks = vec![];
    for _ in 0..100 {
        let s = store.clone();
        let id = w.attempt.id;
        tasks.push(tokio::spawn(async move {
            s.deliver_verdict(id, verdict(0.2, 1.0), None).await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().applied {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    let attempts = store.list_attempts(w.attempt.segment_id).await.unwrap();
    assert_eq!(attempts.len(), 2, "exactly one retry");
}

async fn budget_refuses_what_it_cannot_cover(store: Arc<dyn Store>) {
    // Budget 25 s, estimate 10 s: two attempts fit, the third is refused.
    let p = project(&store, Some(25.0), true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 3).await;
    let got = store.claim(W, 3, LEASE).await.unwrap();
    assert_eq!(got.len(), 2);
    let proj = store.get_project(p.id).await.unwrap();
    assert!(proj.gpu_spent_seconds + proj.gpu_reserved_seconds <= 25.0 + 1e-9);
    let refused = store
        .list_segments(&SegmentFilter {
            project_id: Some(p.id),
            status: Some(SegmentStatus::NeedsReview),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].review_reason,
        Some(ReviewReason::BudgetExhausted)
    );
    // A failure now cannot afford a retry (25 − 2×8 spent = 9 < 10): escalate, not retry.
    store
        .finish_generation(done(&got[0].attempt, W, Some(verdict(0.9, 1.0))))
        .await
        .unwrap();
    let r = store
        .finish_generation(done(&got[1].attempt, W, Some(verdict(0.2, 1.0))))
        .await
        .unwrap();
    assert_eq!(r.segment_status, Some(SegmentStatus::NeedsReview));
    let seg = store.get_segment(got[1].attempt.segment_id).await.unwrap();
    assert_eq!(seg.review_reason, Some(ReviewReason::BudgetExhausted));
    let proj = store.get_project(p.id).await.unwrap();
    assert!(proj.gpu_spent_seconds <= 25.0);
    assert!(
        !store
            .extend_reservation(got[1].attempt.id, W, 1.0)
            .await
            .unwrap(),
        "a finished attempt cannot grow"
    );
}

async fn reservations_made_without_a_budget_count_once_one_is_set(store: Arc<dyn Store>) {
    // No budget: claims reserve without a cap (estimate 10 s each).
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 4).await;
    let first = store.claim(W, 2, LEASE).await.unwrap();
    assert_eq!(first.len(), 2);
    let proj = store.get_project(p.id).await.unwrap();
    assert!((proj.gpu_reserved_seconds - 20.0).abs() < 1e-9, "{proj:?}");
    // A budget of 35 s leaves room for one more 10 s reservation beside the 20 s running.
    let proj = store
        .update_project(
            p.id,
            ProjectPatch {
                gpu_budget_seconds: Some(Some(35.0)),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(proj.gpu_budget_seconds, Some(35.0));
    let second = store.claim(W, 2, LEASE).await.unwrap();
    assert_eq!(second.len(), 1, "only one more attempt fits the new budget");
    let proj = store.get_project(p.id).await.unwrap();
    assert!((proj.gpu_reserved_seconds - 30.0).abs() < 1e-9, "{proj:?}");
    assert!(proj.gpu_spent_seconds + proj.gpu_reserved_seconds <= 35.0 + 1e-9);
    // Finishing releases the reservation and spends what ran, whichever way it was taken.
    for w in first.iter().chain(&second) {
        store
            .finish_generation(done(&w.attempt, W, Some(verdict(0.9, 1.0))))
            .await
            .unwrap();
    }
    let proj = store.get_project(p.id).await.unwrap();
    assert!(proj.gpu_reserved_seconds.abs() < 1e-9, "{proj:?}");
    assert!((proj.gpu_spent_seconds - 24.0).abs() < 1e-9, "{proj:?}");
}

async fn only_the_lease_owner_finishes(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    let r = store
        .finish_generation(done(&w.attempt, "intruder", Some(verdict(0.9, 1.0))))
        .await
        .unwrap();
    assert!(!r.applied);
    assert_eq!(
        store
            .get_attempt(w.attempt.id)
            .await
            .unwrap()
            .overall_status,
        AttemptStatus::Generating
    );
    assert_eq!(
        store
            .heartbeat("intruder", &[w.attempt.id], LEASE)
            .await
            .unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(
        store.heartbeat(W, &[w.attempt.id], LEASE).await.unwrap(),
        vec![w.attempt.id]
    );
}

async fn expired_leases_are_rescued(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    let w = store
        .claim(W, 1, Duration::from_millis(1))
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.rescue_expired().await.unwrap(), vec![w.attempt.id]);
    let a = store.get_attempt(w.attempt.id).await.unwrap();
    assert_eq!(a.overall_status, AttemptStatus::Queued);
    assert!(a.worker.is_none());
    assert_eq!(
        store.get_segment(a.segment_id).await.unwrap().status,
        SegmentStatus::Queued,
        "nothing of it runs any more"
    );
    assert!(
        store
            .get_project(p.id)
            .await
            .unwrap()
            .gpu_reserved_seconds
            .abs()
            < 1e-9
    );
    // The late worker cannot finish it any more; the new owner can.
    assert!(
        !store
            .finish_generation(done(&w.attempt, W, Some(verdict(0.9, 1.0))))
            .await
            .unwrap()
            .applied
    );
    let again = store.claim("worker-b", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(again.attempt.id, w.attempt.id);
    assert!(
        store
            .finish_generation(done(&again.attempt, "worker-b", Some(verdict(0.9, 1.0))))
            .await
            .unwrap()
            .applied
    );
    let events = store.list_events(0, Some(a.segment_id), 100).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "lease_rescued"));
}

async fn selection_and_review_actions(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(
        &store,
        &p,
        serde_json::from_value(
            serde_json::json!({"selection_mode": "best_of_n", "max_attempts": 3}),
        )
        .unwrap(),
    )
    .await;
    submit(&store, &st, 1).await;
    // Segment A: fail, pass 0.8, pass 0.9 → best of N picks attempt 3.
    let mut seg_a = None;
    for face in [0.3, 0.8, 0.95] {
        let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
        seg_a.get_or_insert(w.attempt.segment_id);
        store
            .finish_generation(done(&w.attempt, W, Some(verdict(face, 1.0))))
            .await
            .unwrap();
    }
    let a = store.get_segment(seg_a.unwrap()).await.unwrap();
    assert_eq!(a.status, SegmentStatus::Passed);
    assert_eq!(a.selected_attempt_number, Some(3));
    // A person prefers attempt 2; attempt 1 failed and cannot be selected.
    let err = store
        .select_attempt(a.id, 1, "alice", false)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let a = store.select_attempt(a.id, 2, "alice", false).await.unwrap();
    assert_eq!(a.selected_attempt_number, Some(2));
    let attempts = store.list_attempts(a.id).await.unwrap();
    assert_eq!(attempts.iter().filter(|x| x.is_selected).count(), 1);
    assert_eq!(attempts[1].selected_by.as_deref(), Some("alice"));

    // Segment B fails three times → review; re-run, then accept a failed attempt as override.
    submit(&store, &st, 1).await;
    let mut seg_b = 0;
    for _ in 0..3 {
        let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
        seg_b = w.attempt.segment_id;
        store
            .finish_generation(done(&w.attempt, W, Some(verdict(0.2, 1.0))))
            .await
            .unwrap();
    }
    let b = store.get_segment(seg_b).await.unwrap();
    assert_eq!(b.status, SegmentStatus::NeedsReview);
    assert_eq!(b.review_reason, Some(ReviewReason::AllAttemptsFailed));
    let (b, a4) = store
        .rerun_segment(
            b.id,
            "bob",
            RerunOverrides {
                parameters: Some(Parameters::new().with("cfg_scale", 5.5)),
                jitter_scale: Some(2.0),
            },
        )
        .await
        .unwrap();
    assert_eq!(b.status, SegmentStatus::Retrying);
    assert_eq!(a4.attempt_number, 4);
    assert!(a4.why.as_deref().unwrap().contains("bob"));
    // The re-run starts round 2 and records who asked for it.
    assert_eq!((a4.round, a4.requested_by.as_deref()), (2, Some("bob")));
    let bad = store
        .rerun_segment(b.id, "bob", RerunOverrides::default())
        .await;
    assert!(
        matches!(bad, Err(StoreError::Conflict { .. })),
        "only a segment in review can be re-run"
    );
    // Round 2 has its own max_attempts (3): the re-run and two automatic retries.
    for n in 4..=6 {
        let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
        assert_eq!((w.attempt.attempt_number, w.attempt.round), (n, 2));
        if n == 4 {
            assert_eq!(w.attempt.id, a4.id);
        } else {
            assert_eq!(w.attempt.requested_by, None, "an automatic retry");
        }
        store
            .finish_generation(done(&w.attempt, W, Some(verdict(0.25, 1.0))))
            .await
            .unwrap();
    }
    let b = store.get_segment(b.id).await.unwrap();
    assert_eq!(b.status, SegmentStatus::NeedsReview);
    assert_eq!(b.review_reason, Some(ReviewReason::AllAttemptsFailed));
    assert!(
        b.decision_note
            .as_deref()
            .unwrap()
            .starts_with("round 2: all 3 attempts failed"),
        "{:?}",
        b.decision_note
    );
    let b = store.select_attempt(b.id, 2, "carol", true).await.unwrap();
    assert_eq!(b.status, SegmentStatus::Approved);
    let sel = store
        .list_attempts(b.id)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.is_selected)
        .unwrap();
    assert!(sel.human_override);
    assert_eq!(sel.overall_status, AttemptStatus::Failed);

    let stats = store.project_stats(p.id).await.unwrap();
    assert_eq!(stats.segments, 2);
    assert_eq!(stats.rescued_by_retry, 1);
    assert_eq!(stats.approved, 1);
    assert_eq!(
        stats.best_of_n_beat_first_pass, 0,
        "alice picked the first pass herself"
    );
    let patterns = store.failure_patterns(Some(st.id)).await.unwrap();
    let face = patterns
        .iter()
        .find(|f| f.check == "face_confidence")
        .unwrap();
    assert_eq!(face.failures, 7);
    assert_eq!(face.failed_segments, 2);
    assert_eq!(face.rescues, 1);
}

async fn infra_errors_requeue_then_escalate(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    for i in 0..3 {
        let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
        assert_eq!(
            w.attempt.attempt_number, 1,
            "an infrastructure retry keeps the attempt"
        );
        let r = store
            .record_infra_failure(InfraFailure {
                attempt_id: w.attempt.id,
                worker: W.into(),
                message: format!("connection refused ({i})"),
                retriable: true,
                gpu_seconds_spent: 1.5,
                max_infra_retries: 2,
                backoff: Duration::ZERO,
                reached_server: true,
            })
            .await
            .unwrap();
        assert!(r.applied);
    }
    let a = store.list_attempts(1).await.unwrap_or_default();
    let seg = store
        .list_segments(&SegmentFilter {
            project_id: Some(p.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(seg.status, SegmentStatus::NeedsReview);
    assert_eq!(seg.review_reason, Some(ReviewReason::InfraError));
    let attempts = store.list_attempts(seg.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].infra_errors.len(), 3);
    assert!(
        (attempts[0].gpu_seconds - 4.5).abs() < 1e-9,
        "GPU spent on failed tries is charged"
    );
    let _ = a;

    // A reviewer re-runs it once the outage is over: the re-run passes, and the old
    // infrastructure error (round 1) no longer sends the segment back to review.
    let (_, rerun) = store
        .rerun_segment(seg.id, "dana", RerunOverrides::default())
        .await
        .unwrap();
    assert_eq!((rerun.attempt_number, rerun.round), (2, 2));
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    assert_eq!(w.attempt.id, rerun.id);
    store
        .finish_generation(done(&w.attempt, W, Some(verdict(0.9, 1.0))))
        .await
        .unwrap();
    let seg = store.get_segment(seg.id).await.unwrap();
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(seg.selected_attempt_number, Some(2));
}

async fn tokens_and_servers(store: Arc<dyn Store>) {
    let t = store
        .create_token("ci", Role::Creator, "abc123", None)
        .await
        .unwrap();
    assert_eq!(
        store.token_by_hash("abc123").await.unwrap().unwrap().id,
        t.id
    );
    assert!(store.token_by_hash("nope").await.unwrap().is_none());
    store
        .upsert_comfy_server("gpu-1", "http://127.0.0.1:8188", 2, false)
        .await
        .unwrap();
    let s = store
        .upsert_comfy_server("gpu-1", "http://127.0.0.1:8189", 3, true)
        .await
        .unwrap();
    assert_eq!(s.url, "http://127.0.0.1:8189");
    assert!(s.drained);
    assert_eq!(store.list_comfy_servers().await.unwrap().len(), 1);
    store.delete_comfy_server("gpu-1").await.unwrap();
    assert!(matches!(
        store.delete_comfy_server("gpu-1").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Eight workers race to claim and finish attempts of a project whose budget covers only a few.
/// Read straight from the database, at every moment and at the end: `spent + reserved` never
/// exceeds the budget, and the append-only ledger accounts for every second spent.
async fn racing_workers_never_overspend_the_budget(store: Arc<dyn Store>) {
    // Budget 45 s, estimate 10 s, 8 s per generation: four or five attempts run, never more.
    let p = project(&store, Some(45.0), true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 12).await;
    let url = retake_store::testing::current_db_url();
    let racing = Arc::new(AtomicBool::new(true));
    let auditor = tokio::spawn({
        let (url, racing, project_id) = (url.clone(), racing.clone(), p.id);
        async move {
            let mut audits = 0u32;
            while racing.load(SeqCst) || audits == 0 {
                let a = retake_store::testing::budget_audit(&url, project_id).await;
                assert!(
                    a.spent + a.reserved <= 45.0 + 1e-9,
                    "overspent while racing: {a:?}"
                );
                audits += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            audits
        }
    });
    let busy = Arc::new(AtomicUsize::new(0));
    let mut workers = vec![];
    for i in 0..8u32 {
        let (s, busy) = (store.clone(), busy.clone());
        workers.push(tokio::spawn(async move {
            let name = format!("racer-{i}");
            let mut finished = 0u32;
            loop {
                busy.fetch_add(1, SeqCst);
                let got = s.claim(&name, 1 + i % 2, LEASE).await.unwrap();
                if got.is_empty() {
                    busy.fetch_sub(1, SeqCst);
                    // Done when nobody is between a claim and its finish and nothing is queued.
                    if busy.load(SeqCst) == 0 && s.pending_work().await.unwrap() == 0 {
                        return finished;
                    }
                    s.wait_for_work(Duration::from_millis(10)).await;
                    continue;
                }
                for w in &got {
                    // Some attempts fail, so their segments ask for retries the budget must refuse.
                    let face = if (w.attempt.segment_id + i64::from(i)) % 2 == 0 {
                        0.2
                    } else {
                        0.9
                    };
                    let r = s
                        .finish_generation(done(&w.attempt, &name, Some(verdict(face, 1.0))))
                        .await
                        .unwrap();
                    assert!(r.applied, "the claimer owns its attempt");
                    finished += 1;
                }
                busy.fetch_sub(1, SeqCst);
            }
        }));
    }
    let mut finished = 0;
    for w in workers {
        finished += w.await.unwrap();
    }
    racing.store(false, SeqCst);
    assert!(auditor.await.unwrap() > 0);

    let a = retake_store::testing::budget_audit(&url, p.id).await;
    assert!(a.spent + a.reserved <= 45.0 + 1e-9, "{a:?}");
    assert!(
        a.reserved.abs() < 1e-9,
        "every reservation was settled: {a:?}"
    );
    assert!(
        (a.ledger_spent - a.spent).abs() < 1e-9,
        "the ledger accounts for every second spent: {a:?}"
    );
    assert_eq!(
        a.ledger_rows,
        i64::from(finished),
        "one ledger row per finished attempt"
    );
    assert!(
        (a.spent - 8.0 * f64::from(finished)).abs() < 1e-9,
        "{a:?} after {finished} generations"
    );
    assert!(
        (4..=5).contains(&finished),
        "the budget covers four or five generations, not {finished}"
    );
    let segs = store
        .list_segments(&SegmentFilter {
            project_id: Some(p.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(segs.len(), 12);
    assert!(
        segs.iter().all(|s| s.status.is_terminal()),
        "{:?}",
        segs.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    assert!(segs
        .iter()
        .any(|s| s.review_reason == Some(ReviewReason::BudgetExhausted)));
    let proj = store.get_project(p.id).await.unwrap();
    assert_eq!(
        (proj.gpu_spent_seconds, proj.gpu_reserved_seconds),
        (a.spent, a.reserved.max(0.0))
    );
}

/// A generation server's error text is stored whatever it contains (PostgreSQL cannot hold a NUL
/// character in text or JSON; failing the transaction over it would strand the attempt).
async fn text_from_outside_with_a_nul_character_is_stored(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 1).await;
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    let r = store
        .record_infra_failure(InfraFailure {
            attempt_id: w.attempt.id,
            worker: W.into(),
            message: "node 3: bad\0bytes".into(),
            retriable: false,
            gpu_seconds_spent: 0.5,
            max_infra_retries: 2,
            backoff: Duration::ZERO,
            reached_server: true,
        })
        .await
        .unwrap();
    assert!(r.applied);
    let a = store.get_attempt(w.attempt.id).await.unwrap();
    assert!(
        a.failure_reason.as_deref().unwrap().contains("node 3: bad"),
        "{a:?}"
    );
    assert!(a.infra_errors[0].message.starts_with("node 3: bad"));
    let seg = store.get_segment(a.segment_id).await.unwrap();
    assert_eq!(seg.review_reason, Some(ReviewReason::WorkflowError));
}

async fn deleting_with_work_in_flight_needs_force(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    submit(&store, &st, 2).await;
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);

    // Without force both deletes refuse, with the counts, and delete nothing.
    for refused in [
        store.delete_scene_type(st.id, false).await,
        store.delete_project(p.id, false).await,
    ] {
        match refused {
            Err(StoreError::Conflict { message, .. }) => assert!(
                message.contains(
                    "2 segments in progress, 2 attempts (1 generating, 0 scoring, 1 queued)"
                ),
                "{message}"
            ),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(store.get_scene_type(st.id).await.unwrap().id, st.id);

    // Forced, the in-flight attempts go with the project and are returned to be stopped.
    let gone = store.delete_project(p.id, true).await.unwrap();
    let mut ids: Vec<i64> = gone.iter().map(|a| a.id).collect();
    ids.sort();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&w.attempt.id));
    assert!(matches!(
        store.get_project(p.id).await,
        Err(StoreError::NotFound { .. })
    ));

    // The worker that was generating finishes later: nothing is recorded, nothing fails.
    let late = store
        .finish_generation(done(&w.attempt, W, Some(verdict(0.9, 1.0))))
        .await
        .unwrap();
    assert!(!late.applied);
    let late = store
        .record_infra_failure(InfraFailure {
            attempt_id: w.attempt.id,
            worker: W.into(),
            message: "connection refused".into(),
            retriable: true,
            gpu_seconds_spent: 1.0,
            max_infra_retries: 2,
            backoff: Duration::ZERO,
            reached_server: true,
        })
        .await
        .unwrap();
    assert!(!late.applied);
    assert!(store.claim(W, 4, LEASE).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_scene_type(st.id, true).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// The wait for a healthy generation server, as it looks on the attempt and its segment.
fn no_server(a: &Attempt) -> InfraFailure {
    InfraFailure {
        attempt_id: a.id,
        worker: W.into(),
        message: "no_healthy_server — gpu-a: connection refused".into(),
        retriable: true,
        gpu_seconds_spent: 0.0,
        max_infra_retries: 2,
        backoff: Duration::ZERO,
        reached_server: false,
    }
}

/// Work that found no healthy server is queued and not started (its segment too); the claim
/// that runs it later is its start; a server taking it ends the wait and its waiting reason, so
/// an attempt that then passes does not say it waits.
async fn a_wait_for_a_server_ends_when_a_server_takes_the_work(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    let seg = submit(&store, &st, 1).await.remove(0);
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    assert!(w.attempt.started_at.is_some());
    let r = store
        .record_infra_failure(no_server(&w.attempt))
        .await
        .unwrap();
    assert_eq!(r.segment_status, Some(SegmentStatus::Queued));

    let a = store.get_attempt(w.attempt.id).await.unwrap();
    assert_eq!(a.overall_status, AttemptStatus::Queued);
    let since = a.waiting_since.expect("waiting");
    assert!(a
        .failure_reason
        .as_deref()
        .unwrap()
        .starts_with("waiting for a healthy ComfyUI server since"));
    assert_eq!(a.started_at, None, "nothing ran: it has not started");
    assert_eq!(
        store.get_segment(seg.id).await.unwrap().status,
        SegmentStatus::Queued,
        "its only attempt is back in the queue"
    );
    assert_eq!(store.waiting_for_server().await.unwrap().attempts, 1);

    // Claimed again: it starts now, and still looks for a server.
    let w = store.claim(W, 1, LEASE).await.unwrap().remove(0);
    let started = w.attempt.started_at.expect("started at this claim");
    assert!(started >= since, "started {started}, waiting since {since}");
    assert_eq!(
        store.get_segment(seg.id).await.unwrap().status,
        SegmentStatus::Generating
    );
    assert_eq!(store.waiting_for_server().await.unwrap().attempts, 1);

    // A server accepts it: the wait and its reason end.
    store
        .set_provenance(
            w.attempt.id,
            W,
            serde_json::json!({"prompt_id": "p-1", "server": "gpu-a"}),
        )
        .await
        .unwrap();
    let a = store.get_attempt(w.attempt.id).await.unwrap();
    assert_eq!((a.waiting_since, a.failure_reason.as_deref()), (None, None));
    assert_eq!(a.started_at, Some(started));
    assert_eq!(
        store.waiting_for_server().await.unwrap(),
        ServerWait::default()
    );

    store
        .finish_generation(done(&w.attempt, W, Some(verdict(0.9, 1.0))))
        .await
        .unwrap();
    let a = store.get_attempt(w.attempt.id).await.unwrap();
    assert_eq!(a.overall_status, AttemptStatus::Passed);
    assert_eq!(a.failure_reason, None);
    assert_eq!(a.started_at, Some(started));
}

/// A server is healthy but busy: whatever waited for a healthy server — queued or claimed and
/// looking — stops waiting at once (with an event each); the count `/api/health` shows is zero.
async fn a_healthy_busy_server_ends_every_wait(store: Arc<dyn Store>) {
    let p = project(&store, None, true).await;
    let st = scene(&store, &p, PolicyOverrides::default()).await;
    let segs = submit(&store, &st, 3).await;
    assert_eq!(store.end_server_wait().await.unwrap(), 0, "nothing waits");
    for w in store.claim(W, 3, LEASE).await.unwrap() {
        store
            .record_infra_failure(no_server(&w.attempt))
            .await
            .unwrap();
    }
    assert_eq!(store.waiting_for_server().await.unwrap().attempts, 3);
    let looking = store.claim(W, 1, LEASE).await.unwrap().remove(0);

    assert_eq!(store.end_server_wait().await.unwrap(), 3);
    assert_eq!(
        store.waiting_for_server().await.unwrap(),
        ServerWait::default()
    );
    for s in &segs {
        let a = store.list_attempts(s.id).await.unwrap().remove(0);
        assert_eq!((a.waiting_since, a.failure_reason.as_deref()), (None, None));
        let events = store.list_events(0, Some(s.id), 100).await.unwrap();
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind == "server_available")
                .count(),
            1,
            "{events:?}"
        );
    }
    let a = store.get_attempt(looking.attempt.id).await.unwrap();
    assert_eq!(
        a.overall_status,
        AttemptStatus::Generating,
        "still its worker's"
    );
    assert_eq!(store.end_server_wait().await.unwrap(), 0);
}
