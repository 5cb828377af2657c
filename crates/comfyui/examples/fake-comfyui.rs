//! The test suite's fake ComfyUI server as a process, for demos without a GPU
//! (`scripts/cluster-demo`): it speaks ComfyUI's HTTP and WebSocket protocol, runs every prompt
//! for `--exec-ms` and writes a real short mp4 with ffmpeg. Not a ComfyUI: nothing is generated.
//!
//!   cargo run -p retake-comfyui --features fake --example fake-comfyui -- \
//!       --name gpu-a --listen 127.0.0.1:8188 [--exec-ms 1500] [--concurrency 2]
//!   … --example fake-comfyui -- --print-workflow     (its example API-format workflow)
//!
//! Stops on SIGINT or SIGTERM.

use retake_comfyui::fake::{example_workflow, FakeComfy};
use std::net::SocketAddr;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: fake-comfyui --name NAME --listen ADDR [--exec-ms MS] [--concurrency N] | --print-workflow"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut name = None;
    let mut listen: Option<SocketAddr> = None;
    let mut exec_ms = 1500u64;
    let mut concurrency = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--print-workflow" => {
                println!("{}", example_workflow());
                return;
            }
            "--name" => name = Some(value()),
            "--listen" => listen = Some(value().parse().unwrap_or_else(|_| usage())),
            "--exec-ms" => exec_ms = value().parse().unwrap_or_else(|_| usage()),
            "--concurrency" => concurrency = value().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let (Some(name), Some(listen)) = (name, listen) else {
        usage()
    };
    let fake = match FakeComfy::start_on(&name, listen).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-comfyui {name}: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    fake.set_exec_time(Duration::from_millis(exec_ms));
    fake.set_concurrency(concurrency);
    println!(
        "fake ComfyUI {name} at {} ({exec_ms} ms a prompt, {concurrency} at once)",
        fake.url()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    fake.stop().await;
}
