//! Rendering plans: for people (grouped and counted like `terraform plan`), as JSON, and
//! as a Graphviz graph of the actions.

use std::fmt::Write;

use super::model::{Action, ActionType, Plan, QuorumStatus};
use crate::spec::cluster::NoQuorumPolicy;

/// Output formats of `quorate plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Grouped, counted, with reasons.
    Human,
    /// The plan as JSON (documented in docs/planning.md).
    Json,
    /// The action graph in Graphviz `dot`.
    Dot,
}

const GROUPS: [(ActionType, &str); 7] = [
    (ActionType::Fence, "!"),
    (ActionType::Stop, "-"),
    (ActionType::Start, "+"),
    (ActionType::Restart, "~"),
    (ActionType::Move, ">"),
    (ActionType::Promote, "^"),
    (ActionType::Demote, "v"),
];

/// Renders `plan` in `format`; `explain` adds the placement scores to human output.
pub fn render(plan: &Plan, format: Format, explain: bool) -> String {
    let mut out = Vec::new();
    // Writing to memory fails only where serializing does, and a plan always serializes.
    let _ = render_to(plan, format, explain, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`render`], written to `out` as it is made: the JSON of a large plan (tens of
/// megabytes at 100,000 instances) is never held whole in memory.
pub fn render_to(
    plan: &Plan,
    format: Format,
    explain: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Human => out.write_all(human(plan, explain).as_bytes()),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, plan)?;
            out.write_all(b"\n")
        }
        Format::Dot => out.write_all(dot(plan).as_bytes()),
    }
}

fn policy(p: NoQuorumPolicy) -> &'static str {
    match p {
        NoQuorumPolicy::Freeze => "freeze",
        NoQuorumPolicy::Stop => "stop",
        NoQuorumPolicy::Ignore => "ignore",
    }
}

/// The one-line summary: `3 to start, 1 to move, 1 blocked`.
pub fn summary(plan: &Plan) -> String {
    let mut parts: Vec<String> = GROUPS
        .iter()
        .filter_map(|(kind, _)| {
            let n = plan.actions.iter().filter(|a| a.kind == *kind).count();
            (n > 0).then(|| format!("{n} to {}", kind.as_str()))
        })
        .collect();
    if !plan.blocked.is_empty() {
        parts.push(format!("{} blocked", plan.blocked_instances()));
    }
    if !plan.suspended.is_empty() {
        let n: u64 = plan.suspended.iter().map(|u| u64::from(u.count)).sum();
        parts.push(format!("{n} suspended"));
    }
    if parts.is_empty() {
        "no changes".to_owned()
    } else {
        parts.join(", ")
    }
}

