//! `quorate state`: the state directory itself. `backup FILE` writes a consistent copy of
//! its database (SQLite's online backup), safe while `quorate run` uses it.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{EXIT_USAGE, StateDirArg};
use crate::state::{DB_FILE, StateStore};

/// Arguments of `quorate state`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Write a consistent copy of state.db to FILE (a new file), while quorate runs or
    /// not. Restore it by stopping quorate, deleting DIR/state.db-wal and -shm, and
    /// copying it to DIR/state.db.
    #[command(
        after_help = "Exit codes: 0 written, 1 could not (no database, FILE exists, \
                            unwritable)."
    )]
    Backup(Backup),
}

#[derive(Debug, clap::Args)]
struct Backup {
    /// Where the copy goes; must not exist yet.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    state: StateDirArg,
}

/// Runs `quorate state`.
pub fn run(args: &Args) -> ExitCode {
    match &args.command {
        Sub::Backup(b) => match backup(b) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("error: {why}");
                ExitCode::from(EXIT_USAGE)
            }
        },
    }
}

/// Reading never creates a state directory or a database: a missing one is an error.
fn backup(args: &Backup) -> Result<(), String> {
    let db = args.state.dir.join(DB_FILE);
    if !db.is_file() {
        return Err(format!(
            "no state database at {} (nothing recorded there, or a wrong --state-dir)",
            db.display()
        ));
    }
    let store = StateStore::open(&args.state.dir).map_err(|e| e.to_string())?;
    let bytes = store.backup_to(&args.file).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({bytes} bytes), a copy of {}",
        args.file.display(),
        db.display()
    );
    Ok(())
}
