//! Checking a whole API-format workflow against a server's `/object_info` before it is saved,
//! the way ComfyUI's own prompt validation (`validate_prompt` / `validate_inputs`) does when the
//! prompt is posted: every node's class is installed, the workflow has an output node, and for
//! every node an output depends on, each required input is present, each link points to an
//! existing node and one of its outputs of a fitting type, and each literal value converts to its
//! input's type (INT, FLOAT, STRING, BOOLEAN), lies within its min/max, and is one of a combo
//! input's choices. Every problem is reported, naming the node and input. Pure; no I/O.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// One problem in a workflow, named the way ComfyUI's `node_errors` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProblem {
    /// The node id; empty when the problem is the whole workflow's.
    pub node: String,
    /// The node's `class_type` (empty when it has none).
    pub class: String,
    /// The input concerned, if the problem is about one.
    pub input: Option<String>,
    pub message: String,
}

impl fmt::Display for NodeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node.is_empty() {
            return write!(f, "workflow: {}", self.message);
        }
        let class = if self.class.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.class)
        };
        match &self.input {
            Some(input) => write!(
                f,
                "node {}{class} input \"{input}\": {}",
                self.node, self.message
            ),
            None => write!(f, "node {}{class}: {}", self.node, self.message),
        }
    }
}

impl std::error::Error for NodeProblem {}

/// Validates `workflow` against `object_info`. `Ok(())` when ComfyUI would accept it; otherwise
/// every problem found, in node order.
pub fn validate_workflow(workflow: &Value, object_info: &Value) -> Result<(), Vec<NodeProblem>> {
    let Some(nodes) = workflow.as_object().filter(|n| !n.is_empty()) else {
        return Err(vec![NodeProblem {
            node: String::new(),
            class: String::new(),
            input: None,
            message: "the workflow is not an API-format object of node id → {class_type, inputs}"
                .into(),
        }]);
    };
    let mut problems = Vec::new();
    let mut known = BTreeSet::new();
    for id in sorted_ids(nodes) {
        let class = nodes[&id].get("class_type").and_then(Value::as_str);
        match class {
            None => problems.push(problem(&id, "", None, "has no class_type")),
            Some(c) if !object_info.get(c).is_some_and(Value::is_object) => problems.push(problem(
                &id,
                c,
                None,
                "this node class is not installed on the server",
            )),
            Some(_) => {
                known.insert(id);
            }
        }
    }
    let class_of = |id: &str| nodes[id]["class_type"].as_str().unwrap_or("");
    let outputs: Vec<&String> = known
        .iter()
        .filter(|id| object_info[class_of(id)]["output_node"] == Value::Bool(true))
        .collect();
    if outputs.is_empty() && problems.is_empty() {
        problems.push(problem(
            "",
            "",
            None,
            "the workflow has no output node (SaveImage, SaveVideo, VHS_VideoCombine, …): ComfyUI refuses a prompt without outputs",
        ));
    }
    // As ComfyUI does, the inputs of the nodes the outputs depend on are checked.
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = outputs.into_iter().cloned().collect();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for source in check_node(nodes, &id, object_info, &mut problems) {
            if known.contains(&source) {
                stack.push(source);
            }
        }
    }
    problems.sort_by_key(|p| order_key(&p.node));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn problem(
    node: &str,
    class: &str,
    input: Option<&str>,
    message: impl Into<String>,
) -> NodeProblem {
    NodeProblem {
        node: node.to_owned(),
        class: class.to_owned(),
        input: input.map(str::to_owned),
        message: message.into(),
    }
}

/// Checks one node's inputs; returns the ids of the nodes it links from.
fn check_node(
    nodes: &Map<String, Value>,
    id: &str,
    object_info: &Value,
    problems: &mut Vec<NodeProblem>,
) -> Vec<String> {
    let node = &nodes[id];
    let class = node["class_type"].as_str().unwrap_or("");
    let info = &object_info[class];
    let empty = Map::new();
    let inputs = match node.get("inputs") {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            problems.push(problem(id, class, None, "\"inputs\" is not an object"));
            return vec![];
        }
    };
    let mut sources = Vec::new();
    for (section, required) in [("required", true), ("optional", false)] {
        let Some(specs) = info["input"][section].as_object() else {
            continue;
        };
        for (name, spec) in specs {
            let Some(value) = inputs.get(name) else {
                if required {
                    problems.push(problem(id, class, Some(name), "required input is missing"));
                }
                continue;
            };
            let declared = spec.get(0).unwrap_or(&Value::Null);
            let options = spec.get(1).unwrap_or(&Value::Null);
            if let Value::Array(link) = value {
                match check_link(nodes, link, declared, object_info) {
                    Ok(source) => sources.push(source),
                    Err(message) => problems.push(problem(id, class, Some(name), message)),
                }
                continue;
            }
            if let Err(message) = check_literal(value, declared, options) {
                problems.push(problem(id, class, Some(name), message));
            }
        }
    }
    sources
}

