//! The writes beside the hot path, the same on both stores: a write the database refuses is a
//! conflict or an invalid field naming what to fix (a 409 or 422, never a 500), and text from
//! outside carrying a NUL character is stored by every write that takes text.

use retake_core::{Parameters, PolicyOverrides, RetryPolicy};
use retake_store::*;
use std::sync::Arc;

retake_store::contract_tests!(
    refused_writes_name_their_field,
    text_with_a_nul_character_is_stored_by_every_write,
);

fn new_project(name: &str, budget: Option<f64>) -> NewProject {
    NewProject {
        name: name.into(),
        gpu_budget_seconds: budget,
        default_gpu_estimate_seconds: 10.0,
        default_retry_policy: RetryPolicy::default(),
    }
}

fn new_scene_type(project_id: i64, name: &str) -> NewSceneType {
    NewSceneType {
        project_id,
        name: name.into(),
        backend: "simulated".into(),
        backend_config: serde_json::json!({}),
        workflow_template: serde_json::json!({}),
        parameter_bindings: Default::default(),
        default_parameters: Parameters::new().with("cfg_scale", 7.0),
        qa_checks: vec![],
        qa_commands: vec![],
        retry_policy: PolicyOverrides::default(),
        parameter_domains: Default::default(),
    }
}

/// The field a refused write names, and whether it is a conflict (409) or invalid (422).
fn refusal<T: std::fmt::Debug>(r: Result<T, StoreError>) -> (&'static str, Option<String>) {
    match r {
        Err(StoreError::Conflict { field, .. }) => ("conflict", field),
        Err(StoreError::Invalid { field, .. }) => ("invalid", field),
        other => panic!("expected a conflict or an invalid field, got {other:?}"),
    }
}

fn named(kind: &'static str, field: &str) -> (&'static str, Option<String>) {
    (kind, Some(field.to_owned()))
}

async fn refused_writes_name_their_field(store: Arc<dyn Store>) {
    let a = store.create_project(new_project("a", None)).await.unwrap();
    let b = store.create_project(new_project("b", None)).await.unwrap();
    assert_eq!(
        refusal(store.create_project(new_project("a", None)).await),
        named("conflict", "name")
    );
    assert_eq!(
        refusal(store.create_project(new_project("c", Some(-1.0))).await),
        named("invalid", "gpu_budget_seconds")
    );
    let rename = ProjectPatch {
        name: Some("a".into()),
        ..Default::default()
    };
    assert_eq!(
        refusal(store.update_project(b.id, rename, None).await),
        named("conflict", "name")
    );
    let budget = ProjectPatch {
        gpu_budget_seconds: Some(Some(-5.0)),
        ..Default::default()
    };
    assert_eq!(
        refusal(store.update_project(b.id, budget, None).await),
        named("invalid", "gpu_budget_seconds")
    );
    let a2 = store
        .update_project(a.id, ProjectPatch::default(), Some(a.updated_at))
        .await
        .unwrap();
    assert!(a2.updated_at > a.updated_at);
    assert_eq!(
        refusal(
            store
                .update_project(a.id, ProjectPatch::default(), Some(a.updated_at))
                .await
        ),
        named("conflict", "updated_at")
    );
    // The refused writes changed nothing.
    assert_eq!(store.get_project(b.id).await.unwrap(), b);

    let st = store
        .create_scene_type(new_scene_type(a.id, "portrait"))
        .await
        .unwrap();
    assert_eq!(
        refusal(
            store
                .create_scene_type(new_scene_type(a.id, "portrait"))
                .await
        ),
        named("conflict", "name")
    );
    assert_eq!(
        refusal(
            store
                .create_scene_type(new_scene_type(99_999, "portrait"))
                .await
        ),
        named("invalid", "project_id")
    );
    let missing = NewSegment {
        scene_type_id: st.id + 1_000,
        label: None,
        parameters: Parameters::new(),
        rng_seed: 1,
    };
    assert_eq!(
        refusal(store.submit_segments(vec![missing]).await),
        named("invalid", "scene_type_id")
    );

    // Token names may repeat; a token's hash may not.
    store
        .create_token("ci", Role::Creator, "hash-1", None)
        .await
        .unwrap();
    store
        .create_token("ci", Role::Viewer, "hash-2", None)
        .await
        .unwrap();
    assert_eq!(
        refusal(
            store
                .create_token("other", Role::Admin, "hash-1", None)
                .await
        ),
        named("conflict", "token")
    );
    assert_eq!(store.list_tokens().await.unwrap().len(), 2);

    for n in [0, 65, u32::MAX] {
        assert_eq!(
            refusal(
                store
                    .upsert_comfy_server("gpu-1", "http://127.0.0.1:8188", n, false)
                    .await
            ),
            named("invalid", "max_concurrency"),
            "max_concurrency {n}"
        );
    }
    assert!(store.list_comfy_servers().await.unwrap().is_empty());
}

async fn text_with_a_nul_character_is_stored_by_every_write(store: Arc<dyn Store>) {
    let p = store
        .create_project(new_project("nul\0project", None))
        .await
        .unwrap();
    assert!(p.name.starts_with("nul"), "{p:?}");
    assert_eq!(store.get_project(p.id).await.unwrap().name, p.name);
    let renamed = ProjectPatch {
        name: Some("renamed\0".into()),
        ..Default::default()
    };
    let p = store.update_project(p.id, renamed, None).await.unwrap();
    assert!(p.name.starts_with("renamed"), "{p:?}");

    let st = store
        .create_scene_type(new_scene_type(p.id, "scene\0type"))
        .await
        .unwrap();
    assert!(st.name.starts_with("scene"), "{st:?}");
    let patch = SceneTypePatch {
        name: Some("other\0scene".into()),
        ..Default::default()
    };
    let st = store.update_scene_type(st.id, patch, None).await.unwrap();
    assert!(st.name.starts_with("other"), "{st:?}");

    let segs = store
        .submit_segments(vec![NewSegment {
            scene_type_id: st.id,
            label: Some("shot\0 1".into()),
            parameters: Parameters::new(),
            rng_seed: 7,
        }])
        .await
        .unwrap();
    assert!(segs[0].label.as_deref().unwrap().starts_with("shot"));
    let (seg, cancelled) = store.cancel_segment(segs[0].id, "alice\0").await.unwrap();
    assert_eq!(seg.status, retake_core::SegmentStatus::Cancelled);
    assert_eq!(cancelled.len(), 1);

    let t = store
        .create_token("render\0farm", Role::Creator, "hash-nul", None)
        .await
        .unwrap();
    assert!(t.name.starts_with("render"), "{t:?}");

    let s = store
        .upsert_comfy_server("gpu\0one", "http://127.0.0.1:8188/\0", 2, false)
        .await
        .unwrap();
    assert!(s.name.starts_with("gpu") && s.url.starts_with("http://"));
    store.delete_comfy_server(&s.name).await.unwrap();
}
