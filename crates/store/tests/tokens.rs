//! Token lifecycle on both stores: expiry, revocation, last use written at most once a minute,
//! and browser sessions that end with their token.

use chrono::{Duration, Utc};
use retake_store::*;
use std::sync::Arc;

retake_store::contract_tests!(
    tokens_are_listed_with_expiry_and_revocation,
    last_use_is_written_at_most_once_a_minute,
    sessions_end_with_their_token_or_their_expiry,
);

async fn tokens_are_listed_with_expiry_and_revocation(store: Arc<dyn Store>) {
    let later = Utc::now() + Duration::days(30);
    let a = store
        .create_token("render-farm", Role::Creator, "hash-a", Some(later))
        .await
        .unwrap();
    let b = store
        .create_token("alice", Role::Admin, "hash-b", None)
        .await
        .unwrap();
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    let la = &listed[0];
    assert_eq!(la.name, "render-farm");
    assert_eq!(
        la.expires_at.map(|e| e.timestamp_micros()),
        Some(later.timestamp_micros())
    );
    assert!(la.refusal(Utc::now()).is_none());
    let msg = la.refusal(later + Duration::seconds(1)).unwrap();
    assert!(msg.contains("expired"), "{msg}");
    assert!(la.revoked_at.is_none() && la.last_used_at.is_none());

    let r = store.revoke_token(b.id).await.unwrap();
    let first = r.revoked_at.expect("revocation time");
    assert!(r.refusal(Utc::now()).unwrap().contains("revoked"));
    // Revoking again keeps the first time.
    let again = store.revoke_token(b.id).await.unwrap();
    assert_eq!(again.revoked_at, Some(first));
    // A revoked token is still found (so the caller can say why it is refused) and still listed.
    let found = store.token_by_hash("hash-b").await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(first));
    assert_eq!(store.list_tokens().await.unwrap().len(), 2);
    assert!(matches!(
        store.revoke_token(9_999).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn last_use_is_written_at_most_once_a_minute(store: Arc<dyn Store>) {
    let t = store
        .create_token("ci", Role::Viewer, "hash-c", None)
        .await
        .unwrap();
    let t0 = Utc::now();
    store.touch_token(t.id, t0).await.unwrap();
    let got = |s: Arc<dyn Store>| async move {
        s.token_by_hash("hash-c")
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .unwrap()
            .timestamp_micros()
    };
    assert_eq!(got(store.clone()).await, t0.timestamp_micros());
    // 30 s later: still the first time (no write).
    store
        .touch_token(t.id, t0 + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(got(store.clone()).await, t0.timestamp_micros());
    // After a minute it moves.
    let t2 = t0 + Duration::seconds(61);
    store.touch_token(t.id, t2).await.unwrap();
    assert_eq!(got(store.clone()).await, t2.timestamp_micros());
}

async fn sessions_end_with_their_token_or_their_expiry(store: Arc<dyn Store>) {
    let t = store
        .create_token("bob", Role::Creator, "hash-d", None)
        .await
        .unwrap();
    let exp = Utc::now() + Duration::hours(1);
    let s = store.create_session(t.id, "sess-1", exp).await.unwrap();
    let (found, tok) = store.session_by_hash("sess-1").await.unwrap().unwrap();
    assert_eq!(found.id, s.id);
    assert_eq!(tok.id, t.id);
    assert_eq!(tok.role, Role::Creator);
    assert!(store.session_by_hash("other").await.unwrap().is_none());

    // An expired session is not found, and the next sign-in purges it.
    store
        .create_session(t.id, "sess-old", Utc::now() - Duration::seconds(1))
        .await
        .unwrap();
    assert!(store.session_by_hash("sess-old").await.unwrap().is_none());

    // Signing out ends one session.
    store.create_session(t.id, "sess-2", exp).await.unwrap();
    store.delete_session("sess-2").await.unwrap();
    assert!(store.session_by_hash("sess-2").await.unwrap().is_none());
    assert!(store.session_by_hash("sess-1").await.unwrap().is_some());

    // Revoking the token ends every session signed in with it.
    store.revoke_token(t.id).await.unwrap();
    assert!(store.session_by_hash("sess-1").await.unwrap().is_none());
}
