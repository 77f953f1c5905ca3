//! Progress of long operations as it happens: each step of `quorate apply` and each fence
//! try is printed as a line when it ends. On a terminal (stdout and stderr both) an
//! indicatif spinner on stderr says what is under way meanwhile; otherwise the lines are
//! plain stdout, so a log or a pipe reads the same.

use std::io::IsTerminal;
use std::time::Duration;

use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressStyle};

use crate::fence::log::{
    FenceAttempt, FenceOutcome, HistoryEntry, ManualConfirmation, OffEvidence,
};
use crate::fence::{FenceLog, FenceLogError};

/// Lines as things end, with a spinner on a terminal.
pub(crate) struct Progress {
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// A spinner when both stdout and stderr are terminals; plain lines otherwise.
    pub(crate) fn new() -> Progress {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let spinner = terminal.then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { spinner }
    }

    /// Prints one finished thing (above the spinner on a terminal).
    pub(crate) fn line(&self, text: &str) {
        match &self.spinner {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    /// Says what is under way now (only a spinner shows it).
    pub(crate) fn doing(&self, what: &str) {
        if let Some(bar) = &self.spinner {
            bar.set_message(what.to_string());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

/// A fence log that also prints each try and the outcome as they are recorded.
pub(crate) struct FenceProgress<'a> {
    /// Where the records go.
    pub(crate) log: &'a dyn FenceLog,
    /// Where the lines go.
    pub(crate) progress: &'a Progress,
}

#[async_trait]
impl FenceLog for FenceProgress<'_> {
    async fn record_attempt(&self, attempt: &FenceAttempt) -> Result<(), FenceLogError> {
        self.progress.line(&format!("  {attempt}"));
        self.progress
            .doing(&format!("fencing {}: next try", attempt.node));
        self.log.record_attempt(attempt).await
    }

    async fn record_outcome(&self, outcome: &FenceOutcome) -> Result<(), FenceLogError> {
        self.log.record_outcome(outcome).await
    }

    async fn record_manual(&self, confirmation: &ManualConfirmation) -> Result<(), FenceLogError> {
        self.log.record_manual(confirmation).await
    }

    async fn history(&self, node: Option<&str>) -> Result<Vec<HistoryEntry>, FenceLogError> {
        self.log.history(node).await
    }

    async fn off_evidence(&self, node: &str) -> Result<Option<OffEvidence>, FenceLogError> {
        self.log.off_evidence(node).await
    }
}
