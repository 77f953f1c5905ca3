//! `quorate validate`: the three validation layers, for people and pipelines.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::diag::render::{Format, RenderContext, render};
use crate::secret::SecretPolicy;
use crate::source;
use crate::spec::SpecSet;
use crate::validate::validate_with;

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
    /// Run as a git pre-receive hook: read `old new ref` lines on stdin and validate the
    /// tree of each pushed branch tip in the repository the hook runs in (exit 1 refuses
    /// the push).
    #[arg(long)]
    pre_receive: bool,
    /// With --pre-receive: the subdirectory of the tree that holds the specs.
    #[arg(long = "path", value_name = "SUBDIR", requires = "pre_receive", value_parser = super::pre_receive::subdir_arg)]
    subdir: Option<PathBuf>,
    /// With --pre-receive: check only this branch (repeatable; default: every branch).
    #[arg(long = "branch", value_name = "NAME", requires = "pre_receive")]
    branches: Vec<String>,
    #[command(flatten)]
    secrets: PolicyCheckArgs,
}

/// The operator's secret policy, optional for `validate`: given, every secret reference
/// outside it is an error, as `quorate run` will find.
#[derive(Debug, clap::Args)]
struct PolicyCheckArgs {
    /// Check secret references against the default policy (fromFile inside
    /// /etc/quorate/secrets, fromEnv starting with QUORATE_SECRET_), or the one the two
    /// flags below describe.
    #[arg(long)]
    secret_policy: bool,
    /// Check that `fromFile` secret references are inside DIR (as `quorate run
    /// --secrets-dir`); implies --secret-policy.
    #[arg(long = "secrets-dir", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Check that `fromEnv` secret references start with PREFIX (as `quorate run
    /// --secret-env-prefix`); implies --secret-policy.
    #[arg(long = "secret-env-prefix", value_name = "PREFIX")]
    env_prefix: Option<String>,
}

impl PolicyCheckArgs {
    /// The policy to check against, if any was asked for; a missing flag takes its default.
    fn policy(&self) -> Option<SecretPolicy> {
        if !self.secret_policy && self.dir.is_none() && self.env_prefix.is_none() {
            return None;
        }
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| crate::secret::DEFAULT_SECRETS_DIR.into());
        let prefix = self
            .env_prefix
            .as_deref()
            .unwrap_or(crate::secret::DEFAULT_ENV_PREFIX);
        Some(super::secret_policy(Some(&dir), prefix))
    }
}

pub fn run(args: &Args) -> ExitCode {
    let policy = args.secrets.policy();
    if args.pre_receive {
        return super::pre_receive::run(&super::pre_receive::Options {
            subdir: args.subdir.as_deref(),
            branches: &args.branches,
            strict: args.strict,
            secrets: policy.as_ref(),
        });
    }
    let sources = match source::fs::read_paths(&args.paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let report = validate_with(&sources, policy.as_ref());
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
    drop(out);
    super::exit_now(if failed { super::EXIT_FAILURE } else { 0 })
}

/// Reads and validates the spec set at `paths` for a command that acts on it, with the
/// operator's secret policy when the command reads secrets. Findings (errors, and
/// warnings of a valid set) are rendered to stderr as `validate` renders them. A set with
/// errors is refused with exit 1 (design invariant 6: a spec set that does not validate
/// is never acted on); so is an unreadable path.
pub(crate) fn load_valid(
    paths: &[PathBuf],
    secrets: Option<&SecretPolicy>,
) -> Result<SpecSet, ExitCode> {
    load_valid_as(paths, secrets, Format::Human)
}

/// [`load_valid`], with the findings in `format`: human text on stderr, or (any other
/// format) on stdout for a machine, with no other text there.
pub(crate) fn load_valid_as(
    paths: &[PathBuf],
    secrets: Option<&SecretPolicy>,
    format: Format,
) -> Result<SpecSet, ExitCode> {
    let sources = match source::fs::read_paths(paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let report = validate_with(&sources, secrets);
    let invalid = report.errors() > 0;
    if format != Format::Human && invalid {
        let ctx = RenderContext {
            sources: &sources,
            redactions: report.index.redactions(),
            color: false,
        };
        let _ = render(
            &mut std::io::stdout().lock(),
            format,
            &report.diagnostics,
            &ctx,
        );
    } else if !report.diagnostics.is_empty() {
        let ctx = RenderContext {
            sources: &sources,
            redactions: report.index.redactions(),
            color: super::color_stderr(),
        };
        let _ = render(
            &mut std::io::stderr().lock(),
            Format::Human,
            &report.diagnostics,
            &ctx,
        );
    }
    let (errors, warnings) = (report.errors(), report.warnings());
    // The files are only needed for the findings, rendered above: freed while the
    // command goes on.
    super::free_later(sources);
    match report.into_valid_set() {
        Some(set) => Ok(set),
        None => {
            eprintln!(
                "error: the specs are invalid ({errors} error(s), {warnings} warning(s)); \
                 run `quorate validate` on them"
            );
            Err(ExitCode::from(super::EXIT_FAILURE))
        }
    }
}