/// A link `[source_node_id, output_index]`: the node exists and has that output, of a type the
/// input takes.
fn check_link(
    nodes: &Map<String, Value>,
    link: &[Value],
    declared: &Value,
    object_info: &Value,
) -> Result<String, String> {
    let (source, index) = match link {
        [s, i] => (
            match s {
                Value::String(s) => s.clone(),
                _ => return Err(format!("bad link {}: expected [\"node id\", output index] with the node id as a string", Value::Array(link.to_vec()))),
            },
            i.as_u64()
                .ok_or_else(|| format!("bad link {}: the output index must be a whole number", Value::Array(link.to_vec())))?,
        ),
        _ => {
            return Err(format!(
                "bad link {}: expected [node id, output index]",
                Value::Array(link.to_vec())
            ))
        }
    };
    let Some(source_node) = nodes.get(&source) else {
        return Err(format!(
            "linked to node {source}, which is not in the workflow"
        ));
    };
    let source_class = source_node["class_type"].as_str().unwrap_or("");
    let Some(outputs) = object_info[source_class]["output"].as_array() else {
        // An unknown source class is reported on that node itself.
        return Ok(source);
    };
    let Some(produced) = outputs.get(index as usize) else {
        return Err(format!(
            "linked to output {index} of node {source} ({source_class}), which has only {} output(s)",
            outputs.len()
        ));
    };
    if let (Value::String(wanted), Value::String(got)) = (declared, produced) {
        if !types_fit(got, wanted) {
            return Err(format!(
                "expects {wanted} but is linked to output {index} of node {source} ({source_class}), which is {got}"
            ));
        }
    }
    Ok(source)
}

/// ComfyUI's `validate_node_input`: equal types, a `*` wildcard, or comma-separated unions that
/// share a type.
fn types_fit(got: &str, wanted: &str) -> bool {
    if got == wanted || got == "*" || wanted == "*" {
        return true;
    }
    let got: BTreeSet<&str> = got.split(',').map(str::trim).collect();
    wanted.split(',').map(str::trim).any(|w| got.contains(w))
}

/// A literal value against its input's declaration: converts to the type (as ComfyUI's `int()`,
/// `float()` do: numbers, or text that spells one), within min/max, one of a combo's choices.
fn check_literal(value: &Value, declared: &Value, options: &Value) -> Result<(), String> {
    match declared {
        Value::Array(choices) => {
            if choices.contains(value) {
                Ok(())
            } else {
                Err(format!(
                    "{value} is not one of the choices {}",
                    shorten(&Value::Array(choices.clone()))
                ))
            }
        }
        Value::String(t) if t == "INT" || t == "FLOAT" => {
            let x = match value {
                Value::Number(n) => n.as_f64(),
                // Python's int("7.5") fails where float("7.5") does not.
                Value::String(s) if t == "INT" => s.trim().parse::<i64>().ok().map(|i| i as f64),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            }
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{value} is not a number; {t} expected"))?;
            let x = if t == "INT" { x.trunc() } else { x };
            if let Some(min) = options.get("min").and_then(Value::as_f64) {
                if x < min {
                    return Err(format!("{value} is smaller than the minimum {min}"));
                }
            }
            if let Some(max) = options.get("max").and_then(Value::as_f64) {
                if x > max {
                    return Err(format!("{value} is bigger than the maximum {max}"));
                }
            }
            Ok(())
        }
        Value::String(t) if t == "STRING" => match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
            _ => Err(format!("{value} is not text; STRING expected")),
        },
        Value::String(t) if t == "BOOLEAN" => match value {
            Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(()),
            _ => Err(format!("{value} is not a boolean; BOOLEAN expected")),
        },
        Value::String(t) if t == "COMBO" => {
            let choices = options.get("options").and_then(Value::as_array);
            match choices {
                Some(c) if !c.contains(value) => Err(format!(
                    "{value} is not one of the choices {}",
                    shorten(&Value::Array(c.clone()))
                )),
                _ => Ok(()),
            }
        }
        Value::String(t) => Err(format!(
            "is a {t} input, which must be linked to a node output, not given the value {value}"
        )),
        _ => Ok(()),
    }
}

fn shorten(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 160 {
        s
    } else {
        let mut end = 160;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…]", &s[..end])
    }
}

fn order_key(id: &str) -> (u8, u64, String) {
    match id.parse::<u64>() {
        Ok(n) => (0, n, String::new()),
        Err(_) => (1, 0, id.to_owned()),
    }
}

fn sorted_ids(nodes: &Map<String, Value>) -> Vec<String> {
    let mut ids: Vec<String> = nodes.keys().cloned().collect();
    ids.sort_by_key(|id| order_key(id));
    ids
}
