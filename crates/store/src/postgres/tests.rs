//! PostgreSQL-only behaviour the contract suite cannot express: invariants the schema enforces on
//! its own, the `updated_at` trigger, wake-ups between stores (replicas), the listener's
//! reconnect, event ids in commit order, and deadlock victims run again.

use super::listen::APPLICATION_NAME;
use super::PgStore;
use crate::testing::{self, TestDb};
use crate::*;
use retake_core::{
    CheckConfig, CheckScore, Parameters, PolicyOverrides, QaVerdict, RetryPolicy, SegmentStatus,
};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(30);

/// A fresh database with two stores on it, as two replicas would be.
async fn replicas() -> Option<(PgStore, PgStore, TestDb)> {
    let (store, db) = testing::postgres().await?;
    drop(store);
    let a = PgStore::connect(&db.url()).await.expect("connect a");
    let b = PgStore::connect(&db.url()).await.expect("connect b");
    Some((a, b, db))
}

async fn scene(s: &PgStore, budget: Option<f64>) -> SceneType {
    let p = s
        .create_project(NewProject {
            name: format!("p-{}", uuid::Uuid::new_v4().simple()),
            gpu_budget_seconds: budget,
            default_gpu_estimate_seconds: 10.0,
            default_retry_policy: RetryPolicy {
                enabled: true,
                ..RetryPolicy::default()
            },
        })
        .await
        .unwrap();
    s.create_scene_type(NewSceneType {
        project_id: p.id,
        name: "portrait".into(),
        backend: "simulated".into(),
        backend_config: serde_json::json!({}),
        workflow_template: serde_json::json!({}),
        parameter_bindings: Default::default(),
        default_parameters: Parameters::new().with("cfg_scale", 7.0),
        qa_checks: vec![CheckConfig::new("face_confidence", 0.7, 0.5)],
        qa_commands: vec![],
        retry_policy: PolicyOverrides::default(),
        parameter_domains: Default::default(),
    })
    .await
    .unwrap()
}

async fn submit(s: &PgStore, st: &SceneType, n: usize) -> Vec<Segment> {
    let segs = (0..n)
        .map(|i| NewSegment {
            scene_type_id: st.id,
            label: None,
            parameters: Parameters::new(),
            rng_seed: i as u64,
        })
        .collect();
    s.submit_segments(segs).await.unwrap()
}

fn verdict(face: f64) -> QaVerdict {
    QaVerdict {
        scores: vec![CheckScore {
            check: "face_confidence".into(),
            score: face,
            details: serde_json::Value::Null,
        }],
        error: None,
        source: "test".into(),
    }
}

fn done(a: &Attempt, worker: &str, face: f64) -> GenerationDone {
    GenerationDone {
        attempt_id: a.id,
        worker: worker.into(),
        backend: "simulated".into(),
        output_video_path: None,
        gpu_seconds: 5.0,
        verdict: Some(verdict(face)),
        stopped_by_budget: false,
        scored_by_worker: false,
    }
}

