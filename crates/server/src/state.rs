//! What every handler shares.

use retake_engine::Backends;
use retake_store::Store;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Used to stop generations when a segment is cancelled or rejected.
    pub backends: Backends,
    /// The data directory (SQLite database, staging). Nothing in it is served.
    pub data_dir: PathBuf,
    /// Attempt outputs; the media route serves only what is inside it.
    pub media: retake_engine::media::MediaStore,
    /// The built web UI (`frontend/dist`), if any.
    pub ui_dir: Option<PathBuf>,
    /// Validates ComfyUI workflow bindings when a scene type is saved.
    pub workflow_validator: Option<Arc<dyn WorkflowValidator>>,
    pub comfy_admin: Option<Arc<dyn ComfyAdmin>>,
    /// Tokens whose `last_used_at` is being written in the background (`auth::touch`).
    pub token_touches: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

/// Checks a scene type's ComfyUI workflow and bindings against a server's `/object_info`, and
/// returns the parameter domains (node min/max) that jitter is clamped to.
#[async_trait::async_trait]
pub trait WorkflowValidator: Send + Sync {
    async fn validate(
        &self,
        template: &serde_json::Value,
        bindings: &std::collections::BTreeMap<String, String>,
    ) -> Result<std::collections::BTreeMap<String, retake_store::DomainRecord>, WorkflowRejection>;
}

/// Why a scene type's workflow cannot be saved: the request field at fault
/// (`workflow_template` or `parameter_bindings`) and every problem found, each naming its node
/// and input.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRejection {
    pub field: &'static str,
    pub problems: Vec<String>,
}

/// Live view and control of the ComfyUI server pool.
#[async_trait::async_trait]
pub trait ComfyAdmin: Send + Sync {
    /// Health and load of each server.
    fn status(&self) -> serde_json::Value;
    /// Apply the configured server list (after a change through the API).
    async fn reload(&self, servers: Vec<retake_store::ComfyServer>);
}
