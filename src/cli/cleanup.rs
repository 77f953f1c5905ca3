//! `quorate cleanup INSTANCE [--node N]`: forget an instance's fail counts, on one node or
//! all (Pacemaker's `pcs resource cleanup`), so a node it was banned from by
//! `migrationThreshold` may take it again at the next pass.

use std::process::ExitCode;

use super::{EXIT_USAGE, SpecsArg, StateDirArg};

/// Arguments of `quorate cleanup`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 cleared (or nothing to clear), 1 invalid specs or could \
                  not run (unknown instance or node, unusable state directory, etcd unreachable)."
)]
pub struct Args {
    /// The instance, `<bundle>-<i>` (an instance of a bundle of the specs).
    #[arg(value_name = "INSTANCE")]
    instance: String,
    /// Only its failures on this node (a node of the Cluster); default every node.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
    #[command(flatten)]
    specs: SpecsArg,
    #[command(flatten)]
    state: StateDirArg,
    /// HA mode: clear them in etcd (where the replicas keep them) instead of the state
    /// directory.
    #[command(flatten)]
    etcd: super::ha::EtcdArgs,
}

/// Runs `quorate cleanup`. Clearing counts starts, stops, moves and fences nothing
/// itself: the next pass of the reconciler plans from the counts left, under quorum
/// (invariant 2) and the other invariants as always. With `--etcd` the counts are
/// cleared in etcd, an operator's write like `fence confirm --etcd`: the leader reads
/// them there at its next pass.
pub fn run(args: &Args) -> ExitCode {
    let set = match super::validate::load_valid(&args.specs.paths, None) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let known_instance = set.bundles.iter().any(|(name, b)| {
        (0..b.replicas)
            .any(|i| crate::spec::bundle::instance_name(name.as_str(), i) == args.instance)
    });
    if !known_instance {
        eprintln!(
            "error: no bundle of the specs has an instance `{}` (instances are named <bundle>-<i>, from 0)",
            args.instance
        );
        return ExitCode::from(EXIT_USAGE);
    }
    if let Some(node) = &args.node
        && !set.cluster.nodes.iter().any(|n| n.name.as_str() == node)
    {
        let known: Vec<&str> = set.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        eprintln!(
            "error: the cluster has no node `{node}` (nodes: {})",
            known.join(", ")
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let rt = match super::cluster_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(clear(args)) {
        Ok(n) => {
            let where_ = args
                .node
                .as_deref()
                .map_or_else(|| "any node".to_owned(), |n| n.to_owned());
            println!(
                "cleared: the fail counts of {} on {where_} ({n} node{})",
                args.instance,
                if n == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Clears the counts where they are kept: etcd with `--etcd` (an operator's write, as
/// `fence confirm --etcd`), else the state directory's database.
async fn clear(args: &Args) -> Result<u32, String> {
    let store = super::ha::operator_store(&args.state, &args.etcd).await?;
    store
        .clear_failures(&args.instance, args.node.as_deref())
        .await
        .map_err(|e| format!("cannot clear the fail counts: {e}"))
}
