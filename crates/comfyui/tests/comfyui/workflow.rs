//! Writing parameters into templates and checking bindings against `/object_info`.

use retake_comfyui::fake::{example_bindings, example_workflow, object_info};
use retake_comfyui::{inject, validate, Bindings, WorkflowError};
use retake_core::Parameters;
use serde_json::json;

#[test]
fn inject_writes_each_bound_parameter_and_hashes_the_result() {
    let template = example_workflow();
    let params = Parameters::new()
        .with("seed", 123_456_789u64)
        .with("cfg_scale", 6.5)
        .with("denoise_strength", 0.8)
        .with("prompt", "a red kite");
    let injected = inject(&template, &example_bindings(), &params).unwrap();
    let p = &injected.prompt;
    assert_eq!(p["3"]["inputs"]["seed"], json!(123_456_789u64));
    assert_eq!(p["3"]["inputs"]["cfg"], json!(6.5));
    assert_eq!(p["3"]["inputs"]["denoise"], json!(0.8));
    assert_eq!(p["6"]["inputs"]["text"], json!("a red kite"));
    // Unbound inputs and links are untouched; the template itself is not modified.
    assert_eq!(p["3"]["inputs"]["steps"], json!(4));
    assert_eq!(p["3"]["inputs"]["model"], json!(["4", 0]));
    assert_eq!(template["3"]["inputs"]["seed"], json!(1));

    assert_eq!(injected.hash.len(), 64);
    let again = inject(&template, &example_bindings(), &params).unwrap();
    assert_eq!(again.hash, injected.hash, "same parameters, same hash");
    let other = inject(
        &template,
        &example_bindings(),
        &params.clone().with("seed", 7),
    )
    .unwrap();
    assert_ne!(other.hash, injected.hash, "another seed, another hash");
}

#[test]
fn inject_errors_name_the_binding() {
    let template = example_workflow();
    let params = Parameters::new().with("seed", 1).with("cfg_scale", 7.0);

    let bindings = Bindings::new()
        .bind("seed", "3.seed")
        .unwrap()
        .bind("cfg_scale", "12.cfg")
        .unwrap();
    let err = inject(&template, &bindings, &params).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cfg_scale → 12.cfg: the workflow has no node 12"
    );

    let bindings = Bindings::new()
        .bind("seed", "3.seed")
        .unwrap()
        .bind("cfg_scale", "3.model")
        .unwrap();
    let err = inject(&template, &bindings, &params).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "cfg_scale → 3.model: input \"model\" of node 3 (KSampler) is wired to node 4"
        ),
        "{err}"
    );

    let bindings = Bindings::new().bind("cfg_scale", "3.cfg").unwrap();
    assert_eq!(
        inject(&template, &bindings, &params).unwrap_err(),
        WorkflowError::SeedUnbound
    );

    assert_eq!(
        inject(&json!([1, 2]), &example_bindings(), &params).unwrap_err(),
        WorkflowError::NotAnObject
    );
}

#[test]
fn bindings_are_a_json_object_of_node_input_paths() {
    let bindings: Bindings =
        serde_json::from_value(json!({"seed": "3.seed", "prompt": "6.text"})).unwrap();
    assert_eq!(bindings.get("seed").unwrap().node, "3");
    assert_eq!(bindings.get("prompt").unwrap().input, "text");
    assert_eq!(
        serde_json::to_value(&bindings).unwrap(),
        json!({"prompt": "6.text", "seed": "3.seed"})
    );
    let err = serde_json::from_value::<Bindings>(json!({"seed": "3seed"})).unwrap_err();
    assert!(err.to_string().contains("NODE.INPUT"), "{err}");
}

#[test]
fn validate_returns_the_node_ranges_as_domains() {
    let domains = validate(&example_workflow(), &example_bindings(), &object_info()).unwrap();
    let cfg = domains["cfg_scale"];
    assert_eq!(
        (cfg.min, cfg.min_inclusive, cfg.max, cfg.integer),
        (0.0, false, 100.0, false)
    );
    let denoise = domains["denoise_strength"];
    assert_eq!((denoise.min, denoise.max), (0.0, 1.0));
    let steps = domains["steps"];
    assert_eq!((steps.min, steps.max, steps.integer), (1.0, 10_000.0, true));
    assert!(domains["seed"].integer);
    assert!(domains["seed"].min >= 0.0);
    assert!(
        !domains.contains_key("prompt"),
        "text has no numeric domain"
    );
}

#[test]
fn validate_narrows_to_a_servers_tighter_limits() {
    let mut info = object_info();
    info["KSampler"]["input"]["required"]["cfg"] =
        json!(["FLOAT", {"default": 7.0, "min": 1.0, "max": 30.0}]);
    let domains = validate(&example_workflow(), &example_bindings(), &info).unwrap();
    let cfg = domains["cfg_scale"];
    assert_eq!((cfg.min, cfg.min_inclusive, cfg.max), (1.0, true, 30.0));
    assert_eq!(cfg.clamp(45.0), 30.0);
}

#[test]
fn validate_reports_every_bad_binding_readably() {
    let mut info = object_info();
    info["KSampler"]["input"]["required"]
        .as_object_mut()
        .unwrap()
        .remove("cfg");
    let template = example_workflow();
    let bindings: Bindings = serde_json::from_value(json!({
        "seed": "3.seed",
        "cfg_scale": "3.cfg",
        "denoise_strength": "3.seed",
        "steps": "99.steps",
        "sampler": "3.sampler_name",
        "prompt": "4.ckpt_name",
    }))
    .unwrap();
    let errors = validate(&template, &bindings, &info).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{text:#?}");
    assert!(
        text.contains(&"cfg_scale → 3.cfg: node 3 (KSampler) has no input \"cfg\"".to_owned()),
        "{text:#?}"
    );
    assert!(
        text.contains(&"steps → 99.steps: the workflow has no node 99".to_owned()),
        "{text:#?}"
    );
    assert!(
        text.contains(&"denoise_strength → 3.seed: input \"seed\" of node 3 (KSampler) is INT, but denoise_strength is a number (FLOAT)".to_owned()),
        "{text:#?}"
    );
    // A choice list takes text: "sampler" → sampler_name and "prompt" → ckpt_name fit.
}

#[test]
fn validate_flags_classes_the_server_does_not_have() {
    let mut template = example_workflow();
    template["3"]["class_type"] = json!("KSamplerFancy");
    let errors = validate(&template, &example_bindings(), &object_info()).unwrap_err();
    assert_eq!(
        errors.len(),
        4,
        "seed, cfg, denoise and steps live on node 3; the prompt binding is fine"
    );
    assert!(errors.iter().all(|e| e.path.starts_with("3.")));
    assert!(
        errors[0]
            .to_string()
            .contains("node 3 (KSamplerFancy) is not installed on the server"),
        "{}",
        errors[0]
    );
}
