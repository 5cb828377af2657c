//! retake's ComfyUI side: writing parameters into workflow templates and checking bindings
//! (`workflow`), talking to one server (`client`), and running prompts on a pool of servers with
//! health checks, reconnecting WebSockets and reconciliation (`pool`). With the `fake` feature,
//! `fake::FakeComfy` is a protocol-faithful ComfyUI stand-in with fault injection for tests.
//! This crate knows nothing about retake's store or retry policy.
//!
//! How a generation backend uses it:
//!
//! ```text
//! // once, at start-up (and whenever the server list changes: pool.set_servers(..).await)
//! let pool = Arc::new(ComfyPool::new(configs, PoolOptions::default()).await);
//! let domains = validate(&template, &bindings, &pool.object_info().await?)?; // clamp jitter
//!
//! // per attempt try
//! let injected = inject(&template, &bindings, &attempt.parameters)?;        // WorkflowError: broken config
//! let job = PromptJob {
//!     prompt_id: prompt_id_for(&installation, &attempt_id, try_number),     // stable across crashes
//!     installation,                                                         // marks the prompt as ours
//!     workflow: injected.prompt,
//!     output_dir,
//!     exclude_server: last_infra_failure_server,
//!     timeout,
//! };
//! match pool.run(job, move |p| { /* Queued/Started{server}, Percent(0..=100) */ }).await {
//!     Ok(o) => /* o.outputs[0], o.gpu_seconds, o.server, o.cached */,
//!     Err(e) => /* infrastructure error: e.is_retriable(), e.gpu_seconds_spent(), e.server(), e.kind() */,
//! }
//! // cancelling a segment: pool.cancel(&prompt_id).await
//! ```

// Errors carry the server's own words (several strings); they are rare, so their size is not
// worth boxing away at the cost of matching on them.
#![allow(clippy::result_large_err)]

pub mod client;
pub mod error;
mod job;
mod link;
pub mod pool;
pub mod protocol;
pub mod validate;
pub mod workflow;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{ComfyClient, EventStream, Submission};
pub use error::{is_out_of_memory, ComfyError};
pub use pool::{
    is_ours, owner_mark, prompt_id_for, ComfyPool, PoolOptions, Progress, PromptJob, PromptOutcome,
    ServerConfig, ServerStatus,
};
pub use protocol::{
    HistoryEntry, HistoryOutcome, OutputFile, PromptState, QueueSnapshot, ServerEvent,
};
pub use validate::{validate_workflow, NodeProblem};
pub use workflow::{
    canonical_hash, inject, validate, BindingError, Bindings, InjectedWorkflow, InputPath,
    WorkflowError,
};
