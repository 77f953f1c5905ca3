//! `quorate schema`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `quorate schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write the schemas into (created if missing).
    #[arg(long, default_value = "schemas")]
    out: PathBuf,
}

pub fn run(args: &Args) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("error: cannot create {}: {e}", args.out.display());
        return ExitCode::from(super::EXIT_USAGE);
    }
    for (name, text) in crate::schema::rendered() {
        let path = args.out.join(&name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(super::EXIT_USAGE);
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
