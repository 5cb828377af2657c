//! retake's ComfyUI side: writing parameters into workflow templates and checking bindings
//! (`workflow`), talking to one server (`client`), and running prompts on a pool of servers with
//! health checks, reconnecting WebSockets and reconciliation (`pool`). With the `fake` feature,
//! `fake::FakeComfy` is a protocol-faithful ComfyUI stand-in with fault injection for tests.

// Errors carry the server's own words (several strings); they are rare, so their size is not
// worth boxing away at the cost of matching on them.
#![allow(clippy::result_large_err)]

pub mod client;
pub mod error;
mod job;
mod link;
pub mod pool;
pub mod protocol;
pub mod workflow;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{ComfyClient, EventStream, Submission};
pub use error::{is_out_of_memory, ComfyError};
pub use pool::{
    prompt_id_for, ComfyPool, PoolOptions, Progress, PromptJob, PromptOutcome, ServerConfig, ServerStatus,
};
pub use protocol::{HistoryEntry, HistoryOutcome, OutputFile, PromptState, QueueSnapshot, ServerEvent};
pub use workflow::{canonical_hash, inject, validate, BindingError, Bindings, InjectedWorkflow, InputPath, WorkflowError};
