//! `quorate import pacemaker`: a Pacemaker CIB to a spec set, with a report of what was
//! not carried over. The import itself is pure (`crate::import`); this reads the CIB,
//! writes the files and renders the findings.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::diag::render::{Format, RenderContext, render};
use crate::diag::{Diagnostic, Span};
use crate::import::{self, Failure, Import, OutputFile};
use crate::source::{FileId, Sources};

/// Arguments of `quorate import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    from: From,
}

#[derive(Debug, clap::Subcommand)]
enum From {
    /// Read a Pacemaker CIB (the XML of `cibadmin --query` or `pcs cluster cib`) and write
    /// a spec set (exit 0 all carried over, 1 something left out, an unreadable CIB, or it
    /// could not run).
    Pacemaker(PacemakerArgs),
}

/// Arguments of `quorate import pacemaker`.
#[derive(Debug, clap::Args)]
struct PacemakerArgs {
    /// The CIB file.
    cib: PathBuf,
    /// Directory to write the spec files into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also write the CIB's status section as an observed-state snapshot (JSON) here.
    #[arg(long, value_name = "FILE")]
    observed: Option<PathBuf>,
    /// Format of the findings.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// The files `quorate import pacemaker` writes; one left from an earlier import that is
/// not written this time is removed, so the directory holds exactly this import.
const OUTPUTS: &[&str] = &[
    "cluster.yaml",
    "bundles.yaml",
    "fences.yaml",
    "constraints.yaml",
    "groups.yaml",
];

pub fn run(args: &Args) -> ExitCode {
    match &args.from {
        From::Pacemaker(a) => pacemaker(a),
    }
}

fn pacemaker(args: &PacemakerArgs) -> ExitCode {
    let bytes = match read_cib(&args.cib) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.cib.display());
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let cib_name = args.cib.display().to_string();
    let shown = args
        .cib
        .file_name()
        .map_or(cib_name.clone(), |n| n.to_string_lossy().into_owned());
    let mut sources = Sources::new();
    let file = sources.add(cib_name, bytes);
    let bytes = sources
        .get(file)
        .map(|f| f.bytes.clone())
        .unwrap_or_default();
    match import::pacemaker(file, &shown, &bytes, args.observed.is_some()) {
        Ok(done) => write(args, &mut sources, &done),
        Err(Failure::Xml(d)) => {
            report(args.format, &sources, &[], &[*d]);
            ExitCode::from(super::EXIT_FAILURE)
        }
        Err(Failure::Invalid {
            files,
            findings,
            validation,
            redactions,
        }) => {
            add_outputs(&mut sources, &args.out, &files);
            let mut all = findings;
            all.extend(validation);
            report(args.format, &sources, &redactions, &all);
            eprintln!(
                "error: the imported spec set does not validate, so nothing was written: see the findings above"
            );
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

/// Reads the CIB, at most one byte past the import's limit (which then refuses it).
fn read_cib(path: &Path) -> std::io::Result<Vec<u8>> {
    let limit = u64::try_from(import::xml::MAX_CIB_BYTES).unwrap_or(u64::MAX) + 1;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn add_outputs(sources: &mut Sources, dir: &Path, files: &[OutputFile]) {
    for f in files {
        sources.add(
            dir.join(f.name).display().to_string(),
            f.text.as_bytes().to_vec(),
        );
    }
}

fn write(args: &PacemakerArgs, sources: &mut Sources, done: &Import) -> ExitCode {
    if let Err(e) = write_files(&args.out, &done.files) {
        eprintln!("error: cannot write to {}: {e}", args.out.display());
        return ExitCode::from(super::EXIT_USAGE);
    }
    if let (Some(path), Some(observed)) = (&args.observed, &done.observed) {
        let text = crate::observed::snapshot::to_json(observed);
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(super::EXIT_USAGE);
        }
    }
    add_outputs(sources, &args.out, &done.files);
    let mut all = done.findings.clone();
    all.extend(done.validation.iter().cloned());
    report(args.format, sources, &done.redactions, &all);
    let left = done.left_out();
    if args.format == Format::Human {
        let names: Vec<&str> = done.files.iter().map(|f| f.name).collect();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "wrote {} to {}{}",
            names.join(", "),
            args.out.display(),
            args.observed.as_ref().map_or(String::new(), |p| format!(
                ", and the snapshot {}",
                p.display()
            ))
        );
        let adjusted = done.findings.len() - left;
        let _ = writeln!(
            out,
            "{left} element(s) or setting(s) not carried over, {adjusted} carried over with a change to check"
        );
    }
    if left > 0 {
        ExitCode::from(super::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

fn write_files(dir: &Path, files: &[OutputFile]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in OUTPUTS {
        let path = dir.join(name);
        match files.iter().find(|f| f.name == *name) {
            Some(f) => std::fs::write(&path, &f.text)?,
            None if path.exists() => std::fs::remove_file(&path)?,
            None => {}
        }
    }
    Ok(())
}

fn report(format: Format, sources: &Sources, redactions: &[(FileId, Span)], diags: &[Diagnostic]) {
    if diags.is_empty() && format == Format::Human {
        return;
    }
    let ctx = RenderContext {
        sources,
        redactions,
        color: super::color_stdout(),
    };
    let _ = render(&mut std::io::stdout().lock(), format, diags, &ctx);
}
