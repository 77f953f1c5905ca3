//! `quorate reconcile --server URL`: asks a running `quorate run` for a pass now (what
//! `flux reconcile` does), with the bearer token of its `--token-file`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::EXIT_USAGE;

/// Arguments of `quorate reconcile`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 a pass is scheduled, 1 refused or could not ask.")]
pub struct Args {
    /// The running `quorate run` (`http://host:port` or `https://…`).
    #[arg(long, value_name = "URL")]
    server: String,
    /// File holding the bearer token (the one given to `quorate run --token-file`).
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
}

pub fn run(args: &Args) -> ExitCode {
    let runtime = match super::cluster_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(ask(args)) {
        Ok(()) => {
            println!("a pass is scheduled");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn ask(args: &Args) -> Result<(), String> {
    // Read as `quorate run` reads its --token-file, so the same file matches.
    let secret = crate::secret::SecretRef::FromFile(args.token_file.clone())
        .read()
        .map_err(|e| e.to_string())?;
    let token = secret
        .expose_str()
        .ok_or_else(|| format!("{}: the token is not text", args.token_file.display()))?;
    let url = &args.server;
    let target = super::status::endpoint(url, "v1/reconcile")?;
    // The token goes only in the header, and reqwest's errors name the URL, never headers.
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token holds characters a header cannot carry".to_owned())?;
    auth.set_sensitive(true);
    let answer = super::status::client()?
        .post(target)
        .header(reqwest::header::AUTHORIZATION, auth)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::diag::error_chain(&e)))?;
    match answer.status() {
        reqwest::StatusCode::ACCEPTED => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED => Err(format!(
            "{url}: the token was refused (is it the file given to `quorate run --token-file`?)"
        )),
        reqwest::StatusCode::SERVICE_UNAVAILABLE => {
            Err(format!("{url}: the reconciler is busy; try again"))
        }
        other => Err(format!("{url}: {other}")),
    }
}
