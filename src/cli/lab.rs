//! `quorate lab`: bring up, break, inspect and remove a lab cluster on this machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::lab::config::{self, DEFAULT_DIR, DEFAULT_NAME, DEFAULT_NODES, LabConfig};
use crate::lab::{Lab, LabError, bmc, specs, status};

/// Arguments of `quorate lab`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Needs root. See docs/lab.md for what the lab builds and how to \
                        try failover with it."
)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Build the lab: nodes (network namespaces with their own Podman), a BMC per node,
    /// the busybox image on every node, and a git repo with the lab's specs.
    Up(UpArgs),
    /// Remove everything `up` made: processes, namespaces, interfaces, files. Safe to
    /// run twice.
    Down(DirArg),
    /// Pull a node's network cable: its runtime stops answering, its BMC does not.
    Cut(NodeArgs),
    /// Put a node's network cable back.
    Heal(NodeArgs),
    /// Power a node off or on through its BMC (off kills all of it; on restarts its
    /// Podman, with its containers stopped).
    Power(PowerArgs),
    /// Show each node: namespace, cable, Podman, BMC power.
    Status(StatusArgs),
    /// Write the lab's spec files to a directory, without building anything (the
    /// repository's `specs/` is `lab specs --out specs` for the default lab).
    Specs(SpecsArgs),
    /// The BMCs' chassis control (called by ipmi_sim): `get power`, `set power 0|1`.
    #[command(hide = true)]
    Chassis(ChassisArgs),
}

/// `--dir`.
#[derive(Debug, clap::Args)]
struct DirArg {
    /// The lab's directory (its lab.json says what the lab is).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
}

/// What a lab is built from.
#[derive(Debug, clap::Args)]
struct ShapeArgs {
    /// Number of nodes (worker1..workerN).
    #[arg(long, default_value_t = DEFAULT_NODES)]
    nodes: u32,
    /// The lab's directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Prefix of the lab's interfaces and namespaces, and the cluster's name (1-8 of a-z0-9).
    #[arg(long, default_value = DEFAULT_NAME)]
    name: String,
    /// The data /24: the host is .1, node i is .(10+i); BMCs are on 127.<b>.<c>.(10+i).
    #[arg(long, value_name = "NET", default_value = "10.77.0.0/24")]
    subnet: String,
}

