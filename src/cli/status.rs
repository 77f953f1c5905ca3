//! `quorate status`: quorum, nodes, instances, blocked instances, the last pass, the
//! commit in force and rejected commits; from a running server or a state directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::reconcile::store::Store;
use crate::state::StateStore;
use crate::status::{REJECTED_PAGE, StatusView};

/// Output formats of `quorate status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people, like `crm_mon`.
    Human,
    /// The status as JSON.
    Json,
}

/// Arguments of `quorate status`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 shown, 1 no status is recorded yet, 2 could not run.")]
pub struct Args {
    /// A running `quorate run` (`http://host:port`).
    #[arg(long, value_name = "URL", conflicts_with = "state_dir")]
    server: Option<String>,
    /// A state directory (read-only use of its database).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Which page of rejected commits to show, newest first (10 a page).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    page: u64,
}

/// Largest status answer read from a server. Its own status is far smaller (rejected
/// commits come one page at a time, their findings bounded).
const MAX_STATUS_BYTES: u64 = 16 * 1024 * 1024;

pub fn run(args: &Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let view = match &args.server {
        Some(url) => runtime.block_on(from_server(url, args.page)),
        None => {
            let dir = args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::state::DEFAULT_DIR));
            runtime.block_on(from_state_dir(&dir, args.page))
        }
    };
    let view = match view {
        Ok(v) => v,
        Err((code, why)) => {
            eprintln!("error: {why}");
            return ExitCode::from(code);
        }
    };
    let text = match args.format {
        Format::Human => view.human(),
        Format::Json => serde_json::to_string_pretty(&view).unwrap_or_default() + "\n",
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if view.last_pass.is_none() {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

async fn from_state_dir(dir: &std::path::Path, page: u64) -> Result<StatusView, (u8, String)> {
    if !dir.join(crate::state::DB_FILE).exists() {
        return Err((
            EXIT_USAGE,
            format!("no state database in {}", dir.display()),
        ));
    }
    let store =
        StateStore::open(dir).map_err(|e| (EXIT_USAGE, format!("{}: {e}", dir.display())))?;
    let last = store
        .passes(1)
        .await
        .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    let applied = store
        .last_applied()
        .await
        .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    let commit = match applied {
        Some(a) => a.commit.id,
        None => last.first().map(|p| p.commit.clone()).unwrap_or_default(),
    };
    let mut view = StatusView::from_pass(&commit, last.first());
    let offset = usize::try_from(page.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .saturating_mul(REJECTED_PAGE);
    let failed = |e: crate::state::StateError| (EXIT_USAGE, e.to_string());
    view.rejected = store
        .rejected_page(offset, REJECTED_PAGE)
        .await
        .map_err(failed)?
        .iter()
        .map(Into::into)
        .collect();
    view.rejected_total = store.rejected_count().await.map_err(failed)?;
    view.rejected_page = page;
    Ok(view)
}

/// `GET <url>/status?page=N` over plain HTTP (the server listens on a management
/// address), reading at most [`MAX_STATUS_BYTES`].
async fn from_server(url: &str, page: u64) -> Result<StatusView, (u8, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad = |why: String| (EXIT_USAGE, why);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad(format!("{url}: only http:// URLs are supported")))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        s.write_all(
            format!(
                "GET /status?page={page} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.take(MAX_STATUS_BYTES + 1).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(std::time::Duration::from_secs(10), fetch)
        .await
        .map_err(|_| bad(format!("{url}: no answer within 10s")))?
        .map_err(|e| bad(format!("{url}: {e}")))?;
    if buf.len() as u64 > MAX_STATUS_BYTES {
        return Err(bad(format!(
            "{url}: the status is larger than {MAX_STATUS_BYTES} bytes; is this quorate?"
        )));
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad(format!("{url}: not an HTTP answer")))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(bad(format!("{url}: {}", head.lines().next().unwrap_or(""))));
    }
    serde_json::from_str(body).map_err(|e| bad(format!("{url}: not a status: {e}")))
}
