//! `pageserver --workdir DIR`: the page server. Reads `DIR/pageserver.toml` if present;
//! `-c key=value` overrides a setting; `FAILPOINTS="name=actions;..."` configures failpoints
//! at start in builds with the `testing` feature.

use anyhow::Context;
use clap::Parser;
use pageserver::config::PageServerConf;
use pageserver::server::PageServer;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "pageserver", about = "The page server", version)]
struct Cli {
    /// The work directory (created if missing).
    #[arg(long, default_value = ".pageserver")]
    workdir: PathBuf,
    /// HTTP listen address (overrides listen_http).
    #[arg(long)]
    listen_http: Option<String>,
    /// Override a setting of pageserver.toml, as TOML: -c checkpoint_distance=1048576
    #[arg(short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
}

fn configure_failpoints() -> anyhow::Result<()> {
    let Ok(spec) = std::env::var("FAILPOINTS") else {
        return Ok(());
    };
    anyhow::ensure!(
        layer_format::failpoints::enabled(),
        "FAILPOINTS is set but this build has no failpoints (build with --features testing)"
    );
    for item in spec.split(';').filter(|s| !s.trim().is_empty()) {
        let (name, actions) = item
            .split_once('=')
            .with_context(|| format!("FAILPOINTS entry {item:?} is not name=actions"))?;
        layer_format::failpoints::configure(name.trim(), actions.trim())
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("failpoint {name}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .init();
    let cli = Cli::parse();
    configure_failpoints()?;
    std::fs::create_dir_all(&cli.workdir)
        .with_context(|| format!("create {}", cli.workdir.display()))?;
    let mut overrides = cli.config.clone();
    if let Some(addr) = &cli.listen_http {
        overrides.push(format!("listen_http = {addr:?}"));
    }
    let conf = PageServerConf::load(&cli.workdir, &overrides)?;
    let addr = conf.listen_http;
    let server = PageServer::start(conf).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, workdir = %cli.workdir.display(), "listening");
    axum::serve(listener, server.router())
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
        })
        .await?;
    server.shutdown();
    Ok(())
}
