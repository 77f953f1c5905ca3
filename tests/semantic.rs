//! The meaning layer: every kind of semantic finding, located to the line and column.
//!
//! Each case starts from a valid three-node spec set, adds or replaces documents, and
//! checks the exact diagnostics. Expected positions are computed from the fixture text
//! (the place of a marker string), never written down by hand.

use quorate::diag::Severity;
use quorate::source::Sources;
use quorate::validate::{Report, validate};

const CLUSTER: &str = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  nodes:
    - {name: n1, runtime: "podman+unix:///run/n1.sock"}
    - {name: n2, runtime: "podman+unix:///run/n2.sock"}
    - {name: n3, runtime: "podman+unix:///run/n3.sock"}
  networks:
    - {name: net, subnet: 10.1.0.0/24}
"#;

const FENCES: &str = r#"apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f1}
spec:
  targets: [n1, n2, n3]
  ipmi: {address: 127.0.0.1, username: admin, password: {fromEnv: PW}}
"#;

const WEB: &str = r#"apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: web}
spec:
  image: busybox
  replicas: 2
"#;

/// One finding: code, file index, and the marker whose first occurrence (after
/// `after`, if given) the finding must point at.
struct Expect {
    code: &'static str,
    file: usize,
    marker: Option<(&'static str, &'static str)>,
}

fn at(code: &'static str, file: usize, after: &'static str, marker: &'static str) -> Expect {
    Expect {
        code,
        file,
        marker: Some((after, marker)),
    }
}

fn nowhere(code: &'static str) -> Expect {
    Expect {
        code,
        file: 0,
        marker: None,
    }
}

/// 1-based line and column of `marker`'s first occurrence after `after`.
fn position(text: &str, after: &str, marker: &str) -> (u32, u32) {
    let start = text
        .find(after)
        .unwrap_or_else(|| panic!("no `{after}` in fixture"))
        + after.len();
    let offset = start
        + text[start..]
            .find(marker)
            .unwrap_or_else(|| panic!("no `{marker}` after `{after}`"));
    let line = text[..offset].matches('\n').count() + 1;
    let col = text[..offset].rsplit('\n').next().unwrap().chars().count() + 1;
    (line as u32, col as u32)
}

/// The report on `files`, named `f0.yaml`, `f1.yaml`, … in turn.
fn validated(files: &[&str]) -> Report {
    let mut sources = Sources::new();
    for (i, f) in files.iter().enumerate() {
        sources.add(format!("f{i}.yaml"), f.as_bytes().to_vec());
    }
    validate(&sources)
}

fn check(files: &[&str], expected: &[Expect]) {
    let report = validated(files);
    let got: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| {
            let loc = d
                .location
                .map(|l| (l.file.0 as usize, l.span.map(|s| (s.line, s.column))));
            (d.code, loc, d.message.clone())
        })
        .collect();
    for e in expected {
        let want = e
            .marker
            .map(|(after, m)| (e.file, Some(position(files[e.file], after, m))));
        assert!(
            got.iter().any(|(c, loc, _)| *c == e.code && *loc == want),
            "expected {} at {:?}; got {:#?}",
            e.code,
            want,
            got
        );
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "unexpected extra findings: {got:#?}"
    );
    let has_error = expected.iter().any(|e| {
        !e.code.starts_with("quorate::safety")
            && !e.code.contains("insecure")
            && e.code != "quorate::secret::inline-env"
    });
    assert_eq!(
        report.valid_set().is_none(),
        has_error || report.errors() > 0
    );
}

#[test]
fn the_base_set_is_valid() {
    check(&[CLUSTER, FENCES, WEB], &[]);
}

#[test]
fn unknown_references_point_at_the_name() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: c1}
spec:
  colocation: {bundle: web, with: dbb, score: 10}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: c2}
spec:
  location: {bundle: web, node: n9, score: 10}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f2}
spec:
  targets: [n4]
  ipmi: {address: 127.0.0.1, username: admin, password: {fromEnv: PW}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: app}
spec:
  image: busybox
  network: {name: nett, ipRangeStart: 10.1.0.5}
