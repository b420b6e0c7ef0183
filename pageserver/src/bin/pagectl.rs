//! `pagectl`: offline tools for operators. See [`pageserver::pagectl`].

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
    }
}