fn human(plan: &Plan, explain: bool) -> String {
    let mut out = String::new();
    human_quorum(&plan.quorum, &mut out);
    for (kind, mark) in GROUPS {
        let group: Vec<&Action> = plan.actions.iter().filter(|a| a.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{} ({}):", capitalised(kind.as_str()), group.len());
        for a in group {
            human_action(a, mark, &mut out);
        }
    }
    if !plan.blocked.is_empty() {
        let _ = writeln!(out, "\nBlocked ({}):", plan.blocked_instances());
        for b in &plan.blocked {
            let more = match b.count {
                0 | 1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            let _ = writeln!(out, "  # {}{more}\n      {}", b.instance, b.reason);
        }
    }
    human_suspended(plan, &mut out);
    if explain {
        human_scores(plan, &mut out);
        human_promotions(plan, &mut out);
    }
    let _ = writeln!(out, "\nPlan: {}.", summary(plan));
    out
}

/// The votes, and what the planner may do with them.
fn human_quorum(q: &QuorumStatus, out: &mut String) {
    let state = if q.quorate {
        "quorate".to_owned()
    } else if q.policy == NoQuorumPolicy::Ignore {
        "NOT quorate; acting anyway (noQuorumPolicy ignore)".to_owned()
    } else {
        format!(
            "NOT quorate: nothing is started, moved or fenced (noQuorumPolicy {})",
            policy(q.policy)
        )
    };
    let _ = writeln!(
        out,
        "Quorum: {} of {} votes, {state}",
        q.present, q.expected
    );
}

/// One step: what and where, its number and the steps it comes after, and why.
fn human_action(a: &Action, mark: &str, out: &mut String) {
    let what = match (a.kind, &a.instance, &a.node, &a.from) {
        (ActionType::Fence, _, Some(n), _) => format!("node {n}"),
        (ActionType::Move, Some(i), Some(to), Some(from)) => format!("{i}  {from} -> {to}"),
        (_, Some(i), Some(n), _) => format!("{i} on {n}"),
        _ => String::new(),
    };
    let after = if a.after.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = a.after.iter().map(ToString::to_string).collect();
        format!(", after {}", ids.join(" "))
    };
    let _ = writeln!(out, "  {mark} {what}  [{}{after}]", a.id);
    let _ = writeln!(out, "      {}", a.reason);
}

/// `--explain`: every placed instance's candidate nodes, with the parts of their scores.
fn human_scores(plan: &Plan, out: &mut String) {
    if plan.placements.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nPlacement scores:");
    for p in &plan.placements {
        let chosen = p
            .chosen
            .as_ref()
            .map_or("nowhere".to_owned(), ToString::to_string);
        let _ = writeln!(out, "  {} -> {chosen}", p.instance);
        for c in &p.candidates {
            let parts: Vec<String> = c
                .parts
                .iter()
                .map(|x| format!("[{}] {} {}", x.stage.as_str(), x.source, x.score))
                .collect();
            let detail = if parts.is_empty() {
                String::new()
            } else {
                format!("  ({})", parts.join("; "))
            };
            let _ = writeln!(out, "      {:>10}  {}{detail}", c.score.to_string(), c.node);
        }
    }
}

/// How each promotable bundle's primaries were chosen, best candidate first.
fn human_promotions(plan: &Plan, out: &mut String) {
    if plan.promotions.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nPromotion (role score, then promoted now, then preference, then placement score, then not passed over, then running, then restarted primary, then number):"
    );
    for p in &plan.promotions {
        let promoted = if p.promoted.is_empty() {
            "none".to_owned()
        } else {
            p.promoted.join(", ")
        };
        let _ = writeln!(out, "  {} -> {promoted}", p.bundle);
        for c in &p.candidates {
            let mut notes = vec![format!("role score {}", c.score)];
            if c.promoted_now {
                notes.push("promoted now".to_owned());
            }
            if let Some(pref) = c.preference {
                notes.push(format!("preference {pref}"));
            }
            if c.placement != crate::spec::Score::ZERO {
                notes.push(format!("placement score {}", c.placement));
            }
            if c.starting {
                notes.push("starts in this plan".to_owned());
            }
            let _ = writeln!(
                out,
                "      {} on {}  ({})",
                c.instance,
                c.node,
                notes.join("; ")
            );
        }
    }
}

/// The instances of suspended bundles: where each is observed, and why it is left alone.
fn human_suspended(plan: &Plan, out: &mut String) {
    if plan.suspended.is_empty() {
        return;
    }
    let n: u64 = plan.suspended.iter().map(|u| u64::from(u.count)).sum();
    let _ = writeln!(out, "\nSuspended, not managed ({n}):");
    for u in &plan.suspended {
        let on: Vec<String> = u.on.iter().map(|(n, s)| format!("{s} on {n}")).collect();
        let where_ = match (u.count, on.is_empty()) {
            (0 | 1, true) => " (runs nowhere)".to_owned(),
            (c, true) => format!(" and {} more (run nowhere)", c - 1),
            (_, false) => format!(" ({})", on.join(", ")),
        };
        let _ = writeln!(out, "  = {}{where_}\n      {}", u.instance, u.reason);
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

fn dot(plan: &Plan) -> String {
    let mut out = String::from(
        "digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for a in &plan.actions {
        let target = match (&a.instance, &a.node, &a.from) {
            (Some(i), Some(to), Some(from)) => format!("{i}\\n{from} -> {to}"),
            (Some(i), Some(n), None) => format!("{i}\\non {n}"),
            (None, Some(n), _) => n.to_string(),
            _ => String::new(),
        };
        let style = match a.kind {
            ActionType::Fence => ", style=filled, fillcolor=\"#f4cccc\"",
            ActionType::Stop => ", style=filled, fillcolor=\"#eeeeee\"",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {} [label=\"{} {}\\n{target}\"{style}];",
            a.id,
            a.id,
            a.kind.as_str()
        );
        for d in &a.after {
            let _ = writeln!(out, "  {d} -> {};", a.id);
        }
    }
    out.push_str("}\n");
    out
}