"#;
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[
            at("quorate::ref::unknown-bundle", 3, "with: ", "dbb"),
            at("quorate::ref::unknown-node", 3, "node: ", "n9"),
            at("quorate::ref::unknown-node", 3, "targets: [", "n4"),
            at("quorate::ref::unknown-network", 3, "name: ", "nett"),
        ],
    );
}

#[test]
fn order_cycles_are_found() {
    let order = |name: &str, first: &str, then: &str| {
        format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: {name}}}\nspec:\n  order: {{first: {first}, then: {then}}}\n---\n"
        )
    };
    let bundles = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: a}\nspec: {image: x}\n---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: b}\nspec: {image: x}\n---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: c}\nspec: {image: x}\n";
    let text = [
        order("o1", "a", "b"),
        order("o2", "b", "c"),
        order("o3", "c", "a"),
        order("o4", "web", "a"),
    ]
    .concat();
    check(
        &[CLUSTER, FENCES, WEB, bundles, &text],
        &[at("quorate::order::cycle", 4, "first: c, then: ", "a")],
    );
}

#[test]
fn bundles_that_hard_constraints_make_unplaceable() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: db}
spec:
  image: postgres
  replicas: 1
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: app}
spec:
  image: app
  replicas: 1
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: many}
spec:
  image: app
  replicas: 4
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: app-with-db}
spec:
  colocation: {bundle: app, with: db, score: INFINITY}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: no-db-n1}
spec:
  location: {bundle: db, node: n1, score: -INFINITY}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: no-db-in-racks}
spec:
  location:
    bundle: db
    rule: {attribute: rack, operator: notExists}
    score: -INFINITY
"#;
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[
            at(
                "quorate::placement::unplaceable",
                3,
                "name: db}\nspec:\n  image: postgres\n  replicas: ",
                "1",
            ),
            at(
                "quorate::placement::unplaceable",
                3,
                "name: app}\nspec:\n  image: app\n  replicas: ",
                "1",
            ),
            at(
                "quorate::placement::unplaceable",
                3,
                "name: many}\nspec:\n  image: app\n  replicas: ",
                "4",
            ),
        ],
    );
}

#[test]
fn colocation_cycles_that_cannot_share_a_node_are_refused_with_the_cycle() {
    let pair = |a_replicas: u32, bans: &str| {
        format!(
            r#"apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {{name: a}}
spec:
  image: a
  replicas: {a_replicas}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {{name: b}}
spec:
  image: b
  replicas: 1
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {{name: a-with-b}}
spec:
  colocation: {{bundle: a, with: b, score: INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {{name: b-with-a}}
spec:
  colocation: {{bundle: b, with: a, score: INFINITY}}
{bans}"#
        )
    };
    // a may only run on n1, b never there: the pair shares no node, both are refused.
    let bans = r#"---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: a-on-n1}
spec:
  location: {bundle: a, rule: {attribute: rack, operator: notExists}, score: -INFINITY}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: b-not-n1}
spec:
  location: {bundle: b, node: n1, score: -INFINITY}
"#;
    let cluster = CLUSTER.replace(
        "- {name: n1, runtime: \"podman+unix:///run/n1.sock\"}",
        "- {name: n1, runtime: \"podman+unix:///run/n1.sock\", attributes: {rack: r1}}",
    );
    let doc = pair(1, bans);
    check(
        &[&cluster, FENCES, WEB, &doc],
        &[
            at(
                "quorate::placement::unplaceable",
                3,
                "name: a}\nspec:\n  image: a\n  replicas: ",
                "1",
            ),
            at(
                "quorate::placement::unplaceable",
                3,
                "name: b}\nspec:\n  image: b\n  replicas: ",
                "1",
            ),
        ],
    );
    // Two of a but one of b: a node needs one of each, so a-1 never has a place.
    let doc = pair(2, "");
    check(
        &[CLUSTER, FENCES, WEB, &doc],
        &[at(
            "quorate::placement::unplaceable",
            3,
            "name: a}\nspec:\n  image: a\n  replicas: ",
            "2",
        )],
    );
    // The reason names the cycle and what limits it.
    let report = validated(&[CLUSTER, FENCES, WEB, &doc]);
    let messages: Vec<&str> = report
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "bundle `a` cannot place its 2 replica(s): hard constraints leave room for 1 (the INFINITY colocation cycle a → b → a runs its members on the same nodes: at most 1, as `b` has 1 instance(s), × replicasPerHost 1)"
        ]
    );
}

