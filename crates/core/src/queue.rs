//! When a queued attempt is likely to start: pure arithmetic over what the queue reports.

/// Seconds until the attempt at 1-based `position` in claim order starts, if the queue keeps
/// draining as it does now: `running` attempts at once, each taking the mean of
/// `recent_wall_seconds`, free `running / mean` slots per second, and this attempt needs the
/// `position`-th slot. `None` when nothing runs (no worker is taking work, so there is no rate)
/// or nothing has finished yet (no duration to go by).
pub fn estimated_start_seconds(
    position: u64,
    running: u64,
    recent_wall_seconds: &[f64],
) -> Option<f64> {
    let walls: Vec<f64> = recent_wall_seconds
        .iter()
        .copied()
        .filter(|w| w.is_finite() && *w >= 0.0)
        .collect();
    if running == 0 || walls.is_empty() || position == 0 {
        return None;
    }
    let mean = walls.iter().sum::<f64>() / walls.len() as f64;
    Some(position as f64 * mean / running as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn drains_at_the_observed_rate() {
        // 4 running, 60 s each: a slot frees every 15 s; the 8th in line waits 2 minutes.
        assert_eq!(estimated_start_seconds(8, 4, &[50.0, 70.0]), Some(120.0));
        assert_eq!(estimated_start_seconds(1, 1, &[30.0]), Some(30.0));
    }

    #[test]
    fn no_estimate_without_a_rate() {
        assert_eq!(estimated_start_seconds(3, 0, &[10.0]), None);
        assert_eq!(estimated_start_seconds(3, 2, &[]), None);
        assert_eq!(estimated_start_seconds(3, 2, &[f64::NAN]), None);
    }

    proptest! {
        #[test]
        fn later_places_never_start_sooner(p in 1u64..10_000, running in 1u64..64, walls in prop::collection::vec(0.0f64..3600.0, 1..50)) {
            let a = estimated_start_seconds(p, running, &walls).unwrap();
            let b = estimated_start_seconds(p + 1, running, &walls).unwrap();
            prop_assert!(a <= b && a >= 0.0);
        }
    }
}
