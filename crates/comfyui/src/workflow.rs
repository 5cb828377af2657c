//! Workflow templates and parameter bindings: writing retake's parameters into a ComfyUI
//! API-format workflow (`inject`), and checking bindings against a server's `/object_info`
//! (`validate`). Pure functions over JSON; no I/O.

use retake_core::params::{ParamDomain, Parameters, CFG_SCALE, DENOISE_STRENGTH, SEED};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Where one parameter lives in a workflow: node id and input name, written `"NODE.INPUT"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputPath {
    pub node: String,
    pub input: String,
}

impl InputPath {
    pub fn parse(s: &str) -> Result<InputPath, String> {
        match s.split_once('.') {
            Some((node, input))
                if !node.is_empty() && !input.is_empty() && !input.contains('.') =>
            {
                Ok(InputPath {
                    node: node.to_owned(),
                    input: input.to_owned(),
                })
            }
            _ => Err(format!(
                "{s:?} is not of the form \"NODE.INPUT\" (for example \"3.seed\")"
            )),
        }
    }
}

impl fmt::Display for InputPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node, self.input)
    }
}

impl Serialize for InputPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InputPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        InputPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// retake parameter name → node input, e.g. `{"seed": "3.seed", "cfg_scale": "3.cfg"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bindings(pub BTreeMap<String, InputPath>);

impl Bindings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a binding; `path` is `"NODE.INPUT"`.
    pub fn bind(mut self, param: &str, path: &str) -> Result<Self, String> {
        self.0.insert(param.to_owned(), InputPath::parse(path)?);
        Ok(self)
    }

    pub fn get(&self, param: &str) -> Option<&InputPath> {
        self.0.get(param)
    }
}

/// A workflow with parameters written in, ready for `POST /prompt`.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedWorkflow {
    pub prompt: Value,
    /// SHA-256 (hex) of the canonical JSON of `prompt` (object keys sorted, no whitespace).
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkflowError {
    #[error(
        "the workflow template is not an API-format object of node id → {{class_type, inputs}}"
    )]
    NotAnObject,
    #[error("{param} → {path}: {message}")]
    Binding {
        param: String,
        path: String,
        message: String,
    },
    #[error("parameter \"seed\" has no binding: every retry would regenerate the same output from ComfyUI's cache")]
    SeedUnbound,
}

/// Writes every bound parameter present in `params` into a copy of `template`. Parameters without
/// a binding are left out (logged), except `seed`, whose absence would make every retry identical.
/// A bound input that is missing from `params` keeps the template's value.
pub fn inject(
    template: &Value,
    bindings: &Bindings,
    params: &Parameters,
) -> Result<InjectedWorkflow, WorkflowError> {
    let mut prompt = template.clone();
    let nodes = prompt.as_object_mut().ok_or(WorkflowError::NotAnObject)?;
    if params.0.contains_key(SEED) && bindings.get(SEED).is_none() {
        return Err(WorkflowError::SeedUnbound);
    }
    for (param, path) in &bindings.0 {
        let Some(value) = params.0.get(param) else {
            continue;
        };
        let fail = |message: String| WorkflowError::Binding {
            param: param.clone(),
            path: path.to_string(),
            message,
        };
        let node = nodes
            .get_mut(&path.node)
            .ok_or_else(|| fail(format!("the workflow has no node {}", path.node)))?;
        let class = node
            .get("class_type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let inputs = node
            .get_mut("inputs")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| fail(format!("node {} ({class}) has no inputs object", path.node)))?;
        if let Some(existing) = inputs.get(&path.input) {
            if is_link(existing) {
                return Err(fail(format!(
                    "input \"{}\" of node {} ({class}) is wired to node {}; bind the source node's widget instead",
                    path.input,
                    path.node,
                    existing[0].as_str().unwrap_or("?")
                )));
            }
        }
        inputs.insert(path.input.clone(), value.clone());
    }
    let unbound: Vec<&str> = params
        .0
        .keys()
        .filter(|k| bindings.get(k).is_none())
        .map(String::as_str)
        .collect();
    if !unbound.is_empty() {
        tracing::debug!(
            ?unbound,
            "parameters without a workflow binding are not sent to ComfyUI"
        );
    }
    let hash = canonical_hash(&prompt);
    Ok(InjectedWorkflow { prompt, hash })
}

/// An input value that is a link `[source_node_id, output_index]` rather than a literal.
pub fn is_link(v: &Value) -> bool {
    matches!(
        v.as_array().map(Vec::as_slice),
        Some([Value::String(_), Value::Number(_)])
    )
}

/// SHA-256 hex of the canonical JSON form of `v`.
pub fn canonical_hash(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    hex::encode(Sha256::digest(out.as_bytes()))
}

/// JSON with object keys sorted and no whitespace, independent of serde_json's map ordering.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// One binding that does not fit the workflow or the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingError {
    pub param: String,
    pub path: String,
    pub message: String,
}

impl fmt::Display for BindingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}: {}", self.param, self.path, self.message)
    }
}

impl std::error::Error for BindingError {}

