//! retake's pure core: everything that decides what happens to a segment after an attempt is
//! scored. Inputs in, a decision value out. Nothing here touches a database, a clock, the network
//! or thread-local randomness, so every decision can be replayed from what the store records.

pub mod budget;
pub mod decide;
pub mod limits;
pub mod params;
pub mod policy;
pub mod qa;
pub mod queue;
pub mod rescue;
pub mod rng;
pub mod select;
pub mod status;
pub mod strategy;
pub mod summary;

pub use budget::{estimate_gpu_seconds, BudgetView};
pub use decide::{
    current_round, decide, plan_rerun, AttemptView, Decision, DecisionInput, PlannedAttempt,
    RerunError, RoundCount,
};
pub use params::{ParamDomain, Parameters};
pub use policy::{
    EffectivePolicy, PolicyError, PolicyOverrides, PolicySource, RetryPolicy, SelectionMode,
};
pub use qa::{
    evaluate, CheckConfig, CheckResult, CheckScore, CommandCheck, EvaluationError, QaVerdict,
    QualityScores, Verdict,
};
pub use rng::Arm;
pub use rng::{attempt_rng, draw_attempt, JitterDraw, JitterProvenance};
pub use status::{AttemptStatus, ReviewReason, SegmentStatus, TransitionError};
pub use strategy::{ArmStats, CheckStats, SceneStats};
pub use summary::{summary_sentence, summary_sentence_with, HumanAction, HumanActionKind};
