//! Server faults through the engine: each one is an infrastructure error on the attempt, with the
//! server's words, retried with the same workflow without using up a QA attempt, and charged the
//! GPU time it really spent. A workflow the server refuses is not retried; retries are bounded.

use crate::fixture::*;
use retake_comfyui::fake::{FakeComfy, Fault};
use retake_core::{AttemptStatus, ReviewReason, SegmentStatus};
use retake_store::{Store, WORKFLOW_ERROR_PREFIX};
use std::sync::Arc;
use std::time::Duration;

/// What the attempt's infrastructure error must say.
struct Expect {
    kind: &'static str,
    words: &'static [&'static str],
    /// The fault struck after the prompt had started on the GPU.
    ran_on_gpu: bool,
}

/// One `fault` on a single server: one infra error on attempt 1, then the same workflow again
/// under the next try's prompt id, and attempt 1 passes.
async fn fault_is_retried_with_the_same_workflow(
    store: Arc<dyn Store>,
    fault: Fault,
    expect: Expect,
    timeout: Duration,
) {
    let fake = FakeComfy::start("gpu-a").await;
    // Long enough that a fault at the sampler comes measurably after the prompt started.
    fake.set_exec_time(Duration::from_millis(300));
    let pool = pool_of(&[&fake], 1).await;
    let rig = rig(
        store,
        serde_json::json!({"enabled": true, "max_attempts": 3, "cfg_jitter": 1.0}),
    )
    .await;
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);
    fake.inject(fault, 1);

    rig.run(&rig.engine(
        &pool,
        EngineOpts {
            timeout,
            ..Default::default()
        },
    ))
    .await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(
        attempts.len(),
        1,
        "{fault:?}: an infrastructure retry is not a new QA attempt: {attempts:#?}"
    );
    let a = &attempts[0];
    assert_eq!(
        a.overall_status,
        AttemptStatus::Passed,
        "{fault:?}: {:?}",
        a.failure_reason
    );
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(seg.selected_attempt_number, Some(1));

    assert_eq!(a.infra_errors.len(), 1, "{fault:?}: {:#?}", a.infra_errors);
    let e = &a.infra_errors[0];
    assert!(e.retried);
    assert!(
        e.message.starts_with(expect.kind),
        "{fault:?}: {:?} should start with {:?}",
        e.message,
        expect.kind
    );
    assert!(
        e.message.contains("gpu-a"),
        "{fault:?}: {:?} names the server",
        e.message
    );
    for w in expect.words {
        assert!(
            e.message.contains(w),
            "{fault:?}: {:?} should contain the server's words {w:?}",
            e.message
        );
    }

    // The same workflow went to the server again, under the second try's prompt id.
    let submitted = fake.submitted();
    assert_eq!(submitted.len(), 2, "{fault:?}: tried twice");
    assert_eq!(
        sampler_inputs(&submitted[0]),
        sampler_inputs(&submitted[1]),
        "{fault:?}: same seed, cfg and denoise on the retry"
    );
    assert_workflow_carries(&submitted[0], a, 0);
    assert_workflow_carries(&submitted[1], a, 1);
    rig.assert_provenance_matches(a, &submitted[1], 1, "gpu-a");
    assert!(fake.finished().contains(&rig.prompt_id(a, 1)));
    rig.assert_output_in_attempt_folder(a);
    assert_eq!(rig.qa.scored().len(), 1, "only the good output was scored");

    // The failed try is charged what it spent on the GPU, on top of the successful one.
    if expect.ran_on_gpu {
        assert!(
            e.gpu_seconds > 0.0,
            "{fault:?}: the failed try ran on the GPU and is charged for it"
        );
    } else {
        assert_eq!(e.gpu_seconds, 0.0, "{fault:?}: nothing ran");
    }
    assert!(
        a.gpu_seconds > e.gpu_seconds,
        "{fault:?}: attempt charged {} after a failed try of {}",
        a.gpu_seconds,
        e.gpu_seconds
    );
    assert_eq!(
        a.provenance["cached"], false,
        "{fault:?}: the retry wrote a new output rather than replaying the cache"
    );
    let url = retake_store::testing::current_db_url();
    assert_charged(&url, rig.project.id, &[a]).await;
    assert_eq!(
        retake_store::testing::budget_audit(&url, rig.project.id)
            .await
            .ledger_rows,
        2,
        "one ledger row per try"
    );
}

