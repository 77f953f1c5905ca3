//! `quorate validate`: the three validation layers, for people and pipelines.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::diag::render::{Format, RenderContext, render};
use crate::source;
use crate::validate::validate;

/// Arguments of `quorate validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Spec files or directories (searched for *.yaml and *.yml).
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Fail on warnings too.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: &Args) -> ExitCode {
    let sources = match source::fs::read_paths(&args.paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let report = validate(&sources);
    let ctx = RenderContext {
        sources: &sources,
        redactions: report.index.redactions(),
        color: super::color_stdout(),
    };
    let mut out = std::io::stdout().lock();
    let _ = render(&mut out, args.format, &report.diagnostics, &ctx);
    let failed = report.errors() > 0 || (args.strict && report.warnings() > 0);
    if args.format == Format::Human {
        let docs = report.index.len();
        let files = sources.len();
        let _ = if report.diagnostics.is_empty() {
            writeln!(out, "valid: {docs} documents in {files} files")
        } else {
            writeln!(
                out,
                "{}: {} error(s), {} warning(s) in {docs} documents, {files} files",
                if failed { "invalid" } else { "valid" },
                report.errors(),
                report.warnings()
            )
        };
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
