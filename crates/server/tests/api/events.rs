//! `/api/events`: Server-Sent Events of every stored change, resumable with `Last-Event-ID`.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

retake_store::contract_tests!(
    changes_stream_as_server_sent_events,
    a_reconnect_resumes_after_last_event_id,
    the_stream_can_follow_one_segment
);

/// Bounded wait for an event; generous because CI machines are slow, never a timing assertion.
const WITHIN: Duration = Duration::from_secs(20);

async fn changes_stream_as_server_sent_events(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let before = app.submit(st).await; // before the stream opens: not sent
    app.cancel_segment(&app.creator, id(&before))
        .await
        .expect(200);

    let mut stream = app.events(&app.viewer, "", None).await;
    let s = app.submit(st).await;
    let events = stream.until("segment_submitted", WITHIN).await;
    let e = events.last().unwrap();
    assert_eq!(
        e.data["segment_id"],
        id(&s),
        "only changes after the stream opened: {events:?}"
    );
    assert_eq!(e.data["kind"], "segment_submitted");
    assert_eq!(e.id, e.data["id"].as_i64(), "the SSE id is the event id");
    assert!(e.data["message"].as_str().is_some_and(|m| !m.is_empty()));

    // Running the segment streams its decisions, in order.
    app.faces(id(&s), &[0.9]);
    app.run().await;
    let events = stream.until("selected", WITHIN).await;
    let ids: Vec<i64> = events.iter().map(|e| e.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(ids[0] > e.id.unwrap());
    assert!(
        events.iter().all(|e| e.data["segment_id"] == id(&s)),
        "{events:#?}"
    );
    let kinds: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert!(kinds.contains(&"attempt_started"), "{kinds:?}");

    // The token may come in the query (browsers' EventSource cannot set headers).
    let res = app
        .client
        .get(format!(
            "{}/api/events?access_token={}",
            app.base, app.viewer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = app
        .client
        .get(format!("{}/api/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    app.get("/api/events?after=abc", &app.viewer)
        .await
        .expect_error(400, "bad_request", Some("query"));
    app.get("/api/events?since=1", &app.viewer)
        .await
        .expect_error(400, "bad_request", Some("query"));
}

async fn a_reconnect_resumes_after_last_event_id(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let mut stream = app.events(&app.viewer, "", None).await;
    let a = app.submit(st).await;
    let b = app.submit(st).await;
    let first = stream
        .until("segment_submitted", WITHIN)
        .await
        .pop()
        .unwrap();
    assert_eq!(first.data["segment_id"], id(&a));
    let second = stream
        .until("segment_submitted", WITHIN)
        .await
        .pop()
        .unwrap();
    assert_eq!(second.data["segment_id"], id(&b));
    drop(stream);

    // Reconnect as EventSource does, with the last id seen: the next event is the one after it.
    let mut resumed = app.events(&app.viewer, "", first.id).await;
    let next = resumed
        .next(WITHIN)
        .await
        .expect("the missed event is replayed");
    assert_eq!(next.id, second.id);
    assert_eq!(next.data["segment_id"], id(&b));
    // `?after=` does the same.
    let mut after = app
        .events(&app.viewer, &format!("?after={}", first.id.unwrap()), None)
        .await;
    assert_eq!(after.next(WITHIN).await.unwrap().id, second.id);
    // From the start: every event, the first one first.
    let mut all = app.events(&app.viewer, "", Some(0)).await;
    let e = all.next(WITHIN).await.unwrap();
    assert!(e.id.unwrap() <= first.id.unwrap());
}

async fn the_stream_can_follow_one_segment(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let a = app.submit(st).await;
    let b = app.submit(st).await;
    let mut stream = app
        .events(
            &app.viewer,
            &format!("?segment_id={}&after=0", id(&b)),
            None,
        )
        .await;
    app.faces(id(&a), &[0.9]);
    app.faces(id(&b), &[0.9]);
    app.run().await;
    let events = stream.until("selected", WITHIN).await;
    assert!(
        events.iter().all(|e| e.data["segment_id"] == id(&b)),
        "{events:?}"
    );
    assert_eq!(events[0].event.as_deref(), Some("segment_submitted"));
}