impl ShapeArgs {
    fn config(&self) -> Result<LabConfig, LabError> {
        let cfg = LabConfig {
            name: self.name.clone(),
            nodes: self.nodes,
            dir: absolute(&self.dir),
            subnet: config::parse_subnet(&self.subnet)?,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    #[command(flatten)]
    shape: ShapeArgs,
}

#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// The node (worker1, worker2, ...).
    node: String,
    #[command(flatten)]
    dir: DirArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Power {
    Off,
    On,
}

#[derive(Debug, clap::Args)]
struct PowerArgs {
    /// The node.
    node: String,
    /// off or on.
    #[arg(value_enum)]
    state: Power,
    #[command(flatten)]
    dir: DirArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct SpecsArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// Directory to write the spec files to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ChassisArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The node whose chassis this is.
    node: String,
    /// `get power` or `set power 0|1`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// `println!` that ignores a closed stdout (`quorate lab status | head`) instead of
/// panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!`, likewise.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// Runs `quorate lab`.
pub fn run(args: Args) -> ExitCode {
    let rt = match super::cluster_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        match args.command {
            Sub::Up(a) => up(&a).await,
            Sub::Down(a) => down(&a).await,
            Sub::Cut(a) => cable(&a, false).await,
            Sub::Heal(a) => cable(&a, true).await,
            Sub::Power(a) => power(&a).await,
            Sub::Status(a) => show_status(&a).await,
            Sub::Specs(a) => write_specs(&a),
            Sub::Chassis(a) => chassis(&a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let usage = matches!(
                e,
                LabError::Config(_)
                    | LabError::NoLab(_)
                    | LabError::Exists(_)
                    | LabError::UnknownNode { .. }
                    | LabError::NotRoot
                    | LabError::Missing(_)
                    | LabError::Clash(_)
            );
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FAILURE })
        }
    }
}

async fn up(a: &UpArgs) -> Result<ExitCode, LabError> {
    let cfg = a.shape.config()?;
    let quorate = std::env::current_exe().map_err(|e| LabError::Missing(e.to_string()))?;
    let started = std::time::Instant::now();
    let lab = Lab::up(&cfg, &quorate).await?;
    say!(
        "lab {} is up in {:.1}s ({} nodes)",
        cfg.name,
        started.elapsed().as_secs_f64(),
        cfg.nodes
    );
    for n in lab.nodes() {
        say!(
            "  {:<9} {}  podman {}  bmc {}:{}",
            n.name,
            n.netns,
            n.runtime,
            n.bmc_address,
            config::BMC_PORT
        );
    }
    say!("{}", next_steps(&lab));
    Ok(ExitCode::SUCCESS)
}

/// What to try next, printed after `lab up`.
fn next_steps(lab: &Lab) -> String {
    let cfg = lab.config();
    let dir = cfg.dir.display();
    let flag = if cfg.dir == Path::new(DEFAULT_DIR) {
        String::new()
    } else {
        format!(" --dir {dir}")
    };
    format!(
        "specs: {specs} (git: {repo}, branch main)\n\
         run the reconciler:\n  \
         quorate run --repo {repo} --path specs --state-dir {state} --secrets-dir {secrets} &\n\
         then try:\n  \
         quorate status --server http://127.0.0.1:7777\n  \
         quorate lab cut worker1{flag}      # pull worker1's cable; watch quorate status\n  \
         quorate lab heal worker1{flag}; quorate lab power worker1 on{flag}\n  \
         quorate lab power worker2 off{flag}\n  \
         quorate fence history --state-dir {state}\n  \
         quorate lab down{flag}",
        specs = lab.specs_dir().display(),
        repo = cfg.repo_bare().display(),
        state = cfg.reconciler_state_dir().display(),
        secrets = cfg.secrets_dir().display(),
    )
}

async fn down(a: &DirArg) -> Result<ExitCode, LabError> {
    let dir = absolute(&a.dir);
    let report = Lab::down(&dir).await?;
    if !report.found {
        say!("no lab in {}: nothing to remove", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &report.problems {
        eprintln!("problem: {p}");
    }
    say!(
        "lab in {} removed ({} processes stopped){}",
        dir.display(),
        report.killed,
        if report.problems.is_empty() {
            ""
        } else {
            "; see the problems above"
        }
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

async fn cable(a: &NodeArgs, up: bool) -> Result<ExitCode, LabError> {
    let lab = Lab::open(&absolute(&a.dir.dir))?;
    let present = if up {
        lab.heal(&a.node).await?
    } else {
        lab.cut(&a.node).await?
    };
    let what = if up { "back in" } else { "pulled" };
    if present {
        say!("{}: cable {what}", a.node);
    } else {
        say!(
            "{}: powered off; its cable is {what} when it powers on",
            a.node
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn power(a: &PowerArgs) -> Result<ExitCode, LabError> {
    let lab = Lab::open(&absolute(&a.dir.dir))?;
    let state = lab.power(&a.node, a.state == Power::On).await?;
    say!("{}: the BMC confirms power {state}", a.node);
    if a.state == Power::On {
        let node = lab.node(&a.node)?;
        if crate::lab::node::is_cut(lab.config(), &node) {
            say!(
                "{}: its cable is cut: Podman is reachable after `quorate lab heal {}`",
                a.node,
                a.node
            );
        } else {
            say!("{}: Podman answers; its containers stay stopped", a.node);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_status(a: &StatusArgs) -> Result<ExitCode, LabError> {
    let lab = Lab::open(&absolute(&a.dir.dir))?;
    let nodes = lab.status().await;
    match a.format {
        Format::Human => say_raw!("{}", status::render(lab.config(), &nodes)),
        Format::Json => {
            let text =
                serde_json::to_string_pretty(&nodes).map_err(|e| LabError::State(e.to_string()))?;
            say!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_specs(a: &SpecsArgs) -> Result<ExitCode, LabError> {
    let cfg = a.shape.config()?;
    std::fs::create_dir_all(&a.out).map_err(|e| LabError::io(&a.out, e))?;
    for (name, text) in specs::render(&cfg) {
        let path = a.out.join(&name);
        std::fs::write(&path, text).map_err(|e| LabError::io(&path, e))?;
        say!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn chassis(a: &ChassisArgs) -> Result<ExitCode, LabError> {
    let lab = Lab::open(&absolute(&a.dir.dir))?;
    let node = lab.node(&a.node)?;
    let out = bmc::chassis(lab.config(), &node, &a.args).await?;
    say_raw!("{out}");
    Ok(ExitCode::SUCCESS)
}
