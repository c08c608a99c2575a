//! fedstate-scheduler: placement engine and Karmada scheduler extension.
//!
//! Subcommands: `run` (the scheduler service) and `plan` (offline placement from files).

// As in the library: indexing or slicing that may panic is refused (lib.rs).
#![warn(clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fedstate_scheduler::plan;

#[derive(Parser, Debug)]
#[command(
    name = "fedstate-scheduler",
    version,
    about = "FedState scheduler: places MongoDB replica-set members on Karmada member clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the scheduler against the Karmada apiserver: place MultiCloudMongoDBs and
    /// ResourceBindings that name this scheduler, asking member estimators for capacity.
    ///
    /// Example: fedstate-scheduler run --kubeconfig karmada.config --admin-addr 127.0.0.1:8081
    #[command(verbatim_doc_comment)]
    Run(Box<fedstate_scheduler::service::RunArgs>),
    /// Compute a placement offline, exactly as the scheduler would, and explain it.
    ///
    /// Capacity comes from each Cluster's status.resourceSummary (allocatable − allocated −
    /// allocating, divided by spec.resource.requests, bounded by pods); readiness from its Ready
    /// condition and taints. Exit status: 0 placed, 1 no placement possible (the reason is
    /// printed), 2 invalid input (the message names the file and field).
    ///
    /// Example: fedstate-scheduler plan --clusters clusters.yaml --object mcm.yaml --output json
    #[command(verbatim_doc_comment)]
    Plan(PlanArgs),
}

#[derive(clap::Args, Debug)]
struct PlanArgs {
    /// Karmada Clusters: a List as printed by `kubectl get clusters.cluster.karmada.io -o yaml`
    /// (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    clusters: PathBuf,
    /// The MultiCloudMongoDB manifest (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    object: PathBuf,
    /// The previous placement: a file holding a schedulerResult annotation value (JSON). When
    /// omitted, the object's own schedulerResult annotation is used if it has one.
    #[arg(long, value_name = "FILE")]
    previous: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    /// A table of every cluster with the reason for its count.
    Text,
    /// {"schedulerResult": <annotation value>, "quorumSafe": …, "explanation": …}
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => run_plan(&args),
        Command::Run(args) => run_service(*args),
    }
}

fn run_service(args: fedstate_scheduler::service::RunArgs) -> ExitCode {
    fedstate_runtime::telemetry::init(args.common.log_format);
    match fedstate_runtime::process::block_on(fedstate_scheduler::service::run(args)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "fedstate-scheduler stopped");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("fedstate-scheduler run: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_plan(args: &PlanArgs) -> ExitCode {
    let (input, req) = match plan::load(&args.clusters, &args.object, args.previous.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("fedstate-scheduler plan: {e}");
            return ExitCode::from(2);
        }
    };
    let result = plan::run(&input, &req);
    match args.output {
        Output::Text => print!("{}", plan::render_text(&input, &result)),
        Output::Json => println!("{}", plan::render_json(&input, &result)),
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fedstate-scheduler plan: no placement: {e}");
            ExitCode::from(1)
        }
    }
}
