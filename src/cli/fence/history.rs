//! `quorate fence history`: what the state store holds about fencing, for people and
//! scripts.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{EXIT_USAGE, StateDirArg};
use crate::fence::log::HistoryEntry;
use crate::fence::{format_unix_ms, ops};
use crate::state::{DB_FILE, StateStore};

/// Arguments of `quorate fence history`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    state: StateDirArg,
    /// Only this node.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// `--format` of `history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// One line per entry.
    Human,
    /// One JSON array of entries.
    Json,
}

/// Runs `quorate fence history`. Reading never creates a state directory: a missing
/// database is an error (exit 1), so a mistyped `--state-dir` does not read as "nothing
/// was ever fenced".
pub(super) fn run(args: &Args) -> ExitCode {
    let db = args.state.dir.join(DB_FILE);
    if !db.is_file() {
        eprintln!(
            "error: no state database at {} (nothing recorded there, or a wrong --state-dir)",
            db.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let store = match StateStore::open(&args.state.dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot use the state directory: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let rt = match crate::cli::cluster_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let history = match rt.block_on(ops::history(&store, args.node.as_deref())) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match args.format {
        Format::Human => print!("{history}"),
        Format::Json => {
            let list: Vec<Value> = history.0.iter().map(entry_json).collect();
            match serde_json::to_string_pretty(&list) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// One entry as JSON; `type` is `attempt`, `outcome` or `manual`.
pub(crate) fn entry_json(e: &HistoryEntry) -> Value {
    let at = e.at_unix_ms();
    let mut v = match e {
        HistoryEntry::Attempt(a) => json!({
            "type": "attempt",
            "action": a.action.as_str(),
            "device": a.device,
            "level": a.level,
            "try": a.try_number,
            "durationMs": ms(a.duration),
            "powerState": a.result.as_ref().ok().map(|s| s.to_string()),
            "errorKind": a.result.as_ref().err().map(|f| f.kind.clone()),
            "error": a.result.as_ref().err().map(|f| f.cause.clone()),
        }),
        HistoryEntry::Outcome(o) => json!({
            "type": "outcome",
            "action": o.action.as_str(),
            "durationMs": ms(o.duration),
            "succeeded": o.result.is_ok(),
            "level": o.result.as_ref().ok(),
            "error": o.result.as_ref().err(),
        }),
        HistoryEntry::Manual(m) => json!({
            "type": "manual",
            "by": m.by,
            "note": m.note,
        }),
    };
    if let Some(obj) = v.as_object_mut() {
        obj.insert("node".into(), e.node().into());
        obj.insert("at".into(), format_unix_ms(at).into());
        obj.insert("atUnixMs".into(), at.into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::FenceAction;
    use crate::fence::log::{FenceOutcome, ManualConfirmation};

    #[test]
    fn entries_carry_type_node_and_time() {
        let m = entry_json(&HistoryEntry::Manual(ManualConfirmation {
            node: "n1".into(),
            by: "alice".into(),
            at_unix_ms: 1_715_000_000_123,
            note: Some("unplugged".into()),
        }));
        assert_eq!(m["type"], "manual");
        assert_eq!(m["by"], "alice");
        assert_eq!(m["at"], "2024-05-06T12:53:20.123Z");
        let o = entry_json(&HistoryEntry::Outcome(FenceOutcome {
            node: "n2".into(),
            action: FenceAction::Off,
            started_unix_ms: 1000,
            duration: Duration::from_millis(250),
            result: Err("level 1 device bmc: timeout".into()),
        }));
        assert_eq!(o["node"], "n2");
        assert_eq!(o["atUnixMs"], 1250);
        assert_eq!(o["succeeded"], false);
        assert_eq!(o["level"], Value::Null);
        assert_eq!(o["durationMs"], 250.0);
        assert_eq!(ms(Duration::from_nanos(27_133_999)), 27.133);
    }
}
