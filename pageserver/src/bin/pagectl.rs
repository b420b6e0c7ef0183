//! `pagectl`: offline tools for operators. See [`pageserver::pagectl`].
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use pageserver::pagectl::{self, Outcome, Status};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pagectl",
    about = "Offline tools for page server files",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect an index_part.json file.
    #[command(name = "index-part", subcommand)]
    IndexPart(IndexCmd),
    /// Inspect a layer file.
    #[command(subcommand)]
    Layer(LayerCmd),
    /// Check remote storage against the indexes: every referenced object present with its
    /// size (and with --verify-checksums its CRC32C), orphans, stale index versions. Exit code
    /// 0 clean, 1 problems found, 2 could not run.
    Scrub {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Download every referenced layer object and check its CRC32C.
        #[arg(long)]
        verify_checksums: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Index versions kept below the authoritative one.
        #[arg(long, default_value_t = 5)]
        keep_index_versions: usize,
    },
    /// Delete what scrub proves unreferenced (dry run unless --delete). Exit code 0 done,
    /// 2 could not run.
    PurgeGarbage {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Delete; without it nothing is changed.
        #[arg(long)]
        delete: bool,
        /// Index versions kept below the authoritative one.
        #[arg(long, default_value_t = 5)]
        keep_index_versions: usize,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Timelines.
    #[command(subcommand)]
    Timeline(TimelineCmd),
    /// The files the server moved to lost+found/ in the timelines of a work directory.
    #[command(name = "lost-found", subcommand)]
    LostFound(LostFoundCmd),
    /// Mint a JWT for the HTTP API, signed with an Ed25519 private key (PEM); prints it.
    Token {
        /// The private key (`openssl genpkey -algorithm ed25519 -out KEY`).
        #[arg(long)]
        key: PathBuf,
        /// `pageserverapi` (every route) or `tenant` (the timeline routes of one tenant).
        #[arg(long)]
        scope: String,
        /// The tenant of a `tenant` token.
        #[arg(long)]
        tenant_id: Option<String>,
        /// Validity, e.g. `1h` or `30d`; without it the token does not expire.
        #[arg(long)]
        ttl: Option<String>,
    },
}

fn token(
    key: &PathBuf,
    scope: String,
    tenant_id: Option<String>,
    ttl: Option<String>,
) -> Result<String, String> {
    use pageserver::http::auth::{Claims, sign};
    match (scope.as_str(), &tenant_id) {
        ("pageserverapi", None) => {}
        ("pageserverapi", Some(_)) => return Err("--tenant-id goes with --scope tenant".into()),
        ("tenant", Some(t)) => {
            t.parse::<pageserver::index_part::names::TenantId>()
                .map_err(|e| format!("--tenant-id {t}: {e}"))?;
        }
        ("tenant", None) => return Err("--scope tenant needs --tenant-id".into()),
        (other, _) => {
            return Err(format!("--scope {other}: expected pageserverapi or tenant"));
        }
    }
    let exp = match ttl {
        None => None,
        Some(t) => {
            let d = humantime_duration(&t)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?;
            Some(
                now.checked_add(d)
                    .ok_or_else(|| format!("--ttl {t:?}: too far in the future"))?
                    .as_secs(),
            )
        }
    };
    let pem = std::fs::read(key).map_err(|e| format!("read {}: {e}", key.display()))?;
    sign(
        &Claims {
            scope,
            tenant_id,
            exp,
        },
        &pem,
    )
    .map_err(|e| format!("{}: {e:#}", key.display()))
}

fn humantime_duration(t: &str) -> Result<std::time::Duration, String> {
    pageserver::config::parse_duration(t).map_err(|e| format!("--ttl {t:?}: {e}"))
}

