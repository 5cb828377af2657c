//! GPU budget arithmetic. The store applies it with conditional updates; here it is only math.

use serde::{Deserialize, Serialize};

/// A project's budget at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetView {
    /// `None` is unlimited.
    pub budget: Option<f64>,
    pub spent: f64,
    pub reserved: f64,
}

impl BudgetView {
    pub fn unlimited() -> Self {
        Self {
            budget: None,
            spent: 0.0,
            reserved: 0.0,
        }
    }

    pub fn remaining(&self) -> Option<f64> {
        self.budget
            .map(|b| (b - self.spent - self.reserved).max(0.0))
    }

    /// How many attempts of `estimate` seconds fit, capped at `wanted`.
    pub fn affordable(&self, estimate: f64, wanted: u32) -> u32 {
        match self.remaining() {
            None => wanted,
            Some(r) if estimate <= 0.0 => {
                if r > 0.0 {
                    wanted
                } else {
                    0
                }
            }
            Some(r) => ((r / estimate).floor() as u32).min(wanted),
        }
    }
}

/// Fewer recent attempts than this and the configured default is used.
pub const MIN_SAMPLES: usize = 5;

/// The conservative GPU-seconds estimate that one attempt reserves: the 90th percentile of the
/// scene type's recent GPU times plus 10%, or `default` without enough history.
pub fn estimate_gpu_seconds(recent: &[f64], default: f64) -> f64 {
    let mut v: Vec<f64> = recent
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .collect();
    if v.len() < MIN_SAMPLES {
        return default;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() as f64 - 1.0) * 0.9).round() as usize;
    let p90 = v[idx.min(v.len() - 1)];
    ((p90 * 1.1) * 1000.0).ceil() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_falls_back_then_follows_history() {
        assert_eq!(estimate_gpu_seconds(&[1.0, 2.0], 30.0), 30.0);
        let e = estimate_gpu_seconds(&[10.0; 20], 30.0);
        assert!((e - 11.0).abs() < 1e-9);
    }

    #[test]
    fn affordable_counts_whole_attempts() {
        let b = BudgetView {
            budget: Some(100.0),
            spent: 50.0,
            reserved: 25.0,
        };
        assert_eq!(b.affordable(10.0, 4), 2);
        assert_eq!(b.affordable(30.0, 4), 0);
        assert_eq!(BudgetView::unlimited().affordable(1e9, 3), 3);
    }
}
