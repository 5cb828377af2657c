//! Every numeric and length limit the API enforces, in one place. The validation code uses these
//! constants, and the server's OpenAPI document is annotated from them (`retake_server`'s
//! `openapi::limits`), so the schema, the server and the web UI (which reads its limits from the
//! generated schema) cannot disagree.

/// All attempts of a round, the original (or the re-run) included.
pub const MAX_ATTEMPTS: (i64, i64) = (1, 10);
/// Retries running at once.
pub const PARALLELISM: (i64, i64) = (1, 4);
/// Queue priority of retries and re-runs (originals are queued at 0).
pub const RETRY_PRIORITY: (i64, i64) = (0, 100);
/// The stopping rule's minimum probability that the next attempt passes.
pub const MIN_RESCUE_PROBABILITY: (f64, f64) = (0.01, 0.9);
/// Largest ± range for `cfg_scale` and `denoise_strength`, and for any other parameter.
pub const CFG_JITTER_MAX: f64 = 10.0;
pub const DENOISE_JITTER_MAX: f64 = 0.5;
pub const STEPS_JITTER_MAX: f64 = 50.0;
pub const OTHER_JITTER_MAX: f64 = 1_000.0;
/// Scores, thresholds, `target_score`, spreads and gains are fractions.
pub const UNIT: (f64, f64) = (0.0, 1.0);
/// A re-run's jitter multiplier.
pub const JITTER_SCALE: (f64, f64) = (1.0, 4.0);
/// Names of projects, scene types and tokens; segment labels.
pub const NAME_LEN: usize = 200;
/// Names of QA checks and command checks.
pub const CHECK_NAME_LEN: usize = 64;
pub const MAX_QA_CHECKS: usize = 32;
pub const MAX_QA_COMMANDS: usize = 16;
/// A command check's time limit, seconds (exclusive minimum 0).
pub const COMMAND_TIMEOUT_MAX: f64 = 3600.0;
/// GPU seconds a project may be given.
pub const GPU_BUDGET_MAX: f64 = 1e12;
/// GPU seconds one attempt reserves by default (exclusive minimum 0).
pub const GPU_ESTIMATE_MAX: f64 = 1e6;
/// Items per page of a list.
pub const PAGE_LIMIT: (u32, u32) = (1, 200);
/// Segments in one submission.
pub const SUBMIT_BATCH_MAX: usize = 1000;
/// Generations one ComfyUI server runs at once.
pub const SERVER_CONCURRENCY: (u32, u32) = (1, 64);
