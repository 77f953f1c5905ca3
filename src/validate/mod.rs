//! The meaning layer of validation: checks that need the whole spec set.
//!
//! Each submodule checks one concern and reports through [`Findings`], which locates
//! every finding in its document. [`validate`] runs all three layers on a set of sources.

mod capacity;
mod groups;
pub(crate) mod limits;
pub(crate) mod network;
mod placement;
mod refs;
mod safety;
mod secret_policy;

use crate::diag::{self, Diagnostic};
use crate::load::{self, Locator, SpecIndex};
use crate::secret::SecretPolicy;
use crate::source::Sources;
use crate::spec::expand::{self, Origin};
use crate::spec::{Kind, Name, SpecSet};
use std::collections::BTreeMap;

/// The outcome of validating a spec set.
#[derive(Debug)]
pub struct Report {
    set: SpecSet,
    cluster_ok: bool,
    /// Where every document came from.
    pub index: SpecIndex,
    /// Every finding, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The errors and warnings past [`MAX_FINDINGS`], counted in one finding.
    unlisted: (usize, usize),
}

impl Report {
    /// Number of errors, those not listed included.
    pub fn errors(&self) -> usize {
        self.listed(Diagnostic::is_error) + self.unlisted.0
    }

    /// Number of warnings, those not listed included.
    pub fn warnings(&self) -> usize {
        self.listed(|d| !d.is_error()) + self.unlisted.1
    }

    /// The findings listed that are `which`, the one that counts the others left out.
    fn listed(&self, which: impl Fn(&Diagnostic) -> bool) -> usize {
        let counted = |d: &&Diagnostic| d.code != UNLISTED && which(d);
        self.diagnostics.iter().filter(counted).count()
    }

    /// The set, when it has no errors: the only form the planner accepts (invariant 6:
    /// a spec set that does not validate is never applied).
    pub fn valid_set(&self) -> Option<&SpecSet> {
        (self.cluster_ok && self.errors() == 0).then_some(&self.set)
    }

    /// Takes the set out when it is valid.
    pub fn into_valid_set(self) -> Option<SpecSet> {
        (self.cluster_ok && self.errors() == 0).then_some(self.set)
    }
}

/// Runs the YAML, shape and meaning layers on `sources`, without the operator's secret
/// policy (secret references are then checked only at use).
pub fn validate(sources: &Sources) -> Report {
    validate_with(sources, None)
}

/// [`validate`], and with `secrets` every secret reference outside the operator's policy
/// is an error too.
pub fn validate_with(sources: &Sources, secrets: Option<&SecretPolicy>) -> Report {
    let started = std::time::Instant::now();
    let loaded = load::load(sources);
    tracing::debug!(took = ?started.elapsed(), "specs decoded");
    let started = std::time::Instant::now();
    let mut diagnostics = loaded.diagnostics;
    let mut f = Findings::new(Locator::new(&loaded.index, sources));
    let set = check_and_expand(loaded.set, loaded.cluster_ok, &mut f);
    tracing::debug!(took = ?started.elapsed(), "specs checked");
    if let Some(policy) = secrets {
        secret_policy::check(&set, policy, &mut f);
    }
    let unlisted = f.unlisted;
    diagnostics.append(&mut f.finish());
    diag::sort(&mut diagnostics);
    // Every finding, whatever it is about, loses the text of every inline secret.
    diag::mask::mask_findings(&mut diagnostics, sources, loaded.index.redactions());
    Report {
        set,
        cluster_ok: loaded.cluster_ok,
        index: loaded.index,
        diagnostics,
        unlisted,
    }
}

/// Runs the meaning layer on a loaded set, into `f`, and returns the set with its groups
/// and resource sets expanded into pairs ([`expand`]): the checks of placement and order
/// cycles run on the expanded set, as the planner reads it, and a finding about a
/// constraint made there points at the group or set it came from. Without a valid cluster
/// (`cluster_ok` false) only the checks that do not need the nodes run; a set over one of
/// the [`limits`] gets only those findings, as the other checks cost in proportion to what
/// it asks for.
fn check_and_expand(set: SpecSet, cluster_ok: bool, f: &mut Findings) -> SpecSet {
    if limits::check(&set, f) {
        return set;
    }
    refs::check(&set, cluster_ok, f);
    groups::check(&set, f);
    network::check(&set, f);
    safety::fences(&set, f);
    safety::env_secrets(&set, f);
    let expanded = expand::expand(set);
    f.origins = expanded.origins;
    let set = expanded.set;
    groups::contradictions(&set, f);
    if cluster_ok {
        placement::check(&set, f);
        safety::cluster(&set, f);
    }
    set
}

