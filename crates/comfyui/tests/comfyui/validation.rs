//! Whole-workflow validation at save time, as ComfyUI validates a posted prompt: what the fake
//! server (which validates like ComfyUI) would refuse is refused before anything runs, naming the
//! node and input; what it accepts passes.

use retake_comfyui::fake::{
    core_video_workflow, example_workflow, object_info, seed32_video_workflow, FakeComfy,
};
use retake_comfyui::{validate_workflow, NodeProblem};
use serde_json::{json, Value};

fn problems(w: &Value) -> Vec<String> {
    validate_workflow(w, &object_info())
        .err()
        .unwrap_or_default()
        .iter()
        .map(NodeProblem::to_string)
        .collect()
}

#[test]
fn the_shipped_workflows_pass() {
    for w in [
        example_workflow(),
        core_video_workflow(),
        seed32_video_workflow(),
    ] {
        assert_eq!(validate_workflow(&w, &object_info()), Ok(()));
    }
}

#[test]
fn the_issues_three_broken_workflows_are_refused_naming_node_and_input() {
    // An unknown class_type.
    let mut w = example_workflow();
    w["10"] = json!({"class_type": "UpscaleModelLoaderX", "inputs": {"model_name": "4x.pth"}});
    assert_eq!(
        problems(&w),
        vec!["node 10 (UpscaleModelLoaderX): this node class is not installed on the server"]
    );

    // A misspelt unbound input: the real one is then missing.
    let mut w = example_workflow();
    let steps = w["3"]["inputs"]
        .as_object_mut()
        .unwrap()
        .remove("steps")
        .unwrap();
    w["3"]["inputs"]["stpes"] = steps;
    assert_eq!(
        problems(&w),
        vec!["node 3 (KSampler) input \"steps\": required input is missing"]
    );

    // A value of the wrong type.
    let mut w = example_workflow();
    w["5"]["inputs"]["width"] = json!("wide");
    assert_eq!(
        problems(&w),
        vec!["node 5 (EmptyLatentImage) input \"width\": \"wide\" is not a number; INT expected"]
    );
}

#[test]
fn ranges_choices_and_links_are_checked_and_every_problem_is_reported() {
    let mut w = example_workflow();
    w["3"]["inputs"]["cfg"] = json!(250.0); // max 100
    w["3"]["inputs"]["steps"] = json!(0); // min 1
    w["3"]["inputs"]["sampler_name"] = json!("eulr"); // not a choice
    w["3"]["inputs"]["latent_image"] = json!(["50", 0]); // no node 50
    w["8"]["inputs"]["vae"] = json!(["4", 7]); // the checkpoint has 3 outputs
    w["3"]["inputs"]["positive"] = json!(["5", 0]); // LATENT into CONDITIONING
    let p = problems(&w);
    assert_eq!(p.len(), 6, "{p:#?}");
    for expected in [
        "node 3 (KSampler) input \"cfg\": 250.0 is bigger than the maximum 100",
        "node 3 (KSampler) input \"steps\": 0 is smaller than the minimum 1",
        "node 3 (KSampler) input \"sampler_name\": \"eulr\" is not one of the choices",
        "node 3 (KSampler) input \"latent_image\": linked to node 50, which is not in the workflow",
        "node 8 (VAEDecode) input \"vae\": linked to output 7 of node 4 (CheckpointLoaderSimple), which has only 3 output(s)",
        "node 3 (KSampler) input \"positive\": expects CONDITIONING but is linked to output 0 of node 5 (EmptyLatentImage), which is LATENT",
    ] {
        assert!(
            p.iter().any(|m| m.starts_with(expected)),
            "{expected:?} not in {p:#?}"
        );
    }
}

#[test]
fn like_comfyui_only_nodes_an_output_depends_on_have_their_inputs_checked() {
    // Numbers given as text convert, as ComfyUI's int()/float() do.
    let mut w = example_workflow();
    w["5"]["inputs"]["width"] = json!("160");
    assert_eq!(validate_workflow(&w, &object_info()), Ok(()));
    // A dangling node's inputs are not validated by ComfyUI (it never runs), but its class is.
    let mut w = example_workflow();
    w["20"] = json!({"class_type": "EmptyLatentImage", "inputs": {"width": "wide"}});
    assert_eq!(validate_workflow(&w, &object_info()), Ok(()));
    // Without an output node ComfyUI refuses the prompt.
    let mut w = example_workflow();
    w.as_object_mut().unwrap().remove("9");
    assert_eq!(
        problems(&w),
        vec!["workflow: the workflow has no output node (SaveImage, SaveVideo, VHS_VideoCombine, …): ComfyUI refuses a prompt without outputs"]
    );
    assert!(validate_workflow(&json!([]), &object_info()).is_err());
}

/// What validation accepts, the fake (validating like ComfyUI) accepts; what it refuses, the
/// fake refuses too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_agrees_with_the_servers_own() {
    let fake = FakeComfy::start("gpu-a").await;
    let client = retake_comfyui::ComfyClient::new(
        "gpu-a",
        &fake.url(),
        "probe",
        retake_comfyui::client::http_client(),
    )
    .unwrap();
    let info = client.object_info().await.unwrap();
    let mut wide = example_workflow();
    wide["5"]["inputs"]["width"] = json!("wide");
    let mut big_seed = seed32_video_workflow();
    big_seed["2"]["inputs"]["seed"] = json!(5_930_267_914_677_567u64);
    let mut no_node = example_workflow();
    no_node["3"]["inputs"]["latent_image"] = json!(["50", 0]);
    let cases = [
        (example_workflow(), true),
        (seed32_video_workflow(), true),
        (wide, false),
        (big_seed, false),
        (no_node, false),
    ];
    for (i, (w, ok)) in cases.into_iter().enumerate() {
        assert_eq!(validate_workflow(&w, &info).is_ok(), ok, "case {i}");
        let posted = client.submit(&format!("case-{i}"), &w, &Value::Null).await;
        assert_eq!(posted.is_ok(), ok, "case {i}: the fake says {posted:?}");
    }
}
