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
        Command::Layer(LayerCmd::Verify { file, checksum }) => {
            emit(pagectl::verify_layer(&file, checksum))
        }
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
