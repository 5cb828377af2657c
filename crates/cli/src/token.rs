//! `retake token create`: API tokens are random, shown once, and stored only as a SHA-256 hash.

use crate::common::{open_store, GlobalArgs};
use clap::Subcommand;
use retake_store::Role;
use sha2::{Digest, Sha256};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a new token on stdout (and nothing else). It cannot be shown again.
    Create {
        #[arg(long, value_parser = ["viewer", "creator", "admin"])]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn new_token() -> String {
    format!("rtk_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

pub async fn create(store: &dyn retake_store::Store, role: Role, name: &str) -> anyhow::Result<String> {
    let token = new_token();
    store.create_token(name, role, &hash_token(&token)).await?;
    Ok(token)
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