/// Where the remote storage settings come from: the server's own configuration.
#[derive(clap::Args)]
struct RemoteArgs {
    /// The server's work directory: its pageserver.toml is read exactly as the server does.
    #[arg(long, default_value = ".pageserver")]
    workdir: PathBuf,
    /// Read the settings from this file instead of WORKDIR/pageserver.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a setting, as TOML, as the server's -c does.
    #[arg(short = 'c', value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

impl RemoteArgs {
    /// Opens the configured remote storage without creating anything.
    fn open(&self) -> anyhow::Result<std::sync::Arc<dyn pageserver::remote::RemoteStorage>> {
        use anyhow::Context;
        use pageserver::config::{PageServerConf, RemoteStorageConfig};
        let conf = match &self.config {
            Some(file) => {
                anyhow::ensure!(file.is_file(), "--config {}: no such file", file.display());
                PageServerConf::load_from(&self.workdir, file, &self.overrides)?
            }
            None => {
                anyhow::ensure!(
                    self.workdir.is_dir(),
                    "--workdir {}: no such directory",
                    self.workdir.display()
                );
                PageServerConf::load(&self.workdir, &self.overrides)?
            }
        };
        if let RemoteStorageConfig::Local { local_path } = &conf.remote_storage {
            anyhow::ensure!(
                local_path.is_dir(),
                "remote storage {}: no such directory",
                local_path.display()
            );
        }
        let engine = layer_format::io::open_engine(layer_format::io::EngineChoice::Std)
            .context("open the I/O engine")?;
        pageserver::server::open_storage(&conf, &engine)
    }
}

fn scrub_options(
    tenant: Option<String>,
    verify_checksums: bool,
    keep_index_versions: usize,
    progress: bool,
) -> anyhow::Result<pagectl::scrub::ScrubOptions> {
    let tenant = tenant
        .map(|t| t.parse().map_err(|e| anyhow::anyhow!("--tenant {t}: {e}")))
        .transpose()?;
    Ok(pagectl::scrub::ScrubOptions {
        tenant,
        verify_checksums,
        keep_index_versions,
        progress,
    })
}

/// Runs a remote command on a runtime of its own; errors exit 2.
fn run_remote(f: impl std::future::Future<Output = anyhow::Result<u8>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(f) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn scrub_cmd(
    remote: RemoteArgs,
    opts: anyhow::Result<pagectl::scrub::ScrubOptions>,
    json: bool,
) -> anyhow::Result<u8> {
    let (storage, opts) = (remote.open()?, opts?);
    let report = pagectl::scrub::scrub(&*storage, &opts).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", pagectl::scrub::render_text(&report));
    }
    Ok(if report.clean() { 0 } else { 1 })
}

async fn purge_cmd(
    remote: RemoteArgs,
    opts: anyhow::Result<pagectl::scrub::ScrubOptions>,
    delete: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let (storage, opts) = (remote.open()?, opts?);
    let report = pagectl::scrub::scrub(&*storage, &opts).await?;
    let outcome = pagectl::scrub::purge(&*storage, &report, delete).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", pagectl::scrub::render_purge(&outcome));
    }
    Ok(0)
}