#[test]
fn overlapping_and_misplaced_address_ranges() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: a}
spec:
  image: x
  replicas: 3
  network: {name: net, ipRangeStart: 10.1.0.10}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b}
spec:
  image: x
  network: {name: net, ipRangeStart: 10.1.0.12}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: c}
spec:
  image: x
  network: {name: net, ipRangeStart: 10.2.0.1}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: d}
spec:
  image: x
  network: {name: net, ipRangeStart: 10.1.0.11}
"#;
    // `b` and `d` each overlap `a` (and each other), and each is reported once.
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[
            at(
                "quorate::network::ip-overlap",
                3,
                "ipRangeStart: ",
                "10.1.0.12",
            ),
            at(
                "quorate::network::ip-range",
                3,
                "ipRangeStart: ",
                "10.2.0.1",
            ),
            at(
                "quorate::network::ip-overlap",
                3,
                "ipRangeStart: ",
                "10.1.0.11",
            ),
        ],
    );
}

/// A bundle document named `name` whose address range starts where every other one of
/// these does (10.1.0.10 on `net`).
fn on_one_address(name: &str) -> String {
    format!(
        "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec: {{image: x, network: {{name: net, ipRangeStart: 10.1.0.10}}}}\n"
    )
}

/// Two thousand bundles on one address overlap two million ways: each is reported once
/// (not once per pair), and past `MAX_FINDINGS` the others are counted in one finding.
/// Before, validating this set wrote gigabytes of findings.
#[test]
fn thousands_of_bundles_on_one_address_make_a_bounded_list() {
    let mut doc = String::new();
    for i in 0..2_000 {
        doc.push_str(&on_one_address(&format!("b{i:04}")));
    }
    let report = validated(&[CLUSTER, FENCES, WEB, &doc]);
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
    let overlaps = codes
        .iter()
        .filter(|c| **c == "quorate::network::ip-overlap");
    assert_eq!(overlaps.count(), quorate::validate::MAX_FINDINGS);
    let summary: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.code == "quorate::limit::findings")
        .collect();
    assert_eq!(summary.len(), 1, "{codes:?}");
    assert_eq!(summary[0].severity, Severity::Error);
    assert!(
        summary[0]
            .message
            .starts_with("999 more finding(s) not listed: 999 error(s)"),
        "{}",
        summary[0].message
    );
    // The counts take in the findings not listed, and not the one that counts them.
    assert_eq!((report.errors(), report.warnings()), (1_999, 0));
}

/// Past `MAX_FINDINGS` the findings of the later checks are counted, not listed: every
/// finding of the references (checked first) is listed before those of the networks.
#[test]
fn findings_past_the_limit_are_those_of_the_later_checks() {
    let mut doc = String::new();
    for i in 0..600 {
        doc.push_str(&on_one_address(&format!("b{i:03}")));
        doc.push_str(&format!(
            "---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: c{i:03}}}\nspec: {{colocation: {{bundle: b{i:03}, with: gone{i}, score: 10}}}}\n"
        ));
    }
    let report = validated(&[CLUSTER, FENCES, WEB, &doc]);
    let count = |code: &str| report.diagnostics.iter().filter(|d| d.code == code).count();
    assert_eq!(count("quorate::ref::unknown-bundle"), 600);
    assert_eq!(
        count("quorate::network::ip-overlap"),
        quorate::validate::MAX_FINDINGS - 600
    );
    assert_eq!(count("quorate::limit::findings"), 1);
    // 599 overlaps in all, 199 of them counted only.
    assert_eq!((report.errors(), report.warnings()), (1_199, 0));
}

#[test]
fn insecure_fencing_and_inline_secrets() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f2}
spec:
  targets: [n1]
  level: 2
  ipmi: {address: bmc, username: admin, password: hunter2, cipherSuite: 0}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f3}
spec:
  targets: [n2]
  level: 2
  ipmi: {address: bmc, username: admin, password: {fromEnv: X}, interface: lan, authType: straight}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f4}
