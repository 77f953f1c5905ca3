//! `quorate validate --pre-receive`: a git pre-receive hook that refuses a push whose
//! branch tips do not validate (design invariant 6, enforced at push time).
//!
//! git runs the hook in the receiving repository with `old new ref` lines on stdin, one
//! per updated ref. The pushed objects are still in quarantine then
//! (`GIT_QUARANTINE_PATH`); git points `GIT_OBJECT_DIRECTORY` at them and lists the
//! repository's own objects in `GIT_ALTERNATE_OBJECT_DIRECTORIES`, so the repository is
//! opened from the environment. Everything the hook prints reaches the pusher.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use git2::Repository;

use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::diag::render::{Format, RenderContext, render};
use crate::secret::SecretPolicy;
use crate::source::git::{normalize_subdir, read_commit};
use crate::validate::validate_with;

/// What the hook checks.
pub(crate) struct Options<'a> {
    /// Subdirectory of the tree that holds the specs.
    pub subdir: Option<&'a Path>,
    /// Branches to check; empty: every branch.
    pub branches: &'a [String],
    /// Refuse warnings too.
    pub strict: bool,
    /// The operator's secret policy, when given: references outside it refuse the push.
    pub secrets: Option<&'a SecretPolicy>,
}

/// One line of the hook's input.
struct Update {
    new: String,
    reference: String,
}

/// Runs the hook on stdin; exit 0 accepts the push, 1 refuses it (invalid specs, or the
/// hook could not run).
pub(crate) fn run(options: &Options<'_>) -> ExitCode {
    match check(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILURE),
        Err(message) => {
            eprintln!("quorate: error: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn check(options: &Options<'_>) -> Result<bool, String> {
    let subdir = normalize_subdir(options.subdir).map_err(|e| e.to_string())?;
    let repo = Repository::open_from_env().map_err(|e| {
        format!(
            "not in a git repository ({}); install this as the pre-receive hook of a repository",
            e.message()
        )
    })?;
    let mut input = String::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read the hook's input: {e}"))?;
        input.push_str(&line);
        input.push('\n');
    }
    let updates = parse_updates(&input)?;
    let mut out = std::io::stdout().lock();
    let mut all_valid = true;
    for u in updates {
        let Some(branch) = u.reference.strip_prefix("refs/heads/") else {
            continue;
        };
        if !options.branches.is_empty() && !options.branches.iter().any(|b| b == branch) {
            continue;
        }
        let valid = check_tip(&repo, &u, subdir.as_deref(), options, &mut out)?;
        all_valid &= valid;
    }
    Ok(all_valid)
}

/// Parses `old new ref` lines; deletions (an all-zero new id) are left out.
fn parse_updates(input: &str) -> Result<Vec<Update>, String> {
    let mut updates = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_old, new, reference] = fields.as_slice() else {
            return Err(format!(
                "unexpected hook input line {line:?} (want `old new ref`)"
            ));
        };
        if !new.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("unexpected object id {new:?} in the hook's input"));
        }
        if new.bytes().all(|b| b == b'0') {
            continue;
        }
        updates.push(Update {
            new: (*new).to_owned(),
            reference: (*reference).to_owned(),
        });
    }
    Ok(updates)
}

fn check_tip(
    repo: &Repository,
    u: &Update,
    subdir: Option<&Path>,
    options: &Options<'_>,
    out: &mut dyn Write,
) -> Result<bool, String> {
    let strict = options.strict;
    let short = u.new.get(..12).unwrap_or(&u.new);
    let sources = read_commit(repo, &u.new, subdir)
        .map_err(|e| format!("{} at {short}: {e}", u.reference))?;
    let report = validate_with(&sources, options.secrets);
    let ctx = RenderContext {
        sources: &sources,
        redactions: report.index.redactions(),
        color: false,
    };
    let failed = report.errors() > 0 || (strict && report.warnings() > 0);
    let place = subdir.map_or_else(String::new, |d| format!(" in {}/", d.display()));
    let _ = writeln!(out, "quorate: checking {} at {short}{place}", u.reference);
    let _ = render(out, Format::Human, &report.diagnostics, &ctx);
    let (docs, files) = (report.index.len(), sources.len());
    let _ = if failed {
        writeln!(
            out,
            "quorate: {} at {short} is invalid: {} error(s), {} warning(s) in {docs} documents, \
             {files} files; push refused",
            u.reference,
            report.errors(),
            report.warnings()
        )
    } else {
        writeln!(
            out,
            "quorate: {} at {short} is valid: {docs} documents in {files} files",
            u.reference
        )
    };
    Ok(!failed)
}

/// The subdirectory argument as a path (for clap).
pub(crate) fn subdir_arg(s: &str) -> Result<PathBuf, String> {
    normalize_subdir(Some(Path::new(s)))
        .map(|d| d.unwrap_or_default())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lines_are_parsed_and_deletions_skipped() {
        let zero = "0".repeat(40);
        let a = "a".repeat(40);
        let input = format!("{zero} {a} refs/heads/main\n{a} {zero} refs/heads/old\n\n");
        let u = parse_updates(&input).unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(
            (u[0].new.as_str(), u[0].reference.as_str()),
            (a.as_str(), "refs/heads/main")
        );
        assert!(parse_updates("only two\n").is_err());
        assert!(parse_updates(&format!("{a} xyz refs/heads/main\n")).is_err());
    }
}
