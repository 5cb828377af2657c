//! A full run through the pool against the fake: submission, events, outputs, GPU time.

use crate::helpers::*;
use retake_comfyui::fake::{core_video_workflow, FakeComfy};
use retake_comfyui::{ComfyClient, Progress, PromptJob};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_downloads_the_mp4_and_measures_gpu_time_from_timestamps() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let (seen, on_progress) = recorder();

    let outcome = pool
        .run(job("p-full", workflow(42, 7.0), dir.path()), on_progress)
        .await
        .unwrap();

    assert_eq!(outcome.server, "gpu-a");
    assert_eq!(outcome.prompt_id, "p-full");
    assert!(!outcome.cached);
    assert_eq!(outcome.outputs.len(), 1);
    let file = &outcome.outputs[0];
    assert!(file.starts_with(dir.path().join("p-full")), "{file:?}");
    assert_eq!(file.extension().unwrap(), "mp4");
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[4..8], b"ftyp", "an MP4 file");

    // GPU seconds are the server's execution_success − execution_start timestamps.
    let client = ComfyClient::new(
        "gpu-a",
        &fake.url(),
        "probe",
        retake_comfyui::client::http_client(),
    )
    .unwrap();
    let entry = client.history("p-full").await.unwrap().expect("in history");
    assert_eq!(Some(outcome.gpu_seconds), entry.gpu_seconds());
    assert!(outcome.gpu_seconds > 0.0);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.first(),
        Some(&Progress::Queued {
            server: "gpu-a".into()
        })
    );
    assert!(seen.contains(&Progress::Started {
        server: "gpu-a".into()
    }));
    assert!(seen
        .iter()
        .any(|p| matches!(p, Progress::Percent(x) if *x > 0.0 && *x <= 100.0)));

    assert_eq!(fake.submitted().len(), 1);
    assert_eq!(fake.submitted()[0]["3"]["inputs"]["seed"], json!(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_carry_their_own_seed_and_cfg_and_produce_different_videos() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();

    let first = pool
        .run(job("try-1", workflow(1001, 7.0), dir.path()), ignore)
        .await
        .unwrap();
    let second = pool
        .run(job("try-2", workflow(2002, 7.5), dir.path()), ignore)
        .await
        .unwrap();

    let sent = fake.submitted();
    assert_eq!(sent.len(), 2);
    assert_ne!(
        sent[0]["3"]["inputs"]["seed"],
        sent[1]["3"]["inputs"]["seed"]
    );
    assert_ne!(sent[0]["3"]["inputs"]["cfg"], sent[1]["3"]["inputs"]["cfg"]);
    let a = std::fs::read(&first.outputs[0]).unwrap();
    let b = std::fs::read(&second.outputs[0]).unwrap();
    assert_ne!(a, b, "the seed changes the video");
    assert!(!second.cached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_graph_is_reported_as_cached() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();

    let first = pool
        .run(job("same-1", workflow(5, 7.0), dir.path()), ignore)
        .await
        .unwrap();
    let again = pool
        .run(job("same-2", workflow(5, 7.0), dir.path()), ignore)
        .await
        .unwrap();
    assert!(!first.cached);
    assert!(
        again.cached,
        "ComfyUI answered the whole graph from cache; no new video was generated"
    );
    assert_eq!(again.outputs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_save_video_outputs_are_downloaded() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 1).await;
    let dir = tempfile::tempdir().unwrap();
    // Duration::MAX means no time limit.
    let job = PromptJob {
        timeout: Duration::MAX,
        ..job("core", core_video_workflow(), dir.path())
    };
    let outcome = pool.run(job, ignore).await.unwrap();
    assert_eq!(outcome.outputs.len(), 1);
    let name = outcome.outputs[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        name.starts_with("retake_") && name.ends_with(".mp4"),
        "{name}"
    );
    assert!(std::fs::metadata(&outcome.outputs[0]).unwrap().len() > 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_info_and_health_come_from_the_server() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = pool_of(&[&fake], 3).await;
    let info = pool.object_info().await.unwrap();
    assert!(info.get("KSampler").is_some());
    let status = pool.servers();
    assert_eq!(status.len(), 1);
    assert!(status[0].healthy && !status[0].drained);
    assert_eq!((status[0].in_flight, status[0].max_concurrency), (0, 3));
    wait_until("the WebSocket is connected", || {
        pool.servers()[0].websocket_connected
    })
    .await;
}