spec:
  targets: [n3]
  level: 2
  ipmi: {address: bmc, username: admin, password: {fromEnv: X}, cipherSuite: 0, allowInsecure: true}
"#;
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[
            at("quorate::secret::inline", 3, "password: ", "hunter2"),
            at("quorate::fence::insecure", 3, "cipherSuite: ", "0"),
            // Cipher suite 0 is also beyond what the IPMI library can do.
            at(
                "quorate::fence::unsupported-cipher-suite",
                3,
                "cipherSuite: ",
                "0",
            ),
            at("quorate::fence::insecure", 3, "authType: ", "straight"),
            at("quorate::fence::insecure", 3, F4_SUITE, "0"),
            at("quorate::fence::unsupported-cipher-suite", 3, F4_SUITE, "0"),
        ],
    );
}

const F4_SUITE: &str = "f4}\nspec:\n  targets: [n3]\n  level: 2\n  ipmi: {address: bmc, username: admin, password: {fromEnv: X}, cipherSuite: ";

#[test]
fn what_the_ipmi_library_cannot_do() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f5}
spec:
  targets: [n1]
  level: 2
  ipmi: {address: bmc, username: admin, password: {fromEnv: X}, cipherSuite: 17}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f6}
spec:
  targets: [n2]
  level: 2
  ipmi: {address: bmc, username: admin, password: {fromEnv: X}, interface: lan, authType: md5}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f7}
spec:
  targets: [n3]
  level: 2
  ipmi: {address: bmc, username: admin, password: {fromEnv: X}, interface: lan, authType: md2, allowInsecure: true}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f8}
spec:
  targets: [n3]
  level: 3
  ipmi: {address: bmc, username: admin, password: {fromEnv: X}, cipherSuite: 3}
"#;
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[
            at(
                "quorate::fence::unsupported-cipher-suite",
                3,
                "cipherSuite: ",
                "17",
            ),
            at(
                "quorate::fence::unsupported-auth-type",
                3,
                "authType: ",
                "md5",
            ),
            at(
                "quorate::fence::unsupported-auth-type",
                3,
                "authType: ",
                "md2",
            ),
        ],
    );
}

#[test]
fn duplicate_and_missing_clusters_and_names() {
    check(
        &[CLUSTER, FENCES, WEB, WEB],
        &[at("quorate::set::duplicate-name", 3, "name: ", "web")],
    );
    let second = CLUSTER.replace("name: lab", "name: lab2");
    check(
        &[CLUSTER, &second],
        &[at("quorate::set::multiple-clusters", 1, "name: ", "lab2")],
    );
    check(&[FENCES, WEB], &[nowhere("quorate::set::no-cluster")]);
}

#[test]
fn shape_rules_beyond_types() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: app}
spec:
  image: x
  network:
    ports:
      - {port: 80, range: 81-82}
  storage:
    - {targetDir: /data}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: self}
spec:
  colocation: {bundle: app, with: app, score: 5}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: both}
spec:
  location: {bundle: app, node: n1, rule: {attribute: a, operator: exists}, score: 5}
"#;
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[
            at(
                "quorate::network::port-mapping",
                3,
                "ports:\n      - ",
                "{port",
            ),
            at("quorate::storage::source", 3, "storage:\n    - ", "{target"),
            at("quorate::constraint::self", 3, "with: ", "app"),
            at(
                "quorate::constraint::target",
                3,
                "\n  location: ",
                "{bundle",
            ),
        ],
    );
}

#[test]
fn unauthenticated_runtime_endpoints() {
    let cluster = CLUSTER.replace("podman+unix:///run/n3.sock", "podman+tcp://10.0.0.3:8080");
    check(
        &[&cluster, FENCES, WEB],
        &[at(
            "quorate::runtime::unauthenticated",
            0,
            "n3, runtime: ",
            "\"podman+tcp",
        )],
    );
    let insecure = cluster.replace("8080\"}", "8080\", insecure: true}");
    check(
        &[&insecure, FENCES, WEB],
        &[at("quorate::runtime::insecure", 0, "insecure: ", "true")],
    );
}

#[test]
fn high_availability_warnings() {
    let cluster = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: pair}
