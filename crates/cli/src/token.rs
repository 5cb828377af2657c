//! `retake token create`: API tokens are random, shown once, and stored only as a SHA-256 hash.

use crate::common::{open_store, GlobalArgs};
use clap::Subcommand;
use retake_store::Role;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a new token on stdout (and nothing else). It cannot be shown again.
    Create {
        /// What the token may do: `viewer` reads; `creator` also submits segments, selects
        /// attempts and acts on reviews; `admin` also changes policies, budgets, scene types,
        /// servers and tokens.
        #[arg(long, value_parser = ["viewer", "creator", "admin"])]
        role: String,
        /// Who or what uses the token (a person, a pipeline); it is recorded as the actor of
        /// every action taken with it.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

pub async fn create(
    store: &dyn retake_store::Store,
    role: Role,
    name: &str,
) -> anyhow::Result<String> {
    Ok(retake_server::auth::create_token(store, role, name).await?)
}

pub async fn run(g: GlobalArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { role, name } => {
            let store = open_store(&g).await?;
            let role = Role::parse(&role).expect("clap checked the role");
            println!("{}", create(store.as_ref(), role, &name).await?);
            Ok(())
        }
    }
}
