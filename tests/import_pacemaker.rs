//! `quorate import pacemaker`: every CIB of tests/data/cib imports to a set the validator
//! accepts, every element that does not map is reported at its line, hostile XML is
//! refused, and for the CIBs with a status section the plan of the imported set agrees
//! with `crm_simulate` on the same CIB (which nodes are fenced, where each instance ends).
//!
//! The CIBs are written for these tests (the configurations by hand; the status sections
//! of start, converged, failover and failcount by `crm_simulate` from them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quorate::observed::{InstanceState, NodeState, Observed};
use quorate::source::{FileId, Sources};
use quorate::spec::SpecSet;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cib")
        .join(name)
}

fn quorate(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .output()
        .expect("the quorate binary runs")
}

/// What one `quorate import pacemaker` run gave.
struct Imported {
    _dir: tempfile::TempDir,
    out: PathBuf,
    observed: PathBuf,
    code: Option<i32>,
    stdout: String,
    findings: Vec<Value>,
}

impl Imported {
    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }

    fn all_files(&self) -> String {
        [
            "cluster.yaml",
            "bundles.yaml",
            "fences.yaml",
            "constraints.yaml",
            "groups.yaml",
        ]
        .iter()
        .map(|f| self.file(f))
        .collect()
    }

    /// The error findings (something not carried over).
    fn errors(&self) -> Vec<&Value> {
        self.findings
            .iter()
            .filter(|f| f["severity"] == "error")
            .collect()
    }
}