const NORMAL: Duration = Duration::from_secs(20);

pub async fn execution_error_is_retried_with_the_same_workflow(store: Arc<dyn Store>) {
    let expect = Expect {
        kind: "execution_error",
        words: &[
            "RuntimeError",
            "KSampler",
            "mat1 and mat2 shapes cannot be multiplied",
        ],
        ran_on_gpu: true,
    };
    fault_is_retried_with_the_same_workflow(store, Fault::ExecutionError, expect, NORMAL).await;
}

pub async fn out_of_memory_is_retried_with_the_same_workflow(store: Arc<dyn Store>) {
    let expect = Expect {
        kind: "out_of_memory",
        words: &["torch.OutOfMemoryError", "ran out of memory on your GPU"],
        ran_on_gpu: true,
    };
    fault_is_retried_with_the_same_workflow(store, Fault::OutOfMemory, expect, NORMAL).await;
}

pub async fn interruption_at_the_server_is_retried_with_the_same_workflow(store: Arc<dyn Store>) {
    let expect = Expect {
        kind: "interrupted",
        words: &["interrupted at node 3"],
        ran_on_gpu: true,
    };
    fault_is_retried_with_the_same_workflow(store, Fault::Interrupted, expect, NORMAL).await;
}

pub async fn malformed_prompt_answer_is_retried_with_the_same_workflow(store: Arc<dyn Store>) {
    let expect = Expect {
        kind: "malformed",
        words: &["/prompt"],
        ran_on_gpu: false,
    };
    fault_is_retried_with_the_same_workflow(store, Fault::MalformedPrompt, expect, NORMAL).await;
}

pub async fn malformed_history_is_retried_with_the_same_workflow(store: Arc<dyn Store>) {
    let expect = Expect {
        kind: "malformed",
        words: &["/history/", "502 Bad Gateway"],
        ran_on_gpu: true,
    };
    fault_is_retried_with_the_same_workflow(store, Fault::MalformedHistory, expect, NORMAL).await;
}

pub async fn output_missing_from_history_is_retried_with_the_same_workflow(store: Arc<dyn Store>) {
    let expect = Expect {
        kind: "missing_output",
        words: &["lists no output file"],
        ran_on_gpu: true,
    };
    fault_is_retried_with_the_same_workflow(store, Fault::EmptyOutputs, expect, NORMAL).await;
}

pub async fn output_404_is_retried_with_the_same_workflow(store: Arc<dyn Store>) {
    let expect = Expect {
        kind: "missing_output",
        words: &["/view answered 404"],
        ran_on_gpu: true,
    };
    fault_is_retried_with_the_same_workflow(store, Fault::ViewNotFound, expect, NORMAL).await;
}

pub async fn hung_prompt_times_out_and_is_retried_with_the_same_workflow(store: Arc<dyn Store>) {
    let expect = Expect {
        kind: "timeout",
        words: &["timed out after"],
        ran_on_gpu: true,
    };
    fault_is_retried_with_the_same_workflow(store, Fault::Hang, expect, Duration::from_secs(2))
        .await;
}