/// The kind of value a parameter carries, to match against an input's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Int,
    Float,
    Text,
    Bool,
    Any,
}

impl ValueKind {
    fn expected(param: &str, current: Option<&Value>) -> ValueKind {
        match param {
            SEED | "noise_seed" | "steps" => ValueKind::Int,
            CFG_SCALE | DENOISE_STRENGTH => ValueKind::Float,
            "prompt" | "negative_prompt" | "text" => ValueKind::Text,
            _ => match current {
                Some(Value::String(_)) => ValueKind::Text,
                Some(Value::Bool(_)) => ValueKind::Bool,
                Some(Value::Number(n)) if n.is_f64() => ValueKind::Float,
                Some(Value::Number(_)) => ValueKind::Int,
                _ => ValueKind::Any,
            },
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ValueKind::Int => "an integer (INT)",
            ValueKind::Float => "a number (FLOAT)",
            ValueKind::Text => "text (STRING or a list of choices)",
            ValueKind::Bool => "a boolean (BOOLEAN)",
            ValueKind::Any => "a value",
        }
    }
}

/// Checks each binding against the template and the server's `/object_info`: the node exists, its
/// class is installed, the input is declared (required or optional) and its type fits the
/// parameter. Returns, for each numeric binding, the parameter's domain narrowed to the node's
/// min/max so jitter can be clamped to what the server accepts. All problems are reported at once.
pub fn validate(
    template: &Value,
    bindings: &Bindings,
    object_info: &Value,
) -> Result<BTreeMap<String, ParamDomain>, Vec<BindingError>> {
    let mut errors = Vec::new();
    let mut domains = BTreeMap::new();
    let empty = Map::new();
    let nodes = template.as_object().unwrap_or(&empty);
    for (param, path) in &bindings.0 {
        match check_binding(nodes, param, path, object_info) {
            Ok(Some(domain)) => {
                domains.insert(param.clone(), domain);
            }
            Ok(None) => {}
            Err(message) => errors.push(BindingError {
                param: param.clone(),
                path: path.to_string(),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(domains)
    } else {
        Err(errors)
    }
}

fn check_binding(
    nodes: &Map<String, Value>,
    param: &str,
    path: &InputPath,
    object_info: &Value,
) -> Result<Option<ParamDomain>, String> {
    let node = nodes
        .get(&path.node)
        .ok_or_else(|| format!("the workflow has no node {}", path.node))?;
    let class = node
        .get("class_type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("node {} has no class_type", path.node))?;
    let info = object_info
        .get(class)
        .filter(|v| v.is_object())
        .ok_or_else(|| {
            format!(
                "node {} ({class}) is not installed on the server (unknown class)",
                path.node
            )
        })?;
    let current = node.get("inputs").and_then(|i| i.get(&path.input));
    if current.is_some_and(is_link) {
        return Err(format!(
            "input \"{}\" of node {} ({class}) is wired to another node, not a widget value",
            path.input, path.node
        ));
    }
    let spec = ["required", "optional"]
        .iter()
        .find_map(|section| {
            info.get("input")
                .and_then(|i| i.get(*section))
                .and_then(|s| s.get(&path.input))
        })
        .ok_or_else(|| {
            format!(
                "node {} ({class}) has no input \"{}\"",
                path.node, path.input
            )
        })?;
    let declared = spec.get(0).unwrap_or(&Value::Null);
    let options = spec.get(1).cloned().unwrap_or(Value::Null);
    let expected = ValueKind::expected(param, current);
    let (fits, numeric_integer) = match declared {
        Value::Array(_) => (matches!(expected, ValueKind::Text | ValueKind::Any), None),
        Value::String(t) => match t.as_str() {
            "INT" => (
                matches!(expected, ValueKind::Int | ValueKind::Any),
                Some(true),
            ),
            "FLOAT" => (
                matches!(expected, ValueKind::Float | ValueKind::Any),
                Some(false),
            ),
            "STRING" | "COMBO" => (matches!(expected, ValueKind::Text | ValueKind::Any), None),
            "BOOLEAN" => (matches!(expected, ValueKind::Bool | ValueKind::Any), None),
            _ => (false, None),
        },
        _ => (false, None),
    };
    if !fits {
        let shown = match declared {
            Value::Array(_) => "a list of choices".to_owned(),
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        return Err(format!(
            "input \"{}\" of node {} ({class}) is {shown}, but {param} is {}",
            path.input,
            path.node,
            expected.describe()
        ));
    }
    let Some(integer) = numeric_integer else {
        return Ok(None);
    };
    let mut domain = ParamDomain::for_param(param).narrowed(
        options.get("min").and_then(Value::as_f64),
        options.get("max").and_then(Value::as_f64),
    );
    domain.integer |= integer;
    if domain.min > domain.max {
        return Err(format!(
            "node {} ({class}) allows \"{}\" only in [{}, {}], outside retake's range for {param}",
            path.node,
            path.input,
            options.get("min").unwrap_or(&Value::Null),
            options.get("max").unwrap_or(&Value::Null)
        ));
    }
    Ok(Some(domain))
}
