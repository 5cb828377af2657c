//! `retake bench …`: benchmarks that print tables (and JSON with `--json`). They run the real
//! engine, store and QA code; nothing here is a timed test.

pub mod qa;
pub mod reads;
pub mod rescue;
pub mod throughput;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Orchestration throughput and failure-to-dispatch latency (SQLite, PostgreSQL).
    Throughput(throughput::Args),
    /// Rescue rate and GPU cost of each retry strategy on the same simulated corpus.
    Rescue(rescue::Args),
    /// QA runner speed on a 10-second 720p clip.
    Qa(qa::Args),
}

pub async fn run(g: crate::common::GlobalArgs, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Throughput(a) => throughput::run(g, a).await,
        BenchCommand::Rescue(a) => rescue::run(g, a).await,
        BenchCommand::Qa(a) => qa::run(g, a).await,
    }
}
