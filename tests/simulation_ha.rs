//! HA in the deterministic simulation (design invariant 9): two reconcilers, a lease in
//! virtual time, the old leader paused before a step or its step delayed in flight. With
//! the rule in force nothing runs twice and the cluster converges; without the new
//! leader's wait, or without the lease check, `db-0` runs on two nodes.
//!
//! A failure prints the trace.

use quorate::sim::{HaBite, HaConfig, Outcome, Scenario, run_ha};

fn run(scenario: Scenario, bite: Option<HaBite>) -> Outcome {
    run_ha(HaConfig {
        seed: 7,
        scenario,
        bite,
    })
}

fn trace(o: &Outcome) -> String {
    o.trace.join("\n")
}

#[test]
fn a_leader_paused_before_its_step_is_stopped_by_the_lease_check() {
    let o = run(Scenario::PauseBeforeStep, None);
    assert!(o.violations.is_empty(), "{:?}\n{}", o.violations, trace(&o));
    let t = trace(&o);
    assert!(t.contains("replica 1 elected"), "{t}");
    assert!(
        t.contains("script: cut"),
        "the scripted fault happened: {t}"
    );
    // The old leader woke after the node came back and was refused, then followed.
    let back = t.find("powered on").expect("the node came back");
    assert!(!t[back..].contains("start db-0"), "{t}");
    assert!(t[back..].contains("replica 0 no longer leads"), "{t}");
}

#[test]
fn a_step_in_flight_lands_before_the_new_leader_acts() {
    let o = run(Scenario::DelayInFlight, None);
    assert!(o.violations.is_empty(), "{:?}\n{}", o.violations, trace(&o));
    assert!(trace(&o).contains("replica 1 elected"), "{}", trace(&o));
}

#[test]
fn bite_without_the_lease_check_the_woken_leader_starts_a_second_copy() {
    let o = run(Scenario::PauseBeforeStep, Some(HaBite::NoLeaseCheck));
    assert!(
        o.violations.iter().any(|v| v.contains("invariant 1")),
        "the simulation did not catch it: {:?}\n{}",
        o.violations,
        trace(&o)
    );
}

#[test]
fn bite_without_the_takeover_wait_the_new_leader_starts_a_second_copy() {
    let o = run(Scenario::DelayInFlight, Some(HaBite::NoTakeoverWait));
    assert!(
        o.violations.iter().any(|v| v.contains("invariant 1")),
        "the simulation did not catch it: {:?}\n{}",
        o.violations,
        trace(&o)
    );
}

#[test]
#[ignore = "prints the traces; run with --ignored --nocapture"]
fn print_traces() {
    for s in [Scenario::PauseBeforeStep, Scenario::DelayInFlight] {
        for b in [
            None,
            Some(HaBite::NoLeaseCheck),
            Some(HaBite::NoTakeoverWait),
        ] {
            println!("== {s:?} {b:?}\n{}", trace(&run(s, b)));
        }
    }
}