/// The only server is down, then comes back without its queue (a restart): every queued
/// segment waits — none goes to review, no infrastructure retry is used up, the wait is visible
/// on the attempts and in `waiting_for_server` — and all resume by themselves, each as its
/// attempt 1.
pub async fn an_outage_holds_the_queue_until_the_server_is_back(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 2).await;
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    fake.stop().await;
    let segs = rig.submit(vec![vec![PASS]; 8]).await;

    // One infrastructure retry would have sent every segment to review within a few tries.
    let engine = rig.engine(
        &pool,
        EngineOpts {
            max_infra_retries: 1,
            ..Default::default()
        },
    );
    let run = tokio::spawn(async move { engine.run_until_idle().await });
    eventually("every attempt waits for a server", || {
        let store = rig.store.clone();
        async move { store.waiting_for_server().await.unwrap().attempts == 8 }
    })
    .await;
    let wait = rig.store.waiting_for_server().await.unwrap();
    let since = wait.since.expect("since when");
    let mut waited_since = std::collections::HashMap::new();
    for s in &segs {
        let (seg, attempts) = rig.segment(s.id).await;
        assert!(
            !matches!(seg.status, SegmentStatus::NeedsReview),
            "segment {} went to review during the outage",
            s.id
        );
        assert_eq!(attempts.len(), 1);
        let a = &attempts[0];
        assert!(a.infra_errors.is_empty(), "{:#?}", a.infra_errors);
        assert!(
            a.waiting_since.is_some_and(|t| t >= since),
            "{:?}",
            a.waiting_since
        );
        waited_since.insert(a.id, a.waiting_since.unwrap());
        let reason = a.failure_reason.as_deref().unwrap_or("");
        assert!(
            reason.starts_with("waiting for a healthy ComfyUI server since ")
                && reason.contains("gpu-a"),
            "{reason}"
        );
        if a.overall_status == AttemptStatus::Queued {
            assert_eq!(
                a.reserved_gpu_seconds, 0.0,
                "a waiting attempt holds no budget"
            );
        }
    }
    let events = rig
        .store
        .list_events(0, Some(segs[0].id), 1000)
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "waiting_for_server")
            .count(),
        1,
        "one event when the wait begins, not one per look"
    );
    assert!(fake.submitted().is_empty());

    fake.restart().await;
    tokio::time::timeout(Duration::from_secs(40), run)
        .await
        .expect("idle within 40 s")
        .unwrap()
        .unwrap();

    for s in &segs {
        let (seg, attempts) = rig.segment(s.id).await;
        assert_eq!(seg.status, SegmentStatus::Passed);
        assert_eq!(attempts.len(), 1);
        let a = &attempts[0];
        assert_eq!(a.overall_status, AttemptStatus::Passed);
        assert!(a.infra_errors.is_empty(), "{:#?}", a.infra_errors);
        assert_eq!(
            a.waiting_since, None,
            "the wait ended when a server took it"
        );
        assert_eq!(
            a.failure_reason, None,
            "a passing attempt does not say it waits for a server"
        );
        // It started when it was claimed after its wait, not at the claim that found no server.
        assert!(
            a.started_at.is_some_and(|t| t >= waited_since[&a.id]),
            "started {:?}, waiting since {:?}",
            a.started_at,
            waited_since[&a.id]
        );
        rig.assert_output_in_attempt_folder(a);
    }
    assert_eq!(fake.submitted().len(), 8, "each ran once");
    assert_eq!(rig.store.waiting_for_server().await.unwrap().attempts, 0);
    let attempts: Vec<_> = {
        let mut all = vec![];
        for s in &segs {
            all.extend(rig.segment(s.id).await.1);
        }
        all
    };
    assert_charged(
        &retake_store::testing::current_db_url(),
        rig.project.id,
        &attempts.iter().collect::<Vec<_>>(),
    )
    .await;
}

/// One of two servers is down: the attempt runs on the other one, as attempt 1.
pub async fn server_down_sends_work_to_the_healthy_server(store: Arc<dyn Store>) {
    let down = FakeComfy::start("gpu-a").await;
    let up = FakeComfy::start("gpu-b").await;
    let pool = pool_of(&[&down, &up], 1).await;
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);
    down.inject(Fault::ConnectionRefused, 1);

    rig.run(&rig.engine(&pool, EngineOpts::default())).await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    // Whether gpu-a was tried first depends on how soon the pool noticed it was gone; if it
    // was, the refusal is on record and the retry went elsewhere.
    for e in &a.infra_errors {
        assert!(
            e.message.contains("gpu-a: connection refused"),
            "{:?}",
            e.message
        );
    }
    assert!(down.submitted().is_empty());
    let submitted = up.submitted();
    assert_eq!(submitted.len(), 1);
    let tries = a.infra_errors.len() as u32;
    assert_workflow_carries(&submitted[0], a, tries);
    rig.assert_provenance_matches(a, &submitted[0], tries, "gpu-b");
    rig.assert_output_in_attempt_folder(a);
}

