//! `retake bench rescue` (being built).

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub json: bool,
}

pub async fn run(_g: crate::common::GlobalArgs, _a: Args) -> anyhow::Result<()> {
    anyhow::bail!("retake bench rescue is not built yet")
}
