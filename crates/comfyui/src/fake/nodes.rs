//! The fake server's node library: its `/object_info`, prompt validation that answers like
//! ComfyUI's (`400` with `error` + `node_errors`), execution order, and the input signatures its
//! cache uses. Pure JSON functions.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

fn node(
    category: &str,
    required: Value,
    optional: Value,
    outputs: &[&str],
    output_node: bool,
    name: &str,
) -> Value {
    json!({
        "input": {"required": required, "optional": optional},
        "input_order": {
            "required": required.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            "optional": optional.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
        },
        "output": outputs,
        "output_is_list": outputs.iter().map(|_| false).collect::<Vec<_>>(),
        "output_name": outputs,
        "name": name,
        "display_name": name,
        "description": "",
        "python_module": "nodes",
        "category": category,
        "output_node": output_node,
    })
}

/// `/object_info` of the fake: a text-to-video graph (checkpoint → KSampler → VAEDecode →
/// VHS_VideoCombine) and the weight-free core graph (EmptyImage → ImageAddNoise → CreateVideo →
/// SaveVideo), plus SaveImage.
pub fn object_info() -> Value {
    let seed =
        json!(["INT", {"default": 0, "min": 0, "max": u64::MAX, "control_after_generate": true}]);
    let size = |d: u64| json!(["INT", {"default": d, "min": 16, "max": 16384, "step": 8}]);
    let mut all = Map::new();
    let mut add = |name: &str, v: Value| {
        all.insert(name.to_owned(), v);
    };
    add(
        "CheckpointLoaderSimple",
        node(
            "loaders",
            json!({"ckpt_name": [["fake-video-model.safetensors"], {}]}),
            json!({}),
            &["MODEL", "CLIP", "VAE"],
            false,
            "CheckpointLoaderSimple",
        ),
    );
    add(
        "CLIPTextEncode",
        node(
            "conditioning",
            json!({"text": ["STRING", {"multiline": true, "dynamicPrompts": true}], "clip": ["CLIP"]}),
            json!({}),
            &["CONDITIONING"],
            false,
            "CLIPTextEncode",
        ),
    );
    add(
        "EmptyLatentImage",
        node(
            "latent",
            json!({"width": size(512), "height": size(512), "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}]}),
            json!({}),
            &["LATENT"],
            false,
            "EmptyLatentImage",
        ),
    );
    add(
        "KSampler",
        node(
            "sampling",
            json!({
                "model": ["MODEL"],
                "seed": seed,
                "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
                "sampler_name": [["euler", "euler_ancestral", "dpmpp_2m", "uni_pc"], {}],
                "scheduler": [["normal", "karras", "simple", "beta"], {}],
                "positive": ["CONDITIONING"],
                "negative": ["CONDITIONING"],
                "latent_image": ["LATENT"],
                "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
            }),
            json!({}),
            &["LATENT"],
            false,
            "KSampler",
        ),
    );
    add(
        "VAEDecode",
        node(
            "latent",
            json!({"samples": ["LATENT"], "vae": ["VAE"]}),
            json!({}),
            &["IMAGE"],
            false,
            "VAEDecode",
        ),
    );
    add(
        "VHS_VideoCombine",
        node(
            "Video Helper Suite",
            json!({
                "images": ["IMAGE"],
                "frame_rate": ["FLOAT", {"default": 8, "min": 1, "step": 1}],
                "loop_count": ["INT", {"default": 0, "min": 0, "max": 100, "step": 1}],
                "filename_prefix": ["STRING", {"default": "AnimateDiff"}],
                "format": [["image/gif", "image/webp", "video/h264-mp4"], {}],
            }),
            json!({"pingpong": ["BOOLEAN", {"default": false}], "save_output": ["BOOLEAN", {"default": true}]}),
            &["VHS_FILENAMES"],
            true,
            "VHS_VideoCombine",
        ),
    );
    add(
        "EmptyImage",
        node(
            "image",
            json!({"width": size(512), "height": size(512), "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}], "color": ["INT", {"default": 0, "min": 0, "max": 16777215}]}),
            json!({}),
            &["IMAGE"],
            false,
            "EmptyImage",
        ),
    );
    add(
        "ImageAddNoise",
        node(
            "image",
            json!({"image": ["IMAGE"], "seed": seed, "strength": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}]}),
            json!({}),
            &["IMAGE"],
            false,
            "ImageAddNoise",
        ),
    );
    // A custom node with a 32-bit seed input, as many custom samplers and noise nodes have.
    add(
        "NoiseSeed32",
        node(
            "custom/noise",
            json!({"image": ["IMAGE"], "seed": ["INT", {"default": 0, "min": 0, "max": 4_294_967_295u64, "control_after_generate": true}], "strength": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}]}),
            json!({}),
            &["IMAGE"],
            false,
            "NoiseSeed32",
        ),
    );
    add(
        "CreateVideo",
        node(
            "image/video",
            json!({"images": ["IMAGE"], "fps": ["FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0}]}),
            json!({"audio": ["AUDIO"]}),
            &["VIDEO"],
            false,
            "CreateVideo",
        ),
    );
    add(
        "SaveVideo",
        node(
            "image/video",
            json!({"video": ["VIDEO"], "filename_prefix": ["STRING", {"default": "video/ComfyUI"}], "format": [["auto", "mp4"], {}], "codec": [["auto", "h264"], {}]}),
            json!({}),
            &[],
            true,
            "SaveVideo",
        ),
    );
    add(
        "SaveImage",
        node(
            "image",
            json!({"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}),
            json!({}),
            &[],
            true,
            "SaveImage",
        ),
    );
    Value::Object(all)
}

fn is_link(v: &Value) -> bool {
    crate::workflow::is_link(v)
}

fn node_error(kind: &str, message: String, input: &str, extra: Value) -> Value {
    json!({"type": kind, "message": message, "details": input, "extra_info": extra})
}

/// Validates a prompt as ComfyUI does before queueing it: `Ok(output node ids)` or the `400`
/// body. Only the first problem is reported, as ComfyUI does.
pub fn validate(prompt: &Value, info: &Value) -> Result<Vec<String>, Value> {
    let fail = |kind: &str, message: String, details: String| json!({"error": {"type": kind, "message": message, "details": details, "extra_info": {}}, "node_errors": {}});
    let nodes = match prompt.as_object() {
        Some(n) if !n.is_empty() => n,
        _ => {
            return Err(fail(
                "no_prompt",
                "No prompt provided".into(),
                String::new(),
            ))
        }
    };
    for (id, node) in nodes {
        let class = node.get("class_type").and_then(Value::as_str).unwrap_or("");
        if info.get(class).is_none() {
            return Err(fail(
                "invalid_prompt",
                format!("Cannot execute because node {class} does not exist."),
                format!("Node ID '#{id}'"),
            ));
        }
    }
    let outputs: Vec<String> = nodes
        .iter()
        .filter(|(_, n)| info[n["class_type"].as_str().unwrap_or("")]["output_node"] == json!(true))
        .map(|(id, _)| id.clone())
        .collect();
    if outputs.is_empty() {
        return Err(fail(
            "prompt_no_outputs",
            "Prompt has no outputs".into(),
            String::new(),
        ));
    }
    for id in sorted_ids(nodes.keys()) {
        let node = &nodes[&id];
        let class = node["class_type"].as_str().unwrap_or("");
        if let Some(error) = check_inputs(nodes, node, &info[class]) {
            return Err(json!({
                "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
                "node_errors": {id: {"errors": [error], "dependent_outputs": outputs, "class_type": class}},
            }));
        }
    }
    Ok(outputs)
}

fn check_inputs(nodes: &Map<String, Value>, node: &Value, class_info: &Value) -> Option<Value> {
    let inputs = node.get("inputs").cloned().unwrap_or(json!({}));
    for (section, required) in [("required", true), ("optional", false)] {
        let Some(specs) = class_info["input"][section].as_object() else {
            continue;
        };
        for (name, spec) in specs {
            let extra =
                |v: &Value| json!({"input_name": name, "input_config": spec, "received_value": v});
            let Some(value) = inputs.get(name) else {
                if required {
                    return Some(node_error(
                        "required_input_missing",
                        "Required input is missing".into(),
                        name,
                        json!({"input_name": name}),
                    ));
                }
                continue;
            };
            if is_link(value) {
                if !nodes.contains_key(value[0].as_str().unwrap_or("")) {
                    return Some(node_error(
                        "invalid_input_type",
                        format!("Input is linked to a missing node {}", value[0]),
                        name,
                        extra(value),
                    ));
                }
                continue;
            }
            let options = &spec[1];
            let bad = match &spec[0] {
                Value::Array(choices) => (!choices.contains(value)).then(|| {
                    node_error(
                        "value_not_in_list",
                        format!(
                            "Value not in list: {name}: '{value}' not in {}",
                            Value::Array(choices.clone())
                        ),
                        name,
                        extra(value),
                    )
                }),
                Value::String(t) if t == "INT" || t == "FLOAT" => match value.as_f64() {
                    None => Some(node_error(
                        "invalid_input_type",
                        format!("Failed to convert an input value to a {t} value: {name}, {value}"),
                        name,
                        extra(value),
                    )),
                    Some(x) if options["min"].as_f64().is_some_and(|m| x < m) => Some(node_error(
                        "value_smaller_than_min",
                        format!("Value {x} smaller than min of {}: {name}", options["min"]),
                        name,
                        extra(value),
                    )),
                    Some(x) if options["max"].as_f64().is_some_and(|m| x > m) => Some(node_error(
                        "value_bigger_than_max",
                        format!("Value {x} bigger than max of {}: {name}", options["max"]),
                        name,
                        extra(value),
                    )),
                    Some(_) => None,
                },
                Value::String(t) if t == "STRING" => (!value.is_string()).then(|| {
                    node_error(
                        "invalid_input_type",
                        format!(
                            "Failed to convert an input value to a STRING value: {name}, {value}"
                        ),
                        name,
                        extra(value),
                    )
                }),
                Value::String(t) if t == "BOOLEAN" => (!value.is_boolean()).then(|| {
                    node_error(
                        "invalid_input_type",
                        format!(
                            "Failed to convert an input value to a BOOLEAN value: {name}, {value}"
                        ),
                        name,
                        extra(value),
                    )
                }),
                _ => Some(node_error(
                    "invalid_input_type",
                    format!("Input {name} must be linked to a node output"),
                    name,
                    extra(value),
                )),
            };
            if bad.is_some() {
                return bad;
            }
        }
    }
    None
}

/// Node ids in numeric order where numeric ("2" before "10").
pub fn sorted_ids<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = ids.cloned().collect();
    v.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    });
    v
}

/// Execution order: every node after the nodes it links from.
pub fn execution_order(prompt: &Map<String, Value>) -> Vec<String> {
    fn visit(
        id: &str,
        prompt: &Map<String, Value>,
        seen: &mut Vec<String>,
        order: &mut Vec<String>,
    ) {
        if seen.iter().any(|s| s == id) {
            return;
        }
        seen.push(id.to_owned());
        if let Some(inputs) = prompt
            .get(id)
            .and_then(|n| n.get("inputs"))
            .and_then(Value::as_object)
        {
            for v in inputs.values().filter(|v| is_link(v)) {
                visit(v[0].as_str().unwrap_or(""), prompt, seen, order);
            }
        }
        if prompt.contains_key(id) {
            order.push(id.to_owned());
        }
    }
    let (mut seen, mut order) = (Vec::new(), Vec::new());
    for id in sorted_ids(prompt.keys()) {
        visit(&id, prompt, &mut seen, &mut order);
    }
    order
}

/// Each node's cache key: its class and literal inputs plus its sources' keys, as ComfyUI's
/// input-signature cache does. A node whose key was seen before is answered from cache.
pub fn signatures(prompt: &Map<String, Value>, order: &[String]) -> HashMap<String, String> {
    let mut sigs: HashMap<String, String> = HashMap::new();
    for id in order {
        let node = &prompt[id];
        let mut parts: BTreeMap<String, String> = BTreeMap::new();
        if let Some(inputs) = node.get("inputs").and_then(Value::as_object) {
            for (k, v) in inputs {
                let part = if is_link(v) {
                    format!(
                        "link:{}:{}",
                        sigs.get(v[0].as_str().unwrap_or(""))
                            .cloned()
                            .unwrap_or_default(),
                        v[1]
                    )
                } else {
                    crate::workflow::canonical_hash(v)
                };
                parts.insert(k.clone(), part);
            }
        }
        let text = format!(
            "{}|{:?}",
            node.get("class_type").and_then(Value::as_str).unwrap_or(""),
            parts
        );
        sigs.insert(id.clone(), hex::encode(Sha256::digest(text.as_bytes())));
    }
    sigs
}

/// A workflow the fake accepts: text-to-video through KSampler, saved by VHS_VideoCombine
/// (`gifs`). Bind it with `example_bindings`.
pub fn example_workflow() -> Value {
    json!({
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "fake-video-model.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 160, "height": 120, "batch_size": 8}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "VHS_VideoCombine", "inputs": {
            "images": ["8", 0], "frame_rate": 8, "loop_count": 0, "filename_prefix": "retake/segment", "format": "video/h264-mp4"}},
    })
}