/// A 400 with `node_errors` is the workflow's fault: no retry, straight to review.
pub async fn rejected_workflow_goes_to_review_without_retry(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let rig = rig(
        store,
        serde_json::json!({"enabled": true, "max_attempts": 3}),
    )
    .await;
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);
    fake.inject(Fault::NodeErrors, 1);

    rig.run(&rig.engine(&pool, EngineOpts::default())).await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(seg.status, SegmentStatus::NeedsReview);
    assert_eq!(seg.review_reason, Some(ReviewReason::WorkflowError));
    assert_eq!(attempts.len(), 1, "no QA retry either");
    let a = &attempts[0];
    assert_eq!(a.overall_status, AttemptStatus::InfraError);
    let reason = a.failure_reason.as_deref().unwrap_or("");
    assert!(reason.starts_with(WORKFLOW_ERROR_PREFIX), "{reason}");
    for w in [
        "workflow rejected",
        "node errors",
        "custom_validation_failed",
        "injected fault",
        "KSampler",
    ] {
        assert!(
            reason.contains(w),
            "{reason:?} should show the node errors ({w:?})"
        );
    }
    assert_eq!(a.infra_errors.len(), 1);
    assert!(!a.infra_errors[0].retried);
    assert_eq!(fake.submitted().len(), 1, "not resubmitted");
    assert_eq!(a.provenance["error"], "node_errors");
    assert_eq!(a.gpu_seconds, 0.0);
    assert!(rig.qa.scored().is_empty());
    assert_charged(
        &retake_store::testing::current_db_url(),
        rig.project.id,
        &[a],
    )
    .await;
}

/// A fault that outlasts `max_infra_retries` sends the segment to review as `infra_error`.
pub async fn infra_retries_are_bounded(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    fake.set_exec_time(Duration::from_millis(300));
    let pool = pool_of(&[&fake], 1).await;
    let rig = rig(
        store,
        serde_json::json!({"enabled": true, "max_attempts": 3}),
    )
    .await;
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);
    fake.inject(Fault::OutOfMemory, 3);

    rig.run(&rig.engine(
        &pool,
        EngineOpts {
            max_infra_retries: 2,
            ..Default::default()
        },
    ))
    .await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(seg.status, SegmentStatus::NeedsReview);
    assert_eq!(seg.review_reason, Some(ReviewReason::InfraError));
    assert_eq!(
        attempts.len(),
        1,
        "infrastructure failures do not start QA retries"
    );
    let a = &attempts[0];
    assert_eq!(a.overall_status, AttemptStatus::InfraError);
    assert_eq!(
        a.infra_errors.iter().map(|e| e.retried).collect::<Vec<_>>(),
        vec![true, true, false]
    );
    assert!(
        a.infra_errors
            .iter()
            .all(|e| e.message.starts_with("out_of_memory")),
        "{:#?}",
        a.infra_errors
    );
    // The first try ran the whole graph up to the sampler; later ones reuse the cached upstream
    // nodes and fail at once.
    assert!(a.infra_errors[0].gpu_seconds > 0.0, "{:#?}", a.infra_errors);
    let reason = a.failure_reason.as_deref().unwrap_or("");
    assert!(
        reason.starts_with("infrastructure error, 3 tries used")
            && reason.contains("out of memory"),
        "{reason}"
    );

    let submitted = fake.submitted();
    assert_eq!(submitted.len(), 3);
    for (t, w) in submitted.iter().enumerate() {
        assert_workflow_carries(w, a, t as u32);
    }
    let finished = fake.finished();
    for t in 0..3 {
        assert!(
            finished.contains(&rig.prompt_id(a, t)),
            "try {t} ran under its own prompt id"
        );
    }
    let spent: f64 = a.infra_errors.iter().map(|e| e.gpu_seconds).sum();
    assert!((a.gpu_seconds - spent).abs() < 1e-9);
    assert_charged(
        &retake_store::testing::current_db_url(),
        rig.project.id,
        &[a],
    )
    .await;
    assert!(rig.qa.scored().is_empty());
}

