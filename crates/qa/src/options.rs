//! Reads check options (`CheckConfig.options`, a JSON object) with typed errors.
//!
//! Owns only the lookup and type checking of single option values; what an option means belongs to
//! its check. A missing key or `null` means "use the default"; a value of the wrong type is an
//! error that names the check and option, never silently ignored.

use crate::QaError;
use serde_json::Value;

fn invalid(check: &str, option: &str, reason: &str) -> QaError {
    QaError::InvalidOption {
        check: check.into(),
        option: option.into(),
        reason: reason.into(),
    }
}

fn get<'a>(options: &'a Value, key: &str) -> Option<&'a Value> {
    options.get(key).filter(|v| !v.is_null())
}

/// A finite number.
pub fn opt_f64(options: &Value, check: &str, key: &str) -> Result<Option<f64>, QaError> {
    match get(options, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| invalid(check, key, "must be a finite number")),
    }
}

/// A finite number that is strictly positive.
pub fn opt_positive(options: &Value, check: &str, key: &str) -> Result<Option<f64>, QaError> {
    match opt_f64(options, check, key)? {
        Some(v) if v <= 0.0 => Err(invalid(check, key, "must be greater than 0")),
        other => Ok(other),
    }
}

/// A non-negative integer.
pub fn opt_u64(options: &Value, check: &str, key: &str) -> Result<Option<u64>, QaError> {
    match get(options, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(check, key, "must be a non-negative integer")),
    }
}

/// A non-empty string.
pub fn opt_str(options: &Value, check: &str, key: &str) -> Result<Option<String>, QaError> {
    match get(options, key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(invalid(check, key, "must be a non-empty string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_and_null_mean_default_and_wrong_types_are_errors() {
        let o = json!({ "fps": 2, "bad": "x", "none": null, "neg": -1 });
        assert_eq!(opt_f64(&o, "c", "fps").unwrap(), Some(2.0));
        assert_eq!(opt_f64(&o, "c", "missing").unwrap(), None);
        assert_eq!(opt_f64(&o, "c", "none").unwrap(), None);
        assert!(opt_f64(&o, "c", "bad").is_err());
        assert!(opt_positive(&o, "c", "neg").is_err());
        assert!(opt_u64(&o, "c", "neg").is_err());
        assert_eq!(opt_f64(&Value::Null, "c", "fps").unwrap(), None);
    }
}