#[derive(Subcommand)]
enum TimelineCmd {
    /// Draw the layer map as SVG on standard output: from the local timeline directory, or
    /// with --remote from the authoritative index in remote storage.
    Draw {
        /// The tenant.
        tenant: String,
        /// The timeline.
        timeline: String,
        /// Read the authoritative index from remote storage instead of the local directory.
        #[arg(long)]
        remote: bool,
        #[command(flatten)]
        settings: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum LostFoundCmd {
    /// List every entry (path, size, how long ago it was moved in), oldest first.
    List {
        /// The server's work directory.
        #[arg(long, default_value = ".pageserver")]
        workdir: PathBuf,
    },
    /// Remove the entries moved in more than the given time ago (e.g. 7d).
    Clean {
        /// The server's work directory.
        #[arg(long, default_value = ".pageserver")]
        workdir: PathBuf,
        /// Age beyond which an entry is removed, e.g. `30d` or `12h`.
        #[arg(long)]
        older_than: String,
    },
}

#[derive(Subcommand)]
enum IndexCmd {
    /// Summarize an index: layer counts by kind, LSN bounds, total size.
    Show {
        /// The index file.
        file: PathBuf,
    },
    /// Check an index strictly; exit code 0 if valid, 1 if not.
    Validate {
        /// The index file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum LayerCmd {
    /// Print a layer file's summary.
    Show {
        /// The layer file.
        file: PathBuf,
    },
    /// Print the records of a layer file, one per line, in (key, LSN) order; exit code 1 if the
    /// file turns out corrupt (the lines before the damage are printed).
    Dump {
        /// The layer file.
        file: PathBuf,
        /// Only the records of this key (32 hex digits).
        #[arg(long)]
        key: Option<String>,
        /// Only the records at or below this LSN (X/Y).
        #[arg(long)]
        lsn: Option<String>,
    },
    /// Check every block, blob and checksum of a layer file; exit code 0 if sound, 1 if not.
    Verify {
        /// The layer file.
        file: PathBuf,
        /// The whole-file CRC32C the index records (decimal).
        #[arg(long)]
        checksum: Option<u32>,
    },
}

fn emit(outcome: Outcome) -> ExitCode {
    if outcome.status == Status::Valid {
        print!("{}", outcome.report);
    } else {
        eprint!("{}", outcome.report);
    }
    ExitCode::from(outcome.status.exit_code())
}

fn read(file: &PathBuf) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(file).map_err(|e| {
        eprintln!("error: read {}: {e}", file.display());
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::IndexPart(IndexCmd::Show { file }) => match read(&file) {
            Ok(bytes) => emit(pagectl::show_index(&file, &bytes)),
            Err(code) => code,
        },
        Command::IndexPart(IndexCmd::Validate { file }) => match read(&file) {
            Ok(bytes) => emit(pagectl::validate_index(&file, &bytes)),
            Err(code) => code,
        },
        Command::Layer(LayerCmd::Show { file }) => emit(pagectl::show_layer(&file)),
        Command::Layer(LayerCmd::Dump { file, key, lsn }) => {
            let key = match key.map(|k| k.parse::<layer_format::Key>()).transpose() {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("error: --key: {e}");
                    return ExitCode::from(2);
                }
            };
            let lsn = match lsn.map(|l| l.parse::<layer_format::Lsn>()).transpose() {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: --lsn: {e}");
                    return ExitCode::from(2);
                }
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let outcome = pagectl::dump_layer(&file, key, lsn, &mut out);
            let flushed = std::io::Write::flush(&mut out);
            drop(out);
            if let Err(e) = flushed
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                eprintln!("error: write the dump: {e}");
                return ExitCode::from(2);
            }
            emit(outcome)
        }
        Command::Layer(LayerCmd::Verify { file, checksum }) => {
            emit(pagectl::verify_layer(&file, checksum))
        }
        Command::Scrub {
            remote,
            tenant,
            verify_checksums,
            json,
            keep_index_versions,
        } => {
            let opts = scrub_options(tenant, verify_checksums, keep_index_versions, !json);
            run_remote(scrub_cmd(remote, opts, json))
        }
        Command::PurgeGarbage {
            remote,
            tenant,
            delete,
            keep_index_versions,
            json,
        } => {
            let opts = scrub_options(tenant, false, keep_index_versions, false);
            run_remote(purge_cmd(remote, opts, delete, json))
        }
        Command::Timeline(TimelineCmd::Draw {
            tenant,
            timeline,
            remote,
            settings,
        }) => run_remote(async move {
            let t: index_part::names::TenantId = tenant
                .parse()
                .map_err(|e| anyhow::anyhow!("tenant {tenant}: {e}"))?;
            let tl: index_part::names::TimelineId = timeline
                .parse()
                .map_err(|e| anyhow::anyhow!("timeline {timeline}: {e}"))?;
            let drawing = if remote {
                pagectl::draw_remote(&*settings.open()?, t, tl).await?
            } else {
                pagectl::draw_local(&settings.workdir, t, tl)?
            };
            print!("{drawing}");
            Ok(0)
        }),
        Command::LostFound(LostFoundCmd::List { workdir }) => {
            emit(pagectl::list_lost_found(&workdir))
        }
        Command::LostFound(LostFoundCmd::Clean {
            workdir,
            older_than,
        }) => match pageserver::config::parse_duration(&older_than) {
            Ok(age) => emit(pagectl::clean_lost_found(&workdir, age)),
            Err(e) => {
                eprintln!("error: --older-than {older_than:?}: {e}");
                ExitCode::from(2)
            }
        },
        Command::Token {
            key,
            scope,
            tenant_id,
            ttl,
        } => match token(&key, scope, tenant_id, ttl) {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}
