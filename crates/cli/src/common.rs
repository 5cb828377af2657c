//! Options every command takes, and opening the store they name.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Clone, Debug)]
pub struct GlobalArgs {
    /// Where retake keeps its SQLite database (`retake.db`) and media.
    #[arg(
        long,
        global = true,
        env = "RETAKE_DATA_DIR",
        default_value = "./retake-data"
    )]
    pub data_dir: PathBuf,
    /// `postgres://…` to share work between replicas; defaults to SQLite in the data directory.
    #[arg(long, global = true, env = "RETAKE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Serve the web UI from this folder instead of the bundle built into the binary (UI work).
    #[arg(long, global = true, env = "RETAKE_UI_DIR")]
    pub ui_dir: Option<PathBuf>,
}

impl GlobalArgs {
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite:{}", self.data_dir.join("retake.db").display()),
        }
    }
}

/// The URL without a password, for messages.
pub fn describe_url(g: &GlobalArgs) -> String {
    let u = g.url();
    match (u.find("://"), u.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &u[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &u[..s + 3], user, &u[at..]),
                None => u,
            }
        }
        _ => u,
    }
}

pub async fn open_store(g: &GlobalArgs) -> anyhow::Result<Arc<dyn retake_store::Store>> {
    if g.data_dir.exists() && !g.data_dir.is_dir() {
        anyhow::bail!(
            "--data-dir {} is a file, not a directory; name a directory (it is created when missing)",
            g.data_dir.display()
        );
    }
    std::fs::create_dir_all(&g.data_dir)
        .with_context(|| format!("creating data directory {}", g.data_dir.display()))?;
    crate::preflight::store_reachable(&g.url(), &describe_url(g)).await?;
    match tokio::time::timeout(
        crate::preflight::STORE_TIMEOUT,
        retake_store::connect(&g.url()),
    )
    .await
    {
        Ok(opened) => {
            opened.with_context(|| format!("opening the database at {}", describe_url(g)))
        }
        Err(_) => anyhow::bail!(
            "cannot reach the database at {} within {} s (is the server up and reachable?)",
            describe_url(g),
            crate::preflight::STORE_TIMEOUT.as_secs()
        ),
    }
}

pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // Without RETAKE_LOG only warnings are shown, and not sqlx's "slow statement" notes (a busy
    // SQLite writer makes them common and they say nothing a user can act on).
    let filter = EnvFilter::try_from_env("RETAKE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,sqlx::query=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Deterministic 64-bit mix of two values (segment RNG seeds from the demo seed).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_add(b.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
