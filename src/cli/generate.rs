//! `quorate generate`: shell completions (clap_complete) and man pages (clap_mangen) from
//! the command line's own definition, for packages (`scripts/deb`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::EXIT_USAGE;

/// Arguments of `quorate generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Writes the completion script of SHELL to DIR (`quorate.bash`, `_quorate`,
    /// `quorate.fish`, ...).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        /// Directory to write to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Writes a man page for quorate and each of its commands to DIR (`quorate.1`,
    /// `quorate-run.1`, ...).
    Man {
        /// Directory to write to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

pub fn run(args: &Args) -> ExitCode {
    let done = match &args.what {
        What::Completions { shell, out } => completions(*shell, out),
        What::Man { out } => man(out),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn completions(shell: clap_complete::Shell, out: &Path) -> Result<(), String> {
    let mut cmd = super::command();
    let path = clap_complete::generate_to(shell, &mut cmd, "quorate", out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{}", path.display());
    Ok(())
}

fn man(out: &Path) -> Result<(), String> {
    let cmd = super::command();
    clap_mangen::generate_to(cmd, out).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}
