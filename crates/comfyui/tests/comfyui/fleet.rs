//! Servers shared with others and servers that restart: prompt ids differ per installation, a
//! prompt under our id that another installation submitted is never adopted, and a prompt the
//! server lost is charged until it was lost, not through the downtime.

use crate::helpers::*;
use retake_comfyui::client::http_client;
use retake_comfyui::fake::{FakeComfy, Fault};
use retake_comfyui::{owner_mark, prompt_id_for, ComfyClient, ComfyError, PromptJob};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn prompt_ids_differ_per_installation_and_are_stable_within_one() {
    let a = prompt_id_for("install-a", "17", 0);
    assert_eq!(
        a,
        prompt_id_for("install-a", "17", 0),
        "stable across restarts"
    );
    assert_ne!(a, prompt_id_for("install-b", "17", 0), "another database");
    assert_ne!(a, prompt_id_for("install-a", "17", 1), "another try");
    assert_ne!(a, prompt_id_for("install-a", "18", 0), "another attempt");
}

/// Two installations (two pools, two client ids) share one server. Each one's prompt for
/// "attempt 1, try 0" is its own; the second one does not pick up the first one's outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installations_sharing_a_server_each_run_their_own_prompt() {
    let fake = FakeComfy::start("shared").await;
    fake.set_concurrency(2);
    let dir = tempfile::tempdir().unwrap();
    let staging = pool_of(&[&fake], 1).await;
    let production = pool_of(&[&fake], 1).await;
    assert_ne!(staging.client_id(), production.client_id());

    let job_for = |installation: &str, seed: u64| PromptJob {
        prompt_id: prompt_id_for(installation, "1", 0),
        installation: installation.to_owned(),
        output_dir: dir.path().join(installation),
        ..job("unused", workflow(seed, 7.0), dir.path())
    };
    let first = staging.run(job_for("staging", 111), ignore).await.unwrap();
    let second = production
        .run(job_for("production", 222), ignore)
        .await
        .unwrap();
    assert_ne!(first.prompt_id, second.prompt_id);
    assert!(!second.adopted, "production submitted its own prompt");
    assert_eq!(fake.submitted().len(), 2, "both prompts reached the server");
    let seeds: Vec<u64> = fake
        .submitted()
        .iter()
        .map(|w| w["3"]["inputs"]["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, vec![111, 222], "each ran its own seed");
    assert_ne!(first.outputs, second.outputs);
}

/// A prompt already on the server under our id, submitted by someone else (no mark, or another
/// installation's), is left alone: the job fails with `ForeignPrompt` instead of recording the
/// other prompt's outputs and GPU time as its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_under_our_id_from_another_installation_is_never_adopted() {
    let fake = FakeComfy::start("shared").await;
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_of(&[&fake], 1).await;
    let other = ComfyClient::new("shared", &fake.url(), "someone-else", http_client()).unwrap();

    // Finished under the id, marked by another installation.
    let theirs = workflow(5, 7.0);
    other
        .submit(
            "collide",
            &theirs,
            &owner_mark("other-installation", &theirs),
        )
        .await
        .unwrap();
    wait_until("their prompt finished", || {
        fake.finished().contains(&"collide".to_owned())
    })
    .await;
    let err = pool
        .run(job("collide", workflow(5, 7.0), dir.path()), ignore)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ComfyError::ForeignPrompt { server, prompt_id, .. } if server == "shared" && prompt_id == "collide"),
        "{err:?}"
    );
    assert!(err.is_retriable(), "a retry under the next id runs ours");
    assert_eq!(fake.submitted().len(), 1, "nothing submitted over it");

    // Running under the id without any mark: not adopted either, and not interrupted.
    fake.inject(Fault::Hang, 1);
    other
        .submit("unmarked", &workflow(6, 7.0), &serde_json::Value::Null)
        .await
        .unwrap();
    wait_until("their prompt runs", || {
        fake.running().contains(&"unmarked".to_owned())
    })
    .await;
    let err = pool
        .run(job("unmarked", workflow(6, 7.0), dir.path()), ignore)
        .await
        .unwrap_err();
    assert!(matches!(&err, ComfyError::ForeignPrompt { .. }), "{err:?}");
    assert_eq!(fake.running(), vec!["unmarked".to_owned()], "left running");
    other.interrupt("unmarked").await.unwrap();

    // The same installation with another workflow under the id is not ours either.
    let mine = workflow(8, 7.0);
    pool.run(job("mine", mine.clone(), dir.path()), ignore)
        .await
        .unwrap();
    let err = pool
        .run(job("mine", workflow(9, 7.0), dir.path()), ignore)
        .await
        .unwrap_err();
    assert!(matches!(&err, ComfyError::ForeignPrompt { .. }), "{err:?}");
    // And with the same workflow it is ours: answered from /history, not resubmitted.
    let again = pool
        .run(job("mine", mine, dir.path()), ignore)
        .await
        .unwrap();
    assert!(again.adopted);
    assert_eq!(fake.submitted().len(), 3);
}

