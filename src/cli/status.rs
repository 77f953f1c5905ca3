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
#[command(after_help = "Exit codes: 0 shown, 1 no status is recorded yet or it could not run.")]
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
    /// Show the status again every --interval until interrupted (like `crm_mon`); on a
    /// terminal the screen is redrawn, otherwise each status follows the last.
    #[arg(long)]
    watch: bool,
    /// With --watch: time between two reads.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "2s",
        requires = "watch"
    )]
    interval: crate::spec::Duration,
}

/// Largest status answer read from a server. Its own status is far smaller (rejected
/// commits come one page at a time, their findings bounded).
const MAX_STATUS_BYTES: u64 = 16 * 1024 * 1024;

pub fn run(args: &Args) -> ExitCode {
    let runtime = match super::cluster_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.watch {
        return runtime.block_on(watch(args));
    }
    let view = runtime.block_on(read(args));
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

/// The status from the server or the state directory the flags name.
async fn read(args: &Args) -> Result<StatusView, (u8, String)> {
    match &args.server {
        Some(url) => from_server(url, args.page).await,
        None => {
            let dir = args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::state::DEFAULT_DIR));
            from_state_dir(&dir, args.page).await
        }
    }
}

/// `--watch`: the status every interval until Ctrl-C; a read that fails is shown and
/// tried again (the server may be restarting).
async fn watch(args: &Args) -> ExitCode {
    let redraw = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let every = args
        .interval
        .get()
        .max(std::time::Duration::from_millis(100));
    loop {
        let text = match read(args).await {
            Ok(view) => match args.format {
                Format::Human => view.human(),
                Format::Json => serde_json::to_string(&view).unwrap_or_default() + "\n",
            },
            Err((_, why)) => format!("error: {why} (trying again)\n"),
        };
        let mut out = std::io::stdout().lock();
        if redraw && args.format == Format::Human {
            // Clear the screen and go home, as `watch` does.
            let _ = out.write_all(b"\x1b[2J\x1b[H");
        }
        let stamp = crate::fence::format_unix_ms(crate::fence::Clock::now_unix_ms(
            &crate::fence::SystemClock,
        ));
        if args.format == Format::Human {
            let _ = writeln!(
                out,
                "quorate status at {stamp} (every {}; Ctrl-C to stop)\n",
                args.interval
            );
        }
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::SUCCESS; // the reader went away (a closed pipe)
        }
        drop(out);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
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
    // What is suspended now, also before a pass has seen it.
    view.suspended = store
        .suspended()
        .await
        .map_err(|e| (EXIT_USAGE, e.to_string()))?;
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

/// `GET <url>/status?page=N` (reqwest; `https://` with rustls and the system's roots),
/// reading at most [`MAX_STATUS_BYTES`].
async fn from_server(url: &str, page: u64) -> Result<StatusView, (u8, String)> {
    let bad = |why: String| (EXIT_USAGE, why);
    let body = get_bounded(url, &format!("status?page={page}"), MAX_STATUS_BYTES)
        .await
        .map_err(bad)?;
    serde_json::from_slice(&body).map_err(|e| bad(format!("{url}: not a status: {e}")))
}

/// The HTTP client of the commands that talk to a server: rustls, a 10 s deadline, no
/// redirects (a token never follows one elsewhere).
pub(crate) fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// `url` joined with `path` (a server's base URL with or without a trailing slash).
pub(crate) fn endpoint(url: &str, path: &str) -> Result<reqwest::Url, String> {
    let base = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(format!(
            "{url}: only http:// and https:// URLs are supported"
        ));
    }
    let mut base = base;
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path).map_err(|e| format!("{url}: {e}"))
}

/// A GET of `path` under `url` whose answer must be 200 and at most `max` bytes.
pub(crate) async fn get_bounded(url: &str, path: &str, max: u64) -> Result<Vec<u8>, String> {
    let target = endpoint(url, path)?;
    let mut answer = client()?
        .get(target)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::diag::error_chain(&e)))?;
    if answer.status() != reqwest::StatusCode::OK {
        return Err(format!("{url}: {}", answer.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| format!("{url}: {}", crate::diag::error_chain(&e)))?
    {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > max {
            return Err(format!(
                "{url}: the answer is larger than {max} bytes; is this quorate?"
            ));
        }
    }
    Ok(body)
}