fn import(cib: &Path) -> Imported {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("specs");
    let observed = dir.path().join("observed.json");
    let o = quorate(&[
        "import".as_ref(),
        "pacemaker".as_ref(),
        cib.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--observed".as_ref(),
        observed.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let findings = serde_json::from_str(&stdout).unwrap_or_default();
    Imported {
        _dir: dir,
        out,
        observed,
        code: o.status.code(),
        stdout: format!("{stdout}{}", String::from_utf8_lossy(&o.stderr)),
        findings,
    }
}

/// The imported set, read back by the project's own validator (which must accept it).
fn validated(imp: &Imported) -> SpecSet {
    let mut sources = Sources::new();
    for entry in std::fs::read_dir(&imp.out).unwrap() {
        let path = entry.unwrap().path();
        sources.add(path.display().to_string(), std::fs::read(&path).unwrap());
    }
    let report = quorate::validate::validate(&sources);
    let errors: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    assert!(
        errors.is_empty(),
        "the import does not validate: {errors:?}"
    );
    report
        .valid_set()
        .cloned()
        .expect("a valid set without errors")
}

fn snapshot(path: &Path) -> Observed {
    let bytes = std::fs::read(path).expect("the snapshot was written");
    quorate::observed::snapshot::parse(FileId(0), &bytes).expect("the snapshot parses")
}

/// The line of the first `id="ID"` in `file`.
/// The rule of the one location of `set` with `score`.
fn rule_scored(set: &SpecSet, score: i64) -> &quorate::spec::constraint::Rule {
    set.constraints
        .values()
        .find_map(|c| match c {
            quorate::spec::ConstraintSpec::Location(l) if l.score.value() == score => {
                l.rule.as_ref()
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no location with a rule scored {score}"))
}

fn line_of(file: &str, id: &str) -> u64 {
    let text = std::fs::read_to_string(data(file)).unwrap();
    let needle = format!("id=\"{id}\"");
    let at = text
        .find(&needle)
        .unwrap_or_else(|| panic!("{needle} in {file}"));
    1 + text[..at].matches('\n').count() as u64
}

#[test]
fn every_cib_imports_to_a_set_that_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(data("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let imp = import(&path);
        assert!(
            matches!(imp.code, Some(0 | 1)),
            "{}: {:?} {}",
            path.display(),
            imp.code,
            imp.stdout
        );
        let set = validated(&imp);
        assert!(!set.cluster.nodes.is_empty(), "{}", path.display());
        assert_eq!(
            imp.code == Some(1),
            !imp.errors().is_empty(),
            "{}: exit 1 exactly when something was left out",
            path.display()
        );
        // Every document names the CIB element it came from.
        for text in [imp.file("bundles.yaml"), imp.file("constraints.yaml")] {
            let docs = text.matches("\n---\n").count();
            let origins = text.matches("\n# from <").count();
            assert_eq!(docs, origins, "{}: {text}", path.display());
        }
        n += 1;
    }
    assert!(n >= 6, "only {n} CIBs");
}

#[test]
fn the_shop_cib_maps_completely() {
    let imp = import(&data("shop.xml"));
    assert_eq!(imp.code, Some(0), "{}", imp.stdout);
    let set = validated(&imp);
    assert_eq!(set.cluster_name.as_str(), "shop");
    let c = &set.cluster;
    let nodes: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nodes, ["node1", "node2", "node3"]);
    assert_eq!(
        c.nodes[0].attributes.get("ssd").map(String::as_str),
        Some("yes")
    );
    assert!(!c.nodes[2].standby);
    assert!(c.fencing.enabled);
    assert_eq!(c.fencing.timeout.get().as_secs(), 90);
    assert_eq!(
        format!("{:?}", c.quorum.no_quorum_policy),
        "Freeze",
        "no-quorum-policy"
    );
    assert_eq!(c.defaults.stickiness.value(), 100);
    assert_eq!(c.defaults.migration_threshold, 3);
    assert_eq!(c.defaults.failure_timeout.get().as_secs(), 600);
    assert_eq!(c.defaults.recheck_interval.get().as_secs(), 120);

    let db = &set.bundles["db"];
    assert_eq!(db.image, "docker.io/library/postgres:16");
    assert_eq!(db.replicas, 1);
    assert_eq!(db.priority, 10);
    let net = db.network.as_ref().expect("db has a network");
    assert_eq!(
        net.ip_range_start.map(|i| i.to_string()).as_deref(),
        Some("10.88.10.200")
    );
    assert_eq!(
        net.ports[0].port.map(|p| p.to_string()).as_deref(),
        Some("5432")
    );
    assert_eq!(db.storage[0].options.as_deref(), Some("rw,Z"));
    assert_eq!(db.monitor.interval.get().as_secs(), 5);
    assert_eq!(db.monitor.timeout.get().as_secs(), 3);
    assert_eq!(db.stop_timeout.get().as_secs(), 30);
    assert_eq!(format!("{:?}", db.recovery), "Fence");
    let web = &set.bundles["web"];
    assert_eq!((web.replicas, web.replicas_per_host), (2, 1));
    assert_eq!(format!("{:?}", web.recovery), "Restart", "requires=quorum");
    let internal = web.network.as_ref().and_then(|n| n.ports[0].internal_port);
    assert_eq!(internal.map(|p| p.to_string()).as_deref(), Some("80"));

    let f2 = &set.fences["bmc-node2"];
    assert_eq!(
        f2.targets.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["node2"]
    );
    assert_eq!(f2.ipmi.address, "10.0.1.12");
    assert_eq!(f2.ipmi.port.to_string(), "6230");
    assert_eq!(f2.ipmi.username, "admin");
    assert_eq!(format!("{:?}", f2.ipmi.privilege), "Operator");
    assert_eq!(set.fences["bmc-node1"].delay.get().as_secs(), 5);
    // The password is a reference named after the device, never the value.
    let fences = imp.file("fences.yaml");
    assert!(
        fences.contains("QUORATE_FENCE_BMC_NODE1_PASSWORD"),
        "{fences}"
    );
    for secret in ["s3cret-bmc-one", "s3cret-bmc-two", "s3cret-bmc-three"] {
        assert!(!imp.all_files().contains(secret));
        assert!(!imp.stdout.contains(secret));
    }

    let kinds: BTreeSet<&str> = set
        .constraints
        .values()
        .map(|c| match c {
            quorate::spec::ConstraintSpec::Location(_) => "location",
            quorate::spec::ConstraintSpec::Colocation(_) => "colocation",
            quorate::spec::ConstraintSpec::Order(_) => "order",
        })
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(
        imp.file("bundles.yaml")
            .contains("# from <bundle id=\"db\"> at line 69 of shop.xml")
    );
}

#[test]
fn sets_groups_clones_and_levels_map() {
    let imp = import(&data("sets.xml"));
    let set = validated(&imp);
    // A clone of a container primitive: one bundle, clone-max replicas.
    let agent = &set.bundles["agent"];
    assert_eq!((agent.replicas, agent.replicas_per_host), (3, 1));
    // A nested rule, its built-in attributes as node names, its version comparison typed.
    let nested = rule_scored(&set, 30);
    let kernel = |v: &str| BTreeMap::from([("kernel".to_owned(), v.to_owned())]);
    assert!(nested.matches_node("n1", &BTreeMap::new()));
    assert!(!nested.matches_node("n2", &BTreeMap::new()));
    assert!(nested.matches_node("n2", &kernel("5.12")));
    assert!(!nested.matches_node("n3", &kernel("5.9")));
    // Its clone-min: an order after it waits for that many instances.
    let after_agents = set
        .constraints
        .values()
        .find_map(|c| match c {
            quorate::spec::ConstraintSpec::Order(o)
                if o.first.as_str() == "agent" && o.then.as_str() == "worker" =>
            {
                Some(o)
            }
            _ => None,
        })
        .expect("the order after the agents");
    assert_eq!(after_agents.min_instances, Some(2));
    // A group: a Group of its members' bundles, in order, with no finding.
    let groups = imp.file("groups.yaml");
    assert!(groups.contains("kind: Group"), "{groups}");
    let members: Vec<&str> = set.groups["app"]
        .bundles
        .iter()
        .map(|b| b.as_str())
        .collect();
    assert_eq!(members, ["api", "worker"]);
    let group = line_of("sets.xml", "app");
    assert!(
        !imp.errors().iter().any(|f| f["line"] == group),
        "{}",
        imp.stdout
    );
    // An ordered set: its members in turn; two sets: every member of one before each of
    // the next.
    let orders: BTreeSet<(String, String)> = set
        .constraints
        .values()
        .filter_map(|c| match c {
            quorate::spec::ConstraintSpec::Order(o) => {
                Some((o.first.to_string(), o.then.to_string()))
            }
            _ => None,
        })
        .collect();
    for pair in [("db", "cache"), ("cache", "agent"), ("cache", "api")] {
        let pair = (pair.0.to_owned(), pair.1.to_owned());
        assert!(orders.contains(&pair), "{pair:?} in {orders:?}");
    }
    // The sets are written as sets; require-all=false lets agent start after either.
    let constraints = imp.file("constraints.yaml");
    assert!(constraints.contains("requireAll: false"), "{constraints}");
    let any = set.constraints.values().any(|c| {
        matches!(c, quorate::spec::ConstraintSpec::Order(o)
            if o.then.as_str() == "agent"
                && o.any_of.iter().map(|b| b.as_str()).collect::<Vec<_>>() == ["db", "cache"])
    });
    assert!(any, "{:?}", set.constraints);
    // fencing-topology: a device used at level 2 is a second document at level 2.
    let levels: BTreeMap<&str, u32> = set
        .fences
        .iter()
        .map(|(n, f)| (n.as_str(), f.level))
        .collect();
    assert_eq!(levels.get("bmc-n1"), Some(&1));
    assert_eq!(levels.get("spare"), Some(&1), "{levels:?}");
    assert_eq!(levels.get("spare-level2"), Some(&2), "{levels:?}");
    // A location rule on #uname becomes a location on each node it matches.
    let on_n2 = set.constraints.values().any(|c| {
        matches!(c, quorate::spec::ConstraintSpec::Location(l)
            if l.bundle.as_str() == "db" && l.node.as_ref().is_some_and(|n| n.as_str() == "n2") && l.score.is_neg_infinity())
    });
    assert!(on_n2, "{:?}", set.constraints);
}

#[test]
fn every_element_that_does_not_map_is_reported_at_its_line() {
    let imp = import(&data("unmapped.xml"));
    assert_eq!(imp.code, Some(1), "{}", imp.stdout);
    let set = validated(&imp);
    // A resource's own stickiness, threshold and failure timeout are the bundle's.
    let (agent, cache) = (&set.bundles["agent"], &set.bundles["cache"]);
    assert_eq!(agent.stickiness.map(|s| s.value()), Some(200));
    assert_eq!(agent.failure_timeout.map(|d| d.get().as_secs()), Some(300));
    assert_eq!(cache.migration_threshold, Some(1));
    assert_eq!((cache.stickiness, agent.migration_threshold), (None, None));
    // A compound rule with a finite score: one location with the rule tree, typed.
    let east_big = rule_scored(&set, 50);
    let parts: Vec<(&str, Option<quorate::spec::constraint::RuleType>)> = east_big
        .and
        .iter()
        .map(|r| (r.attribute.as_str(), r.value_type))
        .collect();
    assert_eq!(
        parts,
        [
            ("zone", None),
            ("cores", Some(quorate::spec::constraint::RuleType::Integer))
        ]
    );
    let ids = [
        "o-quorum",
        "o-symmetric",
        "o-strategy",
        "o-maintenance",
        "o-start-fatal",
        "o-node-health",
        "node-a-cpu",
        "node-c-maint",
        "edge1",
        "vip",
        "tmpl",
        "legacy-unordered",
        "app-api-opts",
        "pg-clone",
        "pg-password",
        "cache-managed",
        "cache-monitor-promoted",
        "fence-a-delay",
        "fence-a-cipher",
        "fence-pdu",
        "vip-on-a",
        "app-office-hours-date",
        "everything-on-a",
        "vip-then-app",
        "app-needs-ticket",
        "fl-c-2",
        "fl-rack",
        "web-tier",
        "mail",
    ];
    // A Serialize order carries over as a `serialize` order.
    assert!(
        imp.all_files().contains("kind: serialize"),
        "{}",
        imp.all_files()
    );
    let errors = imp.errors();
    let mut missing = Vec::new();
    for id in ids {
        let line = line_of("unmapped.xml", id);
        if !errors.iter().any(|f| f["line"] == line) {
            missing.push((id, line));
        }
    }
    assert!(
        missing.is_empty(),
        "not reported: {missing:?}\n{}",
        imp.stdout
    );
    // Each says what to do instead.
    assert!(
        errors
            .iter()
            .all(|f| f["help"].as_str().is_some_and(|h| !h.is_empty()))
    );
    // The secrets of the CIB are not shown, even in the snippets of findings.
    for secret in [
        "a-very-secret-word",
        "b-very-secret-word",
        "pg-inline-secret",
    ] {
        assert!(!imp.stdout.contains(secret), "{secret} shown");
        assert!(!imp.all_files().contains(secret), "{secret} written");
    }
    // What did map was still written.
    let set = validated(&imp);
    assert!(set.bundles.contains_key("app-api") && set.bundles.contains_key("agent"));
}

#[test]
fn hostile_xml_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE cib [<!ENTITY a \"aaaaaaaaaa\">\
<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>\n<cib>&c;</cib>\n";
    let huge = format!(
        "<cib>\n<configuration x=\"{}\"/></cib>\n",
        "y".repeat(1 << 20)
    );
    let deep = format!(
        "<cib>\n{}{}</cib>\n",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    );
    let cases = [
        ("bomb.xml", bomb.to_owned(), "DTD", 2),
        ("huge.xml", huge, "attribute `x`", 2),
        ("deep.xml", deep, "nest deeper", 2),
    ];
    for (name, text, what, line) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let started = std::time::Instant::now();
        let imp = import(&path);
        assert!(
            started.elapsed().as_secs() < 10,
            "{name} took {:?}",
            started.elapsed()
        );
        assert_eq!(imp.code, Some(1), "{name}: {}", imp.stdout);
        let f = imp.errors().first().cloned().cloned().unwrap_or_default();
        assert_eq!(f["code"], "quorate::import::xml", "{name}: {}", imp.stdout);
        assert!(
            f["message"].as_str().unwrap_or("").contains(what),
            "{name}: {f}"
        );
        assert_eq!(f["line"], line, "{name}: {f}");
        assert!(!imp.out.exists(), "{name}: nothing is written");
    }
}

// --- agreement with crm_simulate --------------------------------------------------------

/// Whether `crm_simulate` can be run; with `CI` set a missing one fails the test.
fn crm_simulate_available() -> bool {
    let ok = Command::new("crm_simulate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "crm_simulate is missing (apt-get install pacemaker-cli-utils; scripts/test does) and CI is set"
        );
        eprintln!("SKIP: crm_simulate is missing (apt-get install pacemaker-cli-utils)");
    }
    ok
}

/// Where each running instance is: `(bundle, index)` to node.
type Placement = BTreeMap<(String, u32), String>;

fn placement(o: &Observed) -> Placement {
    let mut out = Placement::new();
    for (node, n) in &o.nodes {
        if n.state != NodeState::Online {
            continue;
        }
        for i in n
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
        {
            out.insert((i.bundle.to_string(), i.index), node.to_string());
        }
    }
    out
}

/// The nodes fenced and the final placement by quorate's plan of the imported set.
fn quorate_outcome(imp: &Imported) -> (BTreeSet<String>, Placement) {
    let spec = validated(imp);
    let observed = snapshot(&imp.observed);
    let plan = quorate::plan::plan(&spec, &observed, &quorate::plan::Options::default());
    let fenced = plan
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            quorate::plan::StepOp::Fence { node } => Some(node.to_string()),
            _ => None,
        })
        .collect();
    let after = quorate::plan::apply::expected_state(&spec, &observed, &plan);
    (fenced, placement(&after))
}