spec:
  nodes:
    - {name: n1, runtime: "podman+unix:///run/n1.sock"}
    - {name: n2, runtime: "podman+unix:///run/n2.sock"}
  quorum: {noQuorumPolicy: ignore}
  fencing: {enabled: false}
"#;
    let db = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: db}\nspec: {image: pg, recovery: fence}\n";
    check(
        &[cluster, db],
        &[
            at(
                "quorate::safety::no-quorum-ignore",
                0,
                "noQuorumPolicy: ",
                "ignore",
            ),
            at("quorate::safety::two-node-tie", 0, "quorum: ", "{"),
            at("quorate::safety::fencing-disabled", 0, "enabled: ", "false"),
        ],
    );
    let fenced = cluster.replace("  fencing: {enabled: false}\n", "");
    let one_fence = FENCES.replace("[n1, n2, n3]", "[n1]");
    check(
        &[&fenced, db, &one_fence],
        &[
            at(
                "quorate::safety::no-quorum-ignore",
                0,
                "noQuorumPolicy: ",
                "ignore",
            ),
            at("quorate::safety::two-node-tie", 0, "quorum: ", "{"),
            at("quorate::safety::node-unfenced", 0, "name: ", "n2"),
        ],
    );
}

#[test]
fn warnings_are_not_errors() {
    let mut sources = Sources::new();
    let cluster = CLUSTER.replace(
        "podman+unix:///run/n3.sock\"}",
        "podman+tcp://10.0.0.3:8080\", insecure: true}",
    );
    sources.add("c.yaml", cluster.into_bytes());
    sources.add("f.yaml", FENCES.as_bytes().to_vec());
    let report = validate(&sources);
    assert_eq!(report.errors(), 0);
    assert_eq!(report.warnings(), 1);
    assert!(
        report
            .diagnostics
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
    assert!(report.valid_set().is_some());
}

/// Reconciler votes that alone make quorum: cut off from every node, the reconciler
/// would still be quorate and fence them all. Quorum is present × 2 > expected.
#[test]
fn reconciler_votes_that_alone_make_quorum() {
    let pair = |quorum: &str| {
        format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {{name: pair}}\nspec:\n  nodes:\n    - {{name: n1, runtime: \"podman+unix:///run/n1.sock\"}}\n    - {{name: n2, runtime: \"podman+unix:///run/n2.sock\"}}\n  quorum: {quorum}\n"
        )
    };
    let fence = FENCES.replace("[n1, n2, n3]", "[n1, n2]");
    let majority = |text: &str| {
        let mut sources = Sources::new();
        sources.add("c.yaml", text.as_bytes().to_vec());
        sources.add("f.yaml", fence.as_bytes().to_vec());
        let report = validate(&sources);
        let found: Vec<_> = report
            .diagnostics
            .iter()
            .filter(|d| d.code == "quorate::quorum::reconciler-majority")
            .cloned()
            .collect();
        (found, report.valid_set().is_some())
    };
    // Derived expected votes: 1 + 1 + 5 = 7, and 5 × 2 > 7.
    let five = pair("{reconcilerVotes: 5}");
    check(
        &[&five, &fence],
        &[at(
            "quorate::quorum::reconciler-majority",
            0,
            "reconcilerVotes: ",
            "5",
        )],
    );
    let (found, valid) = majority(&five);
    assert!(!valid);
    assert_eq!(found[0].severity, Severity::Error);
    assert!(found[0].message.contains("fence every node"), "{found:?}");
    let help = found[0].help.as_deref().unwrap_or_default();
    assert!(help.contains("reconcilerVotes to at most 2"), "{help}");
    // Just at the limit: 2 of 4 is not more than half.
    assert_eq!(majority(&pair("{reconcilerVotes: 2}")), (vec![], true));
    // The tie-breaker of a pair, and no reconciler vote (warned about, not this error).
    assert_eq!(majority(&pair("{reconcilerVotes: 1}")), (vec![], true));
    assert!(majority(&pair("{reconcilerVotes: 0}")).0.is_empty());
    // An explicit expectedVotes high enough makes it safe: 5 × 2 ≤ 10, and the nodes
    // and the reconciler together (7) can still make quorum.
    assert_eq!(
        majority(&pair("{reconcilerVotes: 5, expectedVotes: 10}")),
        (vec![], true)
    );
    let (found, valid) = majority(&pair("{reconcilerVotes: 5, expectedVotes: 9}"));
    assert!(!valid);
    let help = found[0].help.as_deref().unwrap_or_default();
    assert!(help.contains("expectedVotes to at least 10"), "{help}");
    // 3 × 2 > 5: a smaller majority is refused too.
    assert!(!majority(&pair("{reconcilerVotes: 3}")).1);
}

#[test]
fn subnets_with_host_bits_are_refused() {
    let cluster = CLUSTER.replace("subnet: 10.1.0.0/24", "subnet: 10.1.0.5/24");
    check(
        &[&cluster, FENCES, WEB],
        &[at(
            "quorate::network::subnet-host-bits",
            0,
            "subnet: ",
            "10.1.0.5/24",
        )],
    );
    let mut sources = Sources::new();
    sources.add("c.yaml", cluster.into_bytes());
    let report = validate(&sources);
    let d = report
        .diagnostics
        .iter()
        .find(|d| d.code == "quorate::network::subnet-host-bits")
        .unwrap();
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(
        d.help.as_deref(),
        Some("write the network address: `subnet: 10.1.0.0/24`")
    );
    // A /32 is one address, and its own network.
    let host = CLUSTER.replace("subnet: 10.1.0.0/24", "subnet: 10.1.0.5/32");
    check(&[&host, FENCES, WEB], &[]);
}

#[test]
fn inline_values_of_secret_looking_variables_are_warned_about() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: db}
spec:
  image: postgres
  env:
    POSTGRES_DB: shop
    POSTGRES_PASSWORD: s3cr3t-pw
    api_token: 12345
    SIGNING_KEY: {fromEnv: SIGNING_KEY}
    CLIENT_SECRET: {fromFile: /etc/quorate/secrets/client}
"#;
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[
            at(
                "quorate::secret::inline-env",
                3,
                "POSTGRES_PASSWORD: ",
                "s3cr3t-pw",
            ),
            at("quorate::secret::inline-env", 3, "api_token: ", "12345"),
        ],
    );
    let mut sources = Sources::new();
    sources.add("b.yaml", doc.as_bytes().to_vec());
    let report = validate(&sources);
    let found: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.code == "quorate::secret::inline-env")
        .collect();
    assert_eq!(found.len(), 2);
    for d in found {
        assert_eq!(d.severity, Severity::Warning);
        let help = d.help.as_deref().unwrap_or_default();
        assert!(
            help.contains("fromFile:") && help.contains("fromEnv:"),
            "{help}"
        );
        let all = format!("{} {help}", d.message);
        assert!(!all.contains("s3cr3t") && !all.contains("12345"), "{all}");
    }
    // Both values are registered as secret, so no snippet shows them.
    let masked = report.index.redactions();
    let values: Vec<&str> = masked
        .iter()
        .map(|(_, s)| &doc[s.offset..s.offset + s.len])
        .collect();
    assert_eq!(values, vec!["s3cr3t-pw", "12345"]);
}

#[test]
fn min_instances_of_an_order_must_be_reachable() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: db}
spec: {image: pg, replicas: 2}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: too-many}
spec:
  order: {first: db, then: web, minInstances: 3}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: zero}
spec:
  order: {first: db, then: web, minInstances: 0}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: optional}
spec:
  order: {first: db, then: web, kind: optional, minInstances: 1}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: fine}
spec:
  order: {first: db, then: web, minInstances: 2}
"#;
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[
            at("quorate::order::min-instances", 3, "too-many", "3"),
            at("quorate::order::min-instances", 3, "{name: zero", "0"),
            at(
                "quorate::order::min-instances",
                3,
                "kind: optional, minInstances: ",
                "1",
            ),
        ],
    );
}

#[test]
fn a_serialize_order_counts_in_order_cycles() {
    let doc = r#"apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: db}
spec: {image: pg}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: one-at-a-time}
spec:
  order: {first: db, then: web, kind: serialize}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: back}
spec:
  order: {first: web, then: db}
"#;
    check(
        &[CLUSTER, FENCES, WEB, doc],
        &[at("quorate::order::cycle", 3, "first: web, then: ", "db")],
    );
}
