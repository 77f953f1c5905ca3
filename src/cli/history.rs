//! `quorate history`: the passes with their plans and step results, the fence events, the
//! commits put in force and refused; from a running server or a state directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::EXIT_USAGE;
use crate::history::{HistoryView, MAX_LIMIT};

/// Output formats of `quorate history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people, newest first.
    Human,
    /// The history as JSON (the document of `GET /history`).
    Json,
}

/// Arguments of `quorate history`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 shown, 1 could not read it.")]
pub struct Args {
    /// A running `quorate run` (`http://host:port` or `https://…`).
    #[arg(long, value_name = "URL", conflicts_with = "state_dir")]
    server: Option<String>,
    /// A state directory (read-only use of its database).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Entries of each kind (passes, fence events, commits), newest first.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=MAX_LIMIT as u64))]
    limit: u64,
}

/// Largest history answer read from a server.
const MAX_HISTORY_BYTES: u64 = 64 * 1024 * 1024;

pub fn run(args: &Args) -> ExitCode {
    let runtime = match super::cluster_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let limit = usize::try_from(args.limit).unwrap_or(MAX_LIMIT);
    let view = match &args.server {
        Some(url) => runtime.block_on(from_server(url, limit)),
        None => {
            let dir = args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::state::DEFAULT_DIR));
            runtime.block_on(from_state_dir(&dir, limit))
        }
    };
    let view = match view {
        Ok(v) => v,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let text = match args.format {
        Format::Human => view.human(),
        Format::Json => serde_json::to_string_pretty(&view).unwrap_or_default() + "\n",
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

async fn from_state_dir(dir: &std::path::Path, limit: usize) -> Result<HistoryView, String> {
    if !dir.join(crate::state::DB_FILE).exists() {
        return Err(format!("no state database in {}", dir.display()));
    }
    let store =
        crate::state::StateStore::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    HistoryView::from_store(&store, limit).await
}

async fn from_server(url: &str, limit: usize) -> Result<HistoryView, String> {
    let body =
        super::status::get_bounded(url, &format!("history?limit={limit}"), MAX_HISTORY_BYTES)
            .await?;
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not a history: {e}"))
}
