//! `retake`: one binary with the engine, the HTTP API and web UI, and the CLI. `main` only parses
//! arguments and hands over to a command module.

mod bench;
mod common;
mod config;
mod demo;
mod preflight;
mod serve;
mod token;
mod wiring;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: allocation was ~15% of the hot path's CPU, most of it
/// glibc's bookkeeping between the runtime's threads (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "retake",
    version,
    about = "Opt-in, transparent, bounded, budget-aware auto-retry for generated video segments"
)]
struct Cli {
    #[command(flatten)]
    global: common::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a demo project and watch segments fail, retry, pass or go to review.
    Demo(demo::DemoArgs),
    /// Run the engine with the HTTP API and web UI.
    Serve(serve::ServeArgs),
    /// Run the engine only (no HTTP); several workers can share one PostgreSQL.
    Worker(serve::EngineArgs),
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Benchmarks that print tables (`--json` for scripts).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Create or upgrade the database schema and exit.
    Migrate,
    /// Print the HTTP API's OpenAPI document (the web UI generates its types from it).
    Openapi,
}

/// Errors are printed as their chain of causes (`error: opening …: cause`), never with the
/// `Debug` form, which adds a backtrace when `RUST_BACKTRACE` is set.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cause_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `context: cause: cause`, leaving out a cause whose text the message already holds (errors
/// that print their source themselves).
fn cause_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    common::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(cli.global, args).await,
            Command::Serve(args) => serve::serve(cli.global, args).await,
            Command::Worker(args) => serve::worker(cli.global, args).await,
            Command::Token { command } => token::run(cli.global, command).await,
            Command::Bench { command } => bench::run(cli.global, command).await,
            Command::Openapi => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&retake_server::openapi_document())?
                );
                Ok(())
            }
            Command::Migrate => {
                let store = common::open_store(&cli.global).await?;
                println!(
                    "{} database is up to date ({})",
                    store.backend_name(),
                    common::describe_url(&cli.global)
                );
                Ok(())
            }
        }
    })
}