/// The server dies a moment into a prompt and comes back seconds later without it: the prompt
/// is reported lost, charged for the time it was known to run, not for the downtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_lost_in_a_server_restart_is_charged_until_the_server_was_lost() {
    let fake = FakeComfy::start("gpu-a").await;
    let pool = Arc::new(pool_of(&[&fake], 1).await);
    let dir = tempfile::tempdir().unwrap();
    fake.inject(Fault::Hang, 1);
    let runner = {
        let pool = Arc::clone(&pool);
        let job = job("restarted", workflow(5, 7.0), dir.path());
        tokio::spawn(async move { pool.run(job, ignore).await })
    };
    wait_until("the prompt runs", || {
        fake.running().contains(&"restarted".to_owned())
    })
    .await;
    let ran_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let down_at = Instant::now();
    fake.stop().await;
    wait_until("the pool sees the server down", || !healthy(&pool, "gpu-a")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let downtime = down_at.elapsed();
    fake.restart().await;

    let err = runner.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ComfyError::WebSocketDropped { .. }),
        "{err:?}"
    );
    let spent = err.gpu_seconds_spent().expect("it had started");
    let ran = down_at.duration_since(ran_from).as_secs_f64();
    assert!(spent > 0.0, "it ran for a while: {spent}");
    assert!(
        spent < ran + 1.0 && spent < downtime.as_secs_f64(),
        "charged {spent:.2} s; it ran about {ran:.2} s before the server died and the server was down {downtime:.2?}"
    );
}

/// The server is killed while a node works for seconds without sending an event (a video
/// encoder, say) and the client polls rarely: the prompt was running all along, as the open
/// WebSocket showed, so it is charged until the server was lost, not until its last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_lost_during_a_silent_node_is_charged_until_the_socket_closed() {
    let fake = FakeComfy::start("gpu-a").await;
    let options = retake_comfyui::PoolOptions {
        // Only the socket tells whether the server is there while the node works.
        poll_interval: Duration::from_secs(600),
        lost_after: Duration::from_millis(500),
        ..fast_options()
    };
    let pool = Arc::new(
        retake_comfyui::ComfyPool::new(
            vec![retake_comfyui::ServerConfig::new("gpu-a", &fake.url(), 1)],
            options,
        )
        .await,
    );
    wait_until("the WebSocket is up", || {
        pool.servers()[0].websocket_connected
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // The sampler node works without a word until the server dies.
    fake.inject(Fault::Hang, 1);
    let started = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let on_progress = {
        let started = Arc::clone(&started);
        move |p: retake_comfyui::Progress| {
            if matches!(p, retake_comfyui::Progress::Started { .. }) {
                started.lock().unwrap().get_or_insert_with(Instant::now);
            }
        }
    };
    let began = Instant::now();
    let runner = {
        let pool = Arc::clone(&pool);
        let job = job("silent", workflow(5, 7.0), dir.path());
        tokio::spawn(async move { pool.run(job, on_progress).await })
    };
    wait_until("the prompt started", || started.lock().unwrap().is_some()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    fake.stop().await;

    let err = runner.await.unwrap().unwrap_err();
    let ended = Instant::now();
    assert!(
        matches!(&err, ComfyError::WebSocketDropped { .. }),
        "{err:?}"
    );
    let spent = err.gpu_seconds_spent().expect("it had started");
    let ran = killed_at
        .duration_since(started.lock().unwrap().expect("started"))
        .as_secs_f64();
    assert!(
        spent >= ran,
        "charged {spent:.2} s although the server ran the prompt for at least {ran:.2} s"
    );
    assert!(
        spent <= ended.duration_since(began).as_secs_f64(),
        "charged {spent:.2} s, more than the whole run"
    );
}
