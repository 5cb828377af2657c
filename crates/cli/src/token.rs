//! `retake token create | list | revoke`: API tokens are random, shown once, and stored only as a
//! SHA-256 hash. Listing shows each token's role, expiry, last use and revocation.

use crate::common::{open_store, GlobalArgs};
use clap::Subcommand;
use retake_store::{ApiToken, Role};

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
        /// The token stops working after this long, e.g. `30d`, `12h` (default: until revoked).
        #[arg(long, value_parser = parse_expiry)]
        expires_in: Option<chrono::Duration>,
        /// Create the database if there is none yet (otherwise a missing database is an error,
        /// so a token is never written into a new empty database by mistake).
        #[arg(long)]
        create_db: bool,
    },
    /// List every token: id, name, role, created, expires, last used, revoked.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id (see `retake token list`): it and its browser sessions stop working.
    Revoke { id: i64 },
}

fn parse_expiry(s: &str) -> Result<chrono::Duration, String> {
    retake_server::routes::tokens::parse_expiry(s)
}

/// Refuse to work on a SQLite database that does not exist yet: `retake token create` run in
/// the wrong folder would otherwise create an empty database and a token nobody's server knows.
fn require_existing_db(g: &GlobalArgs) -> anyhow::Result<()> {
    if g.database_url.is_some() {
        return Ok(());
    }
    let db = g.data_dir.join("retake.db");
    if !db.exists() {
        anyhow::bail!(
            "no retake database at {} — run this where the server's data directory is, pass \
             --data-dir DIR or --database-url URL, or add --create-db to start a new one",
            db.display()
        );
    }
    Ok(())
}

pub async fn run(g: GlobalArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            role,
            name,
            expires_in,
            create_db,
        } => {
            if !create_db {
                require_existing_db(&g)?;
            }
            let store = open_store(&g).await?;
            let role = Role::parse(&role).expect("clap checked the role");
            let expires_at = expires_in.map(|d| chrono::Utc::now() + d);
            let (token, record) =
                retake_server::auth::issue_token(store.as_ref(), role, &name, expires_at).await?;
            if let Some(e) = record.expires_at {
                eprintln!("token {} expires at {}", record.id, e.to_rfc3339());
            }
            println!("{token}");
            Ok(())
        }
        TokenCommand::List { json } => {
            require_existing_db(&g)?;
            let store = open_store(&g).await?;
            let tokens = store.list_tokens().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                print!("{}", table(&tokens, chrono::Utc::now()));
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            require_existing_db(&g)?;
            let store = open_store(&g).await?;
            let t = store.revoke_token(id).await?;
            println!(
                "revoked token {} ({}, {}) at {}",
                t.id,
                t.name,
                t.role.as_str(),
                t.revoked_at.map(|r| r.to_rfc3339()).unwrap_or_default()
            );
            Ok(())
        }
    }
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

/// The token list as an aligned table.
pub fn table(tokens: &[ApiToken], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut rows = vec![[
        "id".to_owned(),
        "name".into(),
        "role".into(),
        "state".into(),
        "created".into(),
        "expires".into(),
        "last used".into(),
    ]];
    for t in tokens {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.refusal(now).is_some() {
            "expired"
        } else {
            "active"
        };
        rows.push([
            t.id.to_string(),
            t.name.clone(),
            t.role.as_str().into(),
            state.into(),
            when(Some(t.created_at)),
            when(t.expires_at),
            when(t.last_used_at),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
