//! `quorate state`: the state directory itself. `backup FILE` writes a consistent copy of
//! its database (SQLite's online backup), safe while `quorate run` uses it. `export` and
//! `import` move its records into etcd for HA mode.

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
    /// Print everything the state database keeps (node records, fence history and manual
    /// confirmations, fail counts, commits, the newest passes) as JSON, for `state import`.
    #[command(after_help = "Exit codes: 0 written, 2 could not (no database, unreadable).")]
    Export(Export),
    /// Write an export into etcd, to move a cluster to HA (`quorate run --etcd`) without
    /// losing its fence history. The prefix must hold no state yet.
    #[command(
        after_help = "Exit codes: 0 imported, 2 could not (unreadable file, etcd \
                            unreachable, prefix not empty)."
    )]
    Import(Import),
}

#[derive(Debug, clap::Args)]
struct Export {
    #[command(flatten)]
    state: StateDirArg,
}

#[derive(Debug, clap::Args)]
struct Import {
    /// The file `quorate state export` wrote.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    etcd: super::ha::EtcdArgs,
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
    let done = match &args.command {
        Sub::Backup(b) => backup(b),
        Sub::Export(e) => export(e),
        Sub::Import(i) => import(i),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn export(args: &Export) -> Result<(), String> {
    let db = args.state.dir.join(DB_FILE);
    if !db.is_file() {
        return Err(format!("no state database at {}", db.display()));
    }
    let store = StateStore::open(&args.state.dir).map_err(|e| e.to_string())?;
    let rt = super::cluster_runtime().map_err(|_| "cannot start the async runtime".to_owned())?;
    let export = rt.block_on(crate::ha::migrate::export(&store))?;
    let text = serde_json::to_string_pretty(&export).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

fn import(args: &Import) -> Result<(), String> {
    let cfg = args
        .etcd
        .config()
        .ok_or("--etcd URL[,URL...] is needed: the etcd cluster to import into")?;
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let export: crate::ha::migrate::Export = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not an export of `quorate state export`: {e}",
            args.file.display()
        )
    })?;
    let rt = super::cluster_runtime().map_err(|_| "cannot start the async runtime".to_owned())?;
    let done = rt.block_on(async {
        let client = crate::ha::connect(&cfg).await?;
        let store = crate::ha::store::EtcdStore::operator(client, &args.etcd.etcd_prefix);
        crate::ha::migrate::import(&store, &export).await
    })?;
    println!(
        "imported {} keys ({} fence history entries) under {}",
        done.keys, done.fence, args.etcd.etcd_prefix
    );
    Ok(())
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