/// The most findings of the meaning layer listed for one spec set; the others are
/// counted in one last finding. A set written against itself (two thousand bundles on one
/// address) would otherwise make millions, each located and rendered.
pub const MAX_FINDINGS: usize = 1_000;

/// The code of the finding that counts those past [`MAX_FINDINGS`].
const UNLISTED: &str = "quorate::limit::findings";

/// Collects findings, locating each in its document.
pub(crate) struct Findings<'a> {
    locator: Locator<'a>,
    diags: Vec<Diagnostic>,
    /// Errors and warnings past [`MAX_FINDINGS`], counted only.
    unlisted: (usize, usize),
    /// Where each constraint made from a group or a resource set was written.
    origins: BTreeMap<Name, Origin>,
}

impl<'a> Findings<'a> {
    fn new(locator: Locator<'a>) -> Findings<'a> {
        Findings {
            locator,
            diags: Vec::new(),
            unlisted: (0, 0),
            origins: BTreeMap::new(),
        }
    }

    /// Whether a finding pushed now would be listed, not only counted: a finding that
    /// costs work to describe (a suggestion among thousands of names) is described only
    /// then.
    pub(crate) fn listing(&self) -> bool {
        self.diags.len() < MAX_FINDINGS
    }

    /// Whether [`MAX_FINDINGS`] are listed already; if so, `d` is counted.
    fn full(&mut self, d: &Diagnostic) -> bool {
        if self.diags.len() < MAX_FINDINGS {
            return false;
        }
        match d.is_error() {
            true => self.unlisted.0 += 1,
            false => self.unlisted.1 += 1,
        }
        true
    }

    /// The findings listed, and one that counts the others.
    fn finish(self) -> Vec<Diagnostic> {
        let mut diags = self.diags;
        let (errors, warnings) = self.unlisted;
        if errors + warnings > 0 {
            let message = format!(
                "{} more finding(s) not listed: {errors} error(s), {warnings} warning(s)",
                errors + warnings
            );
            let help =
                "fix the findings listed and validate again: this many often repeat one mistake";
            diags.push(
                match errors {
                    0 => Diagnostic::warning(UNLISTED, message),
                    _ => Diagnostic::error(UNLISTED, message),
                }
                .with_help(help),
            );
        }
        diags
    }

    /// Reports `d` at `path` of document `kind`/`name` (for a constraint made from a
    /// group or a set: where that group or set is written).
    pub(crate) fn push(&mut self, d: Diagnostic, kind: Kind, name: &str, path: &str) {
        if self.full(&d) {
            return;
        }
        let made = (kind == Kind::Constraint)
            .then(|| self.origins.get(name))
            .flatten();
        let (kind, name, path) = match made {
            Some(o) => (o.kind, o.name.as_str(), o.path.as_str()),
            None => (kind, name, path),
        };
        let d = match self.locator.locate(kind, name, path) {
            Some(l) => d.at(l),
            None => d,
        };
        self.diags.push(d);
    }

    /// Reports `d` at `path` of document `kind`/`name`, with a second place explained.
    pub(crate) fn push_related(
        &mut self,
        d: Diagnostic,
        here: (Kind, &str, &str),
        there: (Kind, &str, &str, &str),
    ) {
        if self.full(&d) {
            return;
        }
        let d = match self.locator.locate(there.0, there.1, there.2) {
            Some(l) => d.with_related(l, there.3),
            None => d,
        };
        self.push(d, here.0, here.1, here.2);
    }

    /// Whether a document was declared, even if its spec failed to load (so references to
    /// it are not reported twice).
    pub(crate) fn declared(&self, kind: Kind, name: &str) -> bool {
        self.locator.index().declared(kind, name)
    }

    /// Names declared for `kind`.
    pub(crate) fn names(&self, kind: Kind) -> Vec<&str> {
        self.locator.index().names(kind)
    }
}