/// The QA runner cannot run here (ffmpeg cannot be started): that is an infrastructure error of
/// the attempt with the real cause on it, bounded like any other — not a quality failure, not a
/// QA retry with a new seed, and not `budget_exhausted`.
pub async fn qa_that_cannot_run_is_an_infrastructure_error(store: Arc<dyn Store>) {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let rig = rig(
        store,
        serde_json::json!({"enabled": true, "max_attempts": 3}),
    )
    .await;
    *rig.qa.unavailable.lock().unwrap() =
        Some("ffmpeg: cannot start: No such file or directory (os error 2)".into());
    let seg = rig.submit(vec![vec![PASS]]).await.remove(0);

    rig.run(&rig.engine(
        &pool,
        EngineOpts {
            max_infra_retries: 1,
            ..Default::default()
        },
    ))
    .await;

    let (seg, attempts) = rig.segment(seg.id).await;
    assert_eq!(seg.status, SegmentStatus::NeedsReview);
    assert_eq!(seg.review_reason, Some(ReviewReason::InfraError));
    assert_eq!(attempts.len(), 1, "no QA retry with a new seed");
    let a = &attempts[0];
    assert_eq!(a.overall_status, AttemptStatus::InfraError);
    assert!(a.quality_scores.is_none(), "nothing was judged");
    assert_eq!(a.infra_errors.len(), 2, "the first try and its one retry");
    for e in &a.infra_errors {
        assert!(
            e.message.contains("the QA runner cannot run")
                && e.message.contains("ffmpeg: cannot start"),
            "{:?}",
            e.message
        );
    }
    let reason = a.failure_reason.as_deref().unwrap_or("");
    assert!(reason.contains("cannot start"), "{reason}");
    // The generations did run on the GPU and are charged.
    assert!(a.gpu_seconds > 0.0);
    assert_charged(
        &retake_store::testing::current_db_url(),
        rig.project.id,
        &[a],
    )
    .await;
}

/// After an outage the only server is back but runs one prompt at a time, and the first one
/// hangs: the others wait for its slot, not for a healthy server — `waiting_for_server` (what
/// `/api/health` and `/metrics` report) drops to zero and their waiting reason goes.
pub async fn waiting_for_a_slot_on_a_healthy_server_is_not_waiting_for_a_server(
    store: Arc<dyn Store>,
) {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let rig = rig(store, serde_json::json!({"enabled": true})).await;
    fake.stop().await;
    let segs = rig.submit(vec![vec![PASS]; 3]).await;
    let engine = rig.engine(&pool, EngineOpts::default());
    let run = tokio::spawn(async move { engine.run_until_idle().await });
    eventually("every attempt waits for a server", || {
        let store = rig.store.clone();
        async move { store.waiting_for_server().await.unwrap().attempts == 3 }
    })
    .await;

    // The server comes back; its single slot is held by a prompt that does not end.
    fake.inject(Fault::Hang, 1);
    fake.restart().await;
    eventually("a prompt holds the server's only slot", || {
        let running = fake.running().len();
        async move { running == 1 }
    })
    .await;
    eventually("nothing waits for a healthy server", || {
        let store = rig.store.clone();
        async move { store.waiting_for_server().await.unwrap().attempts == 0 }
    })
    .await;
    let mut unfinished = 0;
    for s in &segs {
        let (_, attempts) = rig.segment(s.id).await;
        assert_eq!(attempts.len(), 1);
        let a = &attempts[0];
        assert_eq!(a.waiting_since, None);
        assert!(
            !a.failure_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("waiting for a healthy ComfyUI server")),
            "{:?}",
            a.failure_reason
        );
        if a.overall_status != AttemptStatus::Passed {
            unfinished += 1;
        }
    }
    assert_eq!(
        unfinished, 3,
        "one hangs on the server, two wait for its slot"
    );
    assert_eq!(fake.submitted().len(), 1, "one prompt at a time");
    let events = rig
        .store
        .list_events(0, Some(segs[1].id), 1000)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "server_available"),
        "the end of the wait is in the segment's events"
    );
    run.abort();
}