/// Bindings of `example_workflow`: seed, cfg_scale, denoise_strength, steps and prompt.
pub fn example_bindings() -> crate::workflow::Bindings {
    serde_json::from_value(json!({
        "seed": "3.seed", "cfg_scale": "3.cfg", "denoise_strength": "3.denoise", "steps": "3.steps", "prompt": "6.text"
    }))
    .expect("static bindings parse")
}

/// `core_video_workflow` with the noise made by `NoiseSeed32`, whose seed input takes only
/// `0..=2^32 − 1`. The seed is `2.seed`.
pub fn seed32_video_workflow() -> Value {
    let mut w = core_video_workflow();
    w["2"] = json!({"class_type": "NoiseSeed32", "inputs": {"image": ["1", 0], "seed": 1, "strength": 0.5}});
    w
}

/// The weight-free core graph from the ComfyUI notes, saved by core SaveVideo (`images` +
/// `animated`). The seed is `2.seed`.
pub fn core_video_workflow() -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 160, "height": 120, "batch_size": 8, "color": 0}},
        "2": {"class_type": "ImageAddNoise", "inputs": {"image": ["1", 0], "seed": 1, "strength": 0.5}},
        "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 8.0}},
        "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "video/retake", "format": "mp4", "codec": "h264"}},
    })
}
