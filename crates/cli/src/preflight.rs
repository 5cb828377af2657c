//! Start-up checks for `serve`, `worker` and `demo`: the local parts a run depends on — the
//! store, ffmpeg/ffprobe, the web UI bundle — are checked before any work is taken, so a missing
//! one stops the command at once with its real cause instead of surfacing later as failed
//! attempts (a missing ffmpeg once sent every segment to review as `budget_exhausted`).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long opening the store may take before start-up gives up on it.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(15);

/// A PostgreSQL URL must accept a connection now. One plain connection attempt, so that the
/// error is the server's own (refused, unknown host, authentication) rather than a pool's
/// time-out after retrying. SQLite files are opened (and created) by the store itself.
pub async fn store_reachable(url: &str, shown: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok(());
    }
    match tokio::time::timeout(STORE_TIMEOUT, sqlx::PgConnection::connect(url)).await {
        Ok(Ok(c)) => {
            let _ = c.close().await;
            Ok(())
        }
        Ok(Err(e)) => bail!("cannot reach the database at {shown}: {e}"),
        Err(_) => bail!(
            "cannot reach the database at {shown}: no answer within {} s",
            STORE_TIMEOUT.as_secs()
        ),
    }
}

/// ffmpeg and ffprobe must start: they render the simulated backend's clips and decode every
/// video the built-in QA scores. `why` says what needs them, for the message.
pub fn media_tools(why: &str) -> anyhow::Result<()> {
    retake_qa::check_tools().with_context(|| {
        format!(
            "retake needs ffmpeg and ffprobe {why}; install ffmpeg (`apt-get install ffmpeg`) or \
             put both on PATH"
        )
    })
}

/// The web UI to serve: `dir` (`--ui-dir`) when given, which must hold `index.html`; otherwise
/// the bundle built into the binary (`None`). Without either, start-up stops with the fix;
/// `skip` names the option that runs without the UI, for the message.
pub fn ui_bundle(dir: Option<PathBuf>, skip: &str) -> anyhow::Result<Option<PathBuf>> {
    use retake_server::ui::UiSource;
    if let Some(d) = &dir {
        if !d.join("index.html").is_file() {
            bail!(
                "the web UI is not built: {} has no index.html. Build it with `cd frontend && npm ci && npm run build` \
                 (scripts/demo does), point --ui-dir / RETAKE_UI_DIR at the bundle, or pass {skip}",
                display(d)
            );
        }
    }
    match UiSource::resolve(dir.clone()).map_err(|e| anyhow::anyhow!(e))? {
        UiSource::Missing => bail!(
            "this retake has no web UI built in and no --ui-dir: build it with `cd frontend && npm ci && npm run build` \
             (scripts/demo does) and rebuild retake, pass --ui-dir frontend/dist, or pass {skip}"
        ),
        UiSource::Dir(d) => Ok(Some(d)),
        UiSource::Embedded => Ok(None),
    }
}

fn display(p: &Path) -> String {
    p.canonicalize()
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ui_bundle_names_the_directory_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = ui_bundle(Some(dir.path().to_path_buf()), "--no-ui")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no index.html"), "{err}");
        assert!(
            err.contains("npm run build") && err.contains("--no-ui"),
            "{err}"
        );
        std::fs::write(dir.path().join("index.html"), "<html></html>").unwrap();
        assert_eq!(
            ui_bundle(Some(dir.path().to_path_buf()), "--no-ui").unwrap(),
            Some(dir.path().to_path_buf())
        );
    }
}
