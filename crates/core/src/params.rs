//! Generation parameters of a segment or attempt, and the valid domain of each numeric one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const SEED: &str = "seed";
pub const CFG_SCALE: &str = "cfg_scale";
pub const DENOISE_STRENGTH: &str = "denoise_strength";

/// Largest seed retake draws: 2^53 − 1, so that every seed survives JSON and JavaScript exactly
/// and fits the stores' signed 64-bit columns.
pub const MAX_SEED: u64 = (1 << 53) - 1;

/// A JSON object of named generation parameters (`seed`, `cfg_scale`, `denoise_strength`, and
/// whatever else a workflow binds, such as `steps` or `prompt`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct Parameters(pub Map<String, Value>);

impl Parameters {
    pub fn new() -> Self {
        Self(Map::new())
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(Value::as_f64)
    }

    pub fn is_integer(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| v.is_i64() || v.is_u64())
    }

    pub fn seed(&self) -> Option<u64> {
        self.0.get(SEED).and_then(Value::as_u64)
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_owned(), value);
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.set(key, value.into());
        self
    }

    /// `key → (before, after)` for every value that differs; keys in either side count.
    pub fn diff(&self, original: &Parameters) -> BTreeMap<String, (Value, Value)> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.0 {
            let before = original.0.get(k).cloned().unwrap_or(Value::Null);
            if !numbers_equal(&before, v) {
                out.insert(k.clone(), (before, v.clone()));
            }
        }
        for (k, v) in &original.0 {
            if !self.0.contains_key(k) {
                out.insert(k.clone(), (v.clone(), Value::Null));
            }
        }
        out
    }

    /// Numeric entries that fall outside their domain, as `(name, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (k, v) in &self.0 {
            if k == SEED {
                match v.as_u64() {
                    Some(s) if s <= MAX_SEED => {}
                    _ => {
                        return Err((
                            format!("parameters.{SEED}"),
                            format!("must be an integer in 0..={MAX_SEED}"),
                        ))
                    }
                }
                continue;
            }
            if let Some(x) = v.as_f64() {
                let domain = ParamDomain::for_param(k);
                if !domain.contains(x) {
                    return Err((
                        format!("parameters.{k}"),
                        format!("must be {}", domain.describe()),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The JSON type a value has, for messages: `a number`, `a string`, …
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parameters retake itself varies, which must be numbers whatever the scene type says.
const NUMERIC: [&str; 4] = [SEED, CFG_SCALE, DENOISE_STRENGTH, "steps"];

impl Parameters {
    /// Validate submitted parameters against a scene type: the parameters retake varies and any
    /// parameter whose default (in `reference`) is a number must be numbers within their domain
    /// (the server-learnt `domains` where known, else the built-in one); any other parameter must
    /// have its default's JSON type. Returns `(field, message)` naming the first one refused.
    pub fn validate_for_scene(
        &self,
        reference: &Parameters,
        domains: &BTreeMap<String, ParamDomain>,
    ) -> Result<(), (String, String)> {
        for (k, v) in &self.0 {
            let field = format!("parameters.{k}");
            let default = reference.0.get(k);
            let numeric = NUMERIC.contains(&k.as_str())
                || domains.contains_key(k)
                || default.is_some_and(Value::is_number);
            if numeric {
                let domain = domains.get(k).copied().unwrap_or_else(|| {
                    if k == SEED {
                        ParamDomain {
                            min: 0.0,
                            min_inclusive: true,
                            max: MAX_SEED as f64,
                            integer: true,
                        }
                    } else {
                        ParamDomain::for_param(k)
                    }
                });
                let ok = match v.as_f64() {
                    Some(x) => domain.contains(x) && (!domain.integer || v.is_u64() || v.is_i64()),
                    None => false,
                };
                if !ok {
                    return Err((field, format!("must be {}; got {v}", domain.describe())));
                }
            } else if let Some(d) = default {
                if !d.is_null() && std::mem::discriminant(d) != std::mem::discriminant(v) {
                    return Err((
                        field,
                        format!(
                            "must be {} like the scene type's default ({d}); got {}",
                            json_kind(d),
                            json_kind(v)
                        ),
                    ));
                }
            }
        }
        self.validate()
    }
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The valid range of a numeric parameter. Jitter is clamped into it; submitted values outside it
/// are refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamDomain {
    pub min: f64,
    /// Whether `min` itself is allowed (cfg must be strictly positive).
    pub min_inclusive: bool,
    pub max: f64,
    pub integer: bool,
}

impl ParamDomain {
    pub fn for_param(name: &str) -> ParamDomain {
        match name {
            CFG_SCALE => ParamDomain {
                min: 0.0,
                min_inclusive: false,
                max: 100.0,
                integer: false,
            },
            DENOISE_STRENGTH => ParamDomain {
                min: 0.0,
                min_inclusive: true,
                max: 1.0,
                integer: false,
            },
            // Seeds are exact in JSON and JavaScript up to 2^53 − 1; a server narrows this to its
            // own seed input's range (32-bit custom nodes: 2^32 − 1, some 2^24 − 1).
            SEED => ParamDomain {
                min: 0.0,
                min_inclusive: true,
                max: MAX_SEED as f64,
                integer: true,
            },
            "steps" => ParamDomain {
                min: 1.0,
                min_inclusive: true,
                max: 10_000.0,
                integer: true,
            },
            _ => ParamDomain {
                min: -1e12,
                min_inclusive: true,
                max: 1e12,
                integer: false,
            },
        }
    }

    /// Narrow this domain to a generation server's own limits (ComfyUI `/object_info` min/max).
    pub fn narrowed(self, min: Option<f64>, max: Option<f64>) -> ParamDomain {
        let mut d = self;
        if let Some(lo) = min {
            if lo > d.min {
                d.min = lo;
                d.min_inclusive = true;
            }
        }
        if let Some(hi) = max {
            d.max = d.max.min(hi);
        }
        d
    }

    pub fn contains(&self, x: f64) -> bool {
        x.is_finite()
            && (if self.min_inclusive {
                x >= self.min
            } else {
                x > self.min
            })
            && x <= self.max
            && (!self.integer || x.fract() == 0.0)
    }

    pub fn describe(&self) -> String {
        let lo = if self.min_inclusive { "[" } else { "(" };
        let kind = if self.integer {
            "an integer"
        } else {
            "a number"
        };
        format!("{kind} in {lo}{}, {}]", self.min, self.max)
    }

    /// The nearest allowed value. For an exclusive minimum the smallest step above it is used.
    pub fn clamp(&self, x: f64) -> f64 {
        let lo = if self.min_inclusive {
            self.min
        } else if self.integer {
            self.min + 1.0
        } else {
            // Keep cfg strictly positive without inventing a meaningful value.
            self.min + 0.01
        };
        let y = x.clamp(lo, self.max);
        if self.integer {
            y.round().clamp(lo.ceil(), self.max.floor())
        } else {
            y
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_changed_values_only() {
        let a = Parameters::new()
            .with("seed", 1)
            .with("cfg_scale", 7.0)
            .with("steps", 20);
        let b = Parameters::new()
            .with("seed", 2)
            .with("cfg_scale", 7.0)
            .with("steps", 20);
        let d = b.diff(&a);
        assert_eq!(d.len(), 1);
        assert_eq!(d["seed"], (json!(1), json!(2)));
    }

    #[test]
    fn scene_validation_checks_types_and_ranges() {
        let defaults = Parameters::new()
            .with("cfg_scale", 7.0)
            .with("prompt", "a face")
            .with("frames", 48);
        let none = BTreeMap::new();
        let bad = |p: Parameters, domains: &BTreeMap<String, ParamDomain>| {
            p.validate_for_scene(&defaults, domains).unwrap_err()
        };
        // The case: words where numbers belong.
        let (f, m) = bad(Parameters::new().with("cfg_scale", "high"), &none);
        assert_eq!(f, "parameters.cfg_scale");
        assert!(
            m.contains("a number in (0, 100]") && m.contains("\"high\""),
            "{m}"
        );
        let (f, m) = bad(Parameters::new().with("steps", "many"), &none);
        assert_eq!(f, "parameters.steps");
        assert!(m.contains("an integer"), "{m}");
        assert_eq!(
            bad(Parameters::new().with("steps", 20.5), &none).0,
            "parameters.steps"
        );
        // A parameter whose default is a number must be one; a string default wants a string.
        assert_eq!(
            bad(Parameters::new().with("frames", "lots"), &none).0,
            "parameters.frames"
        );
        let (f, m) = bad(Parameters::new().with("prompt", 3), &none);
        assert_eq!(f, "parameters.prompt");
        assert!(m.contains("a string"), "{m}");
        // A domain the generation server reported narrows the range.
        let domains = BTreeMap::from([(
            "steps".to_owned(),
            ParamDomain::for_param("steps").narrowed(Some(1.0), Some(150.0)),
        )]);
        let (f, m) = bad(Parameters::new().with("steps", 400), &domains);
        assert_eq!(f, "parameters.steps");
        assert!(m.contains("150"), "{m}");
        assert!(Parameters::new()
            .with("steps", 30)
            .with("cfg_scale", 6.5)
            .with("prompt", "another face")
            .with("lora", "unknown to the defaults")
            .validate_for_scene(&defaults, &domains)
            .is_ok());
        assert_eq!(
            bad(Parameters::new().with("seed", -1), &none).0,
            "parameters.seed"
        );
    }

    #[test]
    fn validation_names_the_field_and_range() {
        let p = Parameters::new().with("denoise_strength", 1.5);
        let (field, msg) = p.validate().unwrap_err();
        assert_eq!(field, "parameters.denoise_strength");
        assert!(msg.contains("[0, 1]"), "{msg}");
        assert!(Parameters::new().with("cfg_scale", 0.0).validate().is_err());
    }
}