/// Consume any wake-up permit a store holds (it is left by connecting, among others).
async fn drain(s: &PgStore) {
    s.wait_for_work(Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_enforces_its_invariants() {
    let Some((s, _b, _db)) = replicas().await else {
        return;
    };
    let st = scene(&s, None).await;
    let seg = submit(&s, &st, 1).await.remove(0);
    let w = s.claim("w", 1, LEASE).await.unwrap().remove(0);
    s.finish_generation(done(&w.attempt, "w", 0.9))
        .await
        .unwrap();
    let pool = s.pool();
    for sql in [
        "UPDATE gpu_ledger SET spent_seconds = 0",
        "DELETE FROM gpu_ledger",
        "TRUNCATE gpu_ledger",
    ] {
        let e = sqlx::query(sql).execute(pool).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let dup = sqlx::query(
        "INSERT INTO retry_attempts (segment_id, project_id, scene_type_id, attempt_number, seed, parameters, original_parameters, overall_status)
         SELECT segment_id, project_id, scene_type_id, 1, 7, parameters, parameters, 'queued' FROM retry_attempts WHERE id = $1",
    )
    .bind(w.attempt.id)
    .execute(pool)
    .await
    .unwrap_err();
    assert!(
        matches!(&dup, sqlx::Error::Database(d) if d.is_unique_violation()),
        "{dup}"
    );
    sqlx::query(
        "INSERT INTO retry_attempts (segment_id, project_id, scene_type_id, attempt_number, seed, parameters, original_parameters, overall_status)
         SELECT segment_id, project_id, scene_type_id, 2, 7, parameters, parameters, 'passed' FROM retry_attempts WHERE id = $1",
    )
    .bind(w.attempt.id)
    .execute(pool)
    .await
    .unwrap();
    let two_selected =
        sqlx::query("UPDATE retry_attempts SET is_selected = true WHERE segment_id = $1")
            .bind(seg.id)
            .execute(pool)
            .await
            .unwrap_err();
    assert!(
        matches!(&two_selected, sqlx::Error::Database(d) if d.constraint() == Some("retry_attempts_one_selected")),
        "{two_selected}"
    );
    for sql in [
        "UPDATE scene_types SET auto_retry_max_attempts = 11",
        "UPDATE scene_types SET auto_retry_max_attempts = 0",
        "UPDATE segments SET status = 'lost'",
        "UPDATE segments SET review_reason = 'bored'",
        "UPDATE projects SET gpu_budget_seconds = -1",
        "UPDATE comfy_servers SET max_concurrency = 65",
    ] {
        if let Err(e) = sqlx::query(sql).execute(pool).await {
            assert!(
                matches!(&e, sqlx::Error::Database(d) if d.is_check_violation()),
                "{sql}: {e}"
            );
        }
    }
    s.upsert_comfy_server("gpu", "http://x", 1, false)
        .await
        .unwrap();
    let bad = s
        .upsert_comfy_server("gpu", "http://x", 65, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, StoreError::Invalid { field: Some(f), .. } if f == "max_concurrency"),
        "{bad:?}"
    );
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retry_attempts")
        .fetch_one(pool)
        .await
        .unwrap();
    s.delete_project(st.project_id, true).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retry_attempts")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        (attempts, left),
        (2, 0),
        "deleting a project cascades to its attempts"
    );
    let ledger: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM gpu_ledger")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(ledger, 1, "the ledger outlives the project");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updated_at_round_trips_and_every_update_moves_it_forward() {
    let Some((s, _b, _db)) = replicas().await else {
        return;
    };
    let st = scene(&s, Some(100.0)).await;
    let p = s.get_project(st.project_id).await.unwrap();
    // Budget movements are not edits: a precondition taken before a claim still holds.
    submit(&s, &st, 1).await;
    s.claim("w", 1, LEASE).await.unwrap();
    assert!(s.get_project(p.id).await.unwrap().gpu_reserved_seconds > 0.0);
    let p2 = s
        .update_project(
            p.id,
            ProjectPatch {
                gpu_budget_seconds: Some(Some(90.0)),
                ..Default::default()
            },
            Some(p.updated_at),
        )
        .await
        .unwrap();
    assert!(p2.updated_at > p.updated_at);
    assert_eq!(
        s.get_project(p.id).await.unwrap().updated_at,
        p2.updated_at,
        "what was written reads back equal"
    );
    // Writes that do not set it, or set it to the past, still move it strictly forward.
    let pool = s.pool();
    let mut last = p2.updated_at;
    for sql in [
        "UPDATE projects SET name = name || 'x' WHERE id = $1",
        "UPDATE projects SET name = name || 'y', updated_at = '2000-01-01Z' WHERE id = $1",
        "UPDATE projects SET name = name || 'z', updated_at = updated_at WHERE id = $1",
    ] {
        sqlx::query(sql).bind(p.id).execute(pool).await.unwrap();
        let now = s.get_project(p.id).await.unwrap().updated_at;
        assert!(now > last, "{sql}: {now} after {last}");
        last = now;
    }
    let stale = s
        .update_project(p.id, ProjectPatch::default(), Some(p2.updated_at))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    // Two updates in one transaction (one `now()`) still differ.
    let seg_before: Timestamp = sqlx::query_scalar("SELECT updated_at FROM segments LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE segments SET decision_note = 'a'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let first: Timestamp = sqlx::query_scalar("SELECT updated_at FROM segments LIMIT 1")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE segments SET decision_note = 'b'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let second: Timestamp = sqlx::query_scalar("SELECT updated_at FROM segments LIMIT 1")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(seg_before < first && first < second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replica_wakes_at_once_when_work_or_events_appear() {
    let Some((a, b, _db)) = replicas().await else {
        return;
    };
    let st = scene(&a, None).await;
    drain(&b).await;
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        b.wait_for_work(Duration::from_secs(60)).await;
        let work = t.elapsed();
        let t = Instant::now();
        b.wait_for_events(Duration::from_secs(60)).await;
        (work, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    submit(&a, &st, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.claim("w", 1, LEASE).await.unwrap();
    let (work, events) = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert!(
        work < Duration::from_secs(30) && events < Duration::from_secs(30),
        "{work:?} {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_after_its_connection_drops() {
    let Some((a, b, _db)) = replicas().await else {
        return;
    };
    let listeners = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1";
    let before: Vec<i32> = sqlx::query_scalar(listeners)
        .bind(APPLICATION_NAME)
        .fetch_all(a.pool())
        .await
        .unwrap();
    assert_eq!(before.len(), 2, "one listener per store");
    sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid) FROM ({listeners}) l"
    ))
    .bind(APPLICATION_NAME)
    .execute(a.pool())
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now: Vec<i32> = sqlx::query_scalar(listeners)
            .bind(APPLICATION_NAME)
            .fetch_all(a.pool())
            .await
            .unwrap();
        if now.len() == 2 && now.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "listeners did not come back: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drain(&b).await;
    drain(&b).await;
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        b.wait_for_work(Duration::from_secs(60)).await;
        t.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::query("SELECT pg_notify('retake_work', '')")
        .execute(a.pool())
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("woken after reconnect")
        .unwrap();
    assert!(waited < Duration::from_secs(30));
}

/// A client following `list_events(after_id)` while many transactions on two replicas write
/// events never misses one and never sees one out of order: events become visible once every
/// older transaction has ended, in (txid, id) order, with no lock ordering the writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_cursor_never_skips_a_late_commit() {
    const EXPECTED: usize = 8 + 8 + 8 * 40;
    let Some((a, b, _db)) = replicas().await else {
        return;
    };
    let st = scene(&a, None).await;
    submit(&a, &st, 8).await;
    let work = a.claim("w", 8, LEASE).await.unwrap();
    let mut writers = vec![];
    for (i, w) in work.into_iter().enumerate() {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        writers.push(tokio::spawn(async move {
            for k in 0..40 {
                s.set_progress(w.attempt.id, "w", k as f64 / 40.0)
                    .await
                    .unwrap();
            }
        }));
    }
    let writing = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn({
        let (a, writing) = (a.clone(), writing.clone());
        async move {
            let (mut seen, mut cursor) = (vec![], 0);
            loop {
                let last_round = !writing.load(SeqCst);
                let batch = a.list_events(cursor, None, 1000).await.unwrap();
                if last_round && batch.is_empty() && seen.len() >= EXPECTED {
                    return seen;
                }
                for e in batch {
                    cursor = e.id;
                    seen.push(e.id);
                }
                tokio::task::yield_now().await;
            }
        }
    });
    for w in writers {
        w.await.unwrap();
    }
    writing.store(false, SeqCst);
    // Transactions of other tests on the same server may still hold the horizon back for a moment.
    let mut all: Vec<i64> = vec![];
    for _ in 0..300 {
        all = a
            .list_events(0, None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        if all.len() >= EXPECTED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("reader caught up")
        .unwrap();
    assert_eq!(all.len(), EXPECTED, "submitted, started, progress");
    assert_eq!(seen, all, "the cursor saw every event, in order");
}

/// A stream opened while an older transaction is still running starts after everything committed
/// so far: events committed beyond the cursor are listed to be skipped, later ones are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_stream_starts_after_everything_committed() {
    let Some((a, _b, _db)) = replicas().await else {
        return;
    };
    let st = scene(&a, None).await;
    // An older transaction holds the horizon back while segments are submitted.
    let mut old = a.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *old)
        .await
        .unwrap();
    submit(&a, &st, 2).await;
    let head = a.events_head().await.unwrap();
    assert_eq!(
        head.skip.len(),
        2,
        "two submissions committed above the horizon: {head:?}"
    );
    old.commit().await.unwrap();
    submit(&a, &st, 1).await;
    let mut listed = vec![];
    for _ in 0..300 {
        listed = a.list_events(head.after, None, 100).await.unwrap();
        if listed.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new: Vec<i64> = listed
        .iter()
        .map(|e| e.id)
        .filter(|id| !head.skip.contains(id))
        .collect();
    assert_eq!(
        new.len(),
        1,
        "only the submission after the head: {listed:?}"
    );
}

/// A person cancelling segments while workers finish their attempts: both touch the attempt and
/// the segment, and both succeed whichever commits first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_segment_while_its_attempt_finishes_never_fails() {
    let Some((a, b, _db)) = replicas().await else {
        return;
    };
    let st = scene(&a, None).await;
    submit(&a, &st, 24).await;
    let work = a.claim("w", 24, LEASE).await.unwrap();
    let mut tasks = vec![];
    for w in work {
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let finish = a.finish_generation(done(&w.attempt, "w", 0.2));
            let cancel = b.cancel_segment(w.attempt.segment_id, "alice");
            let (f, c) = tokio::join!(finish, cancel);
            f.expect("finish");
            c.expect("cancel");
            let seg = a.get_segment(w.attempt.segment_id).await.unwrap();
            assert_eq!(seg.status, SegmentStatus::Cancelled);
            let attempts = a.list_attempts(seg.id).await.unwrap();
            assert!(
                attempts.iter().all(|x| x.overall_status.is_terminal()),
                "{attempts:?}"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let p = a.get_project(st.project_id).await.unwrap();
    assert!(
        p.gpu_reserved_seconds.abs() < 1e-9,
        "no reservation leaks: {p:?}"
    );
}

/// A transaction PostgreSQL aborts as a deadlock victim is run again and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_victim_is_run_again() {
    let Some((a, _b, _db)) = replicas().await else {
        return;
    };
    let st = scene(&a, Some(100.0)).await;
    submit(&a, &st, 1).await;
    let w = a.claim("w", 1, LEASE).await.unwrap().remove(0);
    // Another session holds the project row, so the finish (attempt → segment → project) waits
    // for it; then that session asks for the attempt. The finish detects the deadlock first
    // (this session's detection is slowed down) and is aborted.
    let mut other = a.pool().begin().await.unwrap();
    sqlx::query("SET LOCAL deadlock_timeout = '60s'")
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query("SELECT id FROM projects WHERE id = $1 FOR NO KEY UPDATE")
        .bind(st.project_id)
        .execute(&mut *other)
        .await
        .unwrap();
    let finish = tokio::spawn({
        let (a, attempt) = (a.clone(), w.attempt.clone());
        async move { a.finish_generation(done(&attempt, "w", 0.9)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("SELECT id FROM retry_attempts WHERE id = $1 FOR UPDATE")
        .bind(w.attempt.id)
        .execute(&mut *other)
        .await
        .unwrap();
    other.commit().await.unwrap();
    let r = finish.await.unwrap().expect("the victim was run again");
    assert!(r.applied);
    assert_eq!(
        a.get_attempt(w.attempt.id).await.unwrap().overall_status,
        retake_core::AttemptStatus::Passed
    );
}

/// Learning counters are striped by the writing connection (so replicas do not queue on one
/// row); every reader sums the stripes.
#[tokio::test]
async fn learning_counters_are_summed_over_their_stripes() {
    let Some((s, _b, _db)) = replicas().await else {
        return;
    };
    let st = scene(&s, None).await;
    let pool = s.pool();
    for (stripe, n) in [(0i16, 1i32), (7, 10), (31, 100)] {
        sqlx::query(
            r#"INSERT INTO scene_check_stats (scene_type_id, "check", stripe, attempts, failures, failed_segments, rescues)
               VALUES ($1, 'face_confidence', $2, $3, $3, $3, $3)"#,
        )
        .bind(st.id)
        .bind(stripe)
        .bind(n)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            r#"INSERT INTO scene_arm_stats (scene_type_id, "check", arm, stripe, tries, rescues)
               VALUES ($1, 'face_confidence', 'seed', $2, $3, $3)"#,
        )
        .bind(st.id)
        .bind(stripe)
        .bind(n)
        .execute(pool)
        .await
        .unwrap();
    }
    let patterns = s.failure_patterns(Some(st.id)).await.unwrap();
    assert_eq!(patterns.len(), 1, "{patterns:?}");
    let p = &patterns[0];
    assert_eq!(
        (p.attempts, p.failures, p.failed_segments, p.rescues),
        (111, 111, 111, 111)
    );
    let seed = &p.arms["seed"];
    assert_eq!((seed.tries, seed.rescues), (111, 111));
    // A store's own write lands on its connection's stripe and adds to the same sums.
    let mut tx = s.begin().await.unwrap();
    crate::ops::TxOps::bump_check_stats(&mut tx, st.id, "face_confidence", 1, 0, 0, 0)
        .await
        .unwrap();
    s.commit(tx).await.unwrap();
    let p = &s.failure_patterns(Some(st.id)).await.unwrap()[0];
    assert_eq!(p.attempts, 112);
}
