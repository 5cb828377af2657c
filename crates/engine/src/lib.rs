//! The engine: a worker loop that claims queued attempts from the store, runs each on its scene
//! type's generation backend, has it scored, and lets the store apply the retry decision.
//!
//! It owns concurrency, leases (heartbeats), rescue of expired leases, and the hand-off between
//! backend, QA and store. It does not decide anything itself: every decision is
//! `retake_core::decide`, applied by the store in the transaction that records the attempt.

pub mod backend;
pub mod backends;
pub mod completer;
pub mod media;
pub mod metrics;
mod worker;

pub use backend::{
    AttemptControl, Backend, Backends, Generated, GenerationError, GenerationJob, QaUnavailable,
    Scorer,
};
pub use worker::{Engine, EngineConfig, RunStats};