/// The cluster nodes `crm_simulate -S` fences, and the final placement it leaves (its
/// output CIB's status section, read by the importer).
fn pacemaker_outcome(cib: &Path, nodes: &[String]) -> (BTreeSet<String>, Placement) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("after.xml");
    let o = Command::new("crm_simulate")
        .arg("-x")
        .arg(cib)
        .arg("-S")
        .arg("-O")
        .arg(&out)
        .output()
        .expect("crm_simulate runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "crm_simulate failed: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary = text
        .split("Transition Summary:")
        .nth(1)
        .and_then(|s| s.split("Executing Cluster Transition").next())
        .unwrap_or("");
    let fenced = summary
        .lines()
        .filter_map(|l| l.trim().strip_prefix("* Fence"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|n| nodes.iter().any(|c| c == n))
        .map(str::to_owned)
        .collect();
    let after = import(&out);
    (fenced, placement(&snapshot(&after.observed)))
}

#[test]
fn the_imported_plan_agrees_with_crm_simulate() {
    if !crm_simulate_available() {
        return;
    }
    let mut agreed = Vec::new();
    for name in [
        "start.xml",
        "converged.xml",
        "failover.xml",
        "failcount.xml",
    ] {
        let cib = data(name);
        let imp = import(&cib);
        let nodes: Vec<String> = validated(&imp)
            .cluster
            .nodes
            .iter()
            .map(|n| n.name.to_string())
            .collect();
        let ours = quorate_outcome(&imp);
        let theirs = pacemaker_outcome(&cib, &nodes);
        assert_eq!(
            ours, theirs,
            "{name}: quorate (left) and crm_simulate (right) differ"
        );
        agreed.push(name);
    }
    // The failover is not trivial: a node is fenced and its instances move.
    let (fenced, placed) = quorate_outcome(&import(&data("failover.xml")));
    assert_eq!(fenced.into_iter().collect::<Vec<_>>(), ["node1"]);
    assert_eq!(
        placed.get(&("db".into(), 0)).map(String::as_str),
        Some("node2")
    );
    assert_eq!(agreed.len(), 4);
}

/// Node utilization becomes `capacity`, a resource's utilization `needs`, and
/// `placement-strategy` the cluster's `placementStrategy`.
#[test]
fn utilization_and_placement_strategy_carry_over() {
    let cib = std::fs::read_to_string(data("start.xml")).unwrap();
    let cib = cib
        .replace(
            r#"name="placement-strategy" value="default""#,
            r#"name="placement-strategy" value="balanced""#,
        )
        .replace(
            r#"<node id="1" uname="node1">"#,
            r#"<node id="1" uname="node1"><utilization id="n1-u"><nvpair id="n1-cpu" name="cpu" value="8"/><nvpair id="n1-mem" name="Memory" value="32768"/></utilization>"#,
        )
        .replace(
            r#"<primitive id="db-server" class="ocf" provider="heartbeat" type="pgsql">"#,
            r#"<primitive id="db-server" class="ocf" provider="heartbeat" type="pgsql"><utilization id="db-u"><nvpair id="db-cpu" name="cpu" value="2"/></utilization>"#,
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cib.xml");
    std::fs::write(&path, cib).unwrap();
    let imp = import(&path);
    assert!(imp.errors().is_empty(), "{}", imp.stdout);
    let set = validated(&imp);
    assert_eq!(
        set.cluster.placement_strategy,
        quorate::spec::cluster::PlacementStrategy::Balanced
    );
    let node1 = set.cluster.node("node1").unwrap();
    let caps: Vec<(String, u64)> = node1
        .capacity
        .iter()
        .map(|(q, n)| (q.to_string(), *n))
        .collect();
    assert_eq!(caps, [("cpu".to_owned(), 8), ("memory".to_owned(), 32768)]);
    let needs: Vec<(String, u64)> = set.bundles["db"]
        .needs
        .iter()
        .map(|(q, n)| (q.to_string(), *n))
        .collect();
    assert_eq!(needs, [("cpu".to_owned(), 2)]);
}

#[test]
fn promotable_bundles_and_clones_map_with_their_role_constraints() {
    let imp = import(&data("promotable.xml"));
    assert_eq!(imp.code, Some(1), "{}", imp.stdout);
    let set = validated(&imp);
    // Promotable, with their limits, and commands that fail until written: reported.
    let kv = set.bundles["kv"]
        .promotable
        .as_deref()
        .expect("kv is promotable");
    assert_eq!((kv.max_promoted, kv.max_promoted_per_node), (1, 1));
    assert_eq!(kv.role, ["false"]);
    let queue = set.bundles["queue"]
        .promotable
        .as_deref()
        .expect("queue is promotable");
    assert_eq!(queue.max_promoted, 2);
    // Where the promotion is written: kv's <podman> (the line after the bundle's), the clone.
    let lines: Vec<&serde_json::Value> = imp
        .errors()
        .iter()
        .filter(|f| {
            f["message"]
                .as_str()
                .is_some_and(|m| m.contains("promote, demote and role"))
        })
        .map(|f| &f["line"])
        .collect();
    let (kv_at, queue_at) = (
        line_of("promotable.xml", "kv") + 1,
        line_of("promotable.xml", "queue-clone"),
    );
    assert_eq!(
        lines,
        [&serde_json::json!(kv_at), &serde_json::json!(queue_at)],
        "{}",
        imp.stdout
    );
    // target-role Promoted on a promotable clone: nothing to report.
    let target = line_of("promotable.xml", "queue-target-role");
    assert!(
        !imp.errors().iter().any(|f| f["line"] == target),
        "{}",
        imp.stdout
    );
    // The role constraints: a location, a colocation and an order on the promoted role.
    let mut seen = Vec::new();
    for c in set.constraints.values() {
        match c {
            quorate::spec::ConstraintSpec::Location(l) if l.bundle.as_str() == "kv" => {
                assert!(l.role.is_some() && l.score.value() == 50, "{l:?}");
                seen.push("location");
            }
            quorate::spec::ConstraintSpec::Colocation(c) => {
                assert!(c.role.is_some() && c.with.as_str() == "kv", "{c:?}");
                seen.push("colocation");
            }
            quorate::spec::ConstraintSpec::Order(o) => {
                assert!(!o.action.is_start() && o.first.as_str() == "kv", "{o:?}");
                seen.push("order");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, ["colocation", "location", "order"]);
    // An unpromoted role, and a promoted role of a bundle that is not promotable: reported.
    for id in ["kv-replica-off-node3", "gateway-primary"] {
        let line = line_of("promotable.xml", id);
        assert!(
            imp.errors().iter().any(|f| f["line"] == line),
            "{id}: {}",
            imp.stdout
        );
    }
}
