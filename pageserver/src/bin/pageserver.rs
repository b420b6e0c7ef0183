//! `pageserver --workdir DIR`: the page server. Reads `DIR/pageserver.toml` if present;
//! `-c key=value` overrides a setting; `FAILPOINTS="name=actions;..."` configures failpoints
//! at start in builds with the `testing` feature.
//!
//! SIGTERM or SIGINT shuts it down gracefully (brief section 6): state-changing requests answer
//! 503, every timeline is frozen, flushed and its index uploaded within `shutdown_timeout`; the
//! exit code is 0 if all of that finished, 1 if the deadline passed first. A second signal
//! exits at once (1). Start-up failures exit 1 with the error on stderr.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use pageserver::config::{LogFormat, PageServerConf};
use pageserver::server::PageServer;
use std::path::PathBuf;
use std::time::Duration;

/// `pageserver --version`: the crate version and the git revision of the build.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PAGESERVER_BUILD_REVISION"),
    ")"
);

#[derive(Parser)]
#[command(name = "pageserver", about = "The page server", version = VERSION)]
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
        pageserver::failpoints::enabled(),
        "FAILPOINTS is set but this build has no failpoints (build with --features testing)"
    );
    pageserver::failpoints::configure_all(&spec)
        .map_err(anyhow::Error::msg)
        .context("FAILPOINTS")
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Plain => builder.init(),
        // One object per line; the fields of the request's or job's spans (tenant_id,
        // timeline_id, route) are in `spans`, the innermost also in `span`.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// SIGTERM and SIGINT, listened for from the start: one that arrives while the server starts
/// is kept and starts the shutdown as soon as it can run.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("listen for SIGINT")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pageserver: start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(run()) {
        Ok(code) => code,
        Err(e) => {
            // Logging may not be set up yet (a bad config file).
            eprintln!("pageserver: {e:#}");
            tracing::error!("{e:#}");
            1
        }
    };
    // Exit with the runtime alive: dropping it would wait for blocking I/O still running
    // (a flush, a compaction) after a shutdown that missed its deadline.
    std::process::exit(code);
}

/// Runs the server until a signal; the process's exit code: 0 when every timeline was
/// flushed and uploaded, 1 when the deadline passed first (or a second signal came).
async fn run() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    let mut signals = Signals::new()?;
    configure_failpoints()?;
    std::fs::create_dir_all(&cli.workdir)
        .with_context(|| format!("create {}", cli.workdir.display()))?;
    let mut overrides = cli.config.clone();
    if let Some(addr) = &cli.listen_http {
        overrides.push(format!("listen_http = {addr:?}"));
    }
    let conf = PageServerConf::load(&cli.workdir, &overrides)?;
    init_logging(conf.log_format);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision = pageserver::BUILD_REVISION,
        "starting"
    );
    let addr = conf.listen_http;
    let shutdown_timeout = conf.shutdown_timeout;
    let server = PageServer::start(conf).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, workdir = %cli.workdir.display(), auth = server.auth.is_some(), "listening");
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut http = tokio::spawn(
        axum::serve(listener, pageserver::http::router(server.clone()))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let signal = tokio::select! {
        s = signals.recv() => s,
        served = &mut http => {
            // The listener failed on its own.
            served.context("the HTTP server task")?.context("the HTTP server")?;
            anyhow::bail!("the HTTP server stopped");
        }
    };
    tracing::info!(
        signal,
        timeout = ?shutdown_timeout,
        "shutting down: refusing state-changing requests, flushing every timeline"
    );
    // A second signal ends the process at once, as an impatient operator expects.
    tokio::spawn(async move {
        let again = signals.recv().await;
        tracing::error!("{again} during shutdown: exiting now without waiting for uploads");
        std::process::exit(1);
    });
    let started = std::time::Instant::now();
    let report = server.drain(shutdown_timeout).await;
    // Reads still running may finish, within what is left of the deadline (at least a moment,
    // at most 5 s); idle connections close.
    let grace = shutdown_timeout
        .saturating_sub(started.elapsed())
        .clamp(Duration::from_millis(200), Duration::from_secs(5));
    let _ = stop_http.send(());
    let _ = tokio::time::timeout(grace, &mut http).await;
    server.shutdown();
    if report.complete() {
        tracing::info!(
            flushed = report.flushed,
            skipped = report.skipped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "shut down: every timeline flushed and uploaded"
        );
        Ok(0)
    } else {
        tracing::error!(
            flushed = report.flushed,
            skipped = report.skipped,
            failed = ?report.failed,
            requests_cut = report.requests_cut,
            "shut down at the deadline: records above remote_consistent_lsn of the failed timelines are not in remote storage and are dropped at the next start"
        );
        Ok(1)
    }
}
