//! `retake bench throughput` (being built).

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub json: bool,
}

pub async fn run(_g: crate::common::GlobalArgs, _a: Args) -> anyhow::Result<()> {
    anyhow::bail!("retake bench throughput is not built yet")
}
