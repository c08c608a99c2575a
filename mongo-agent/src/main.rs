//! `fedstate-mongo-agent`: see `--help` and `mongo-agent/README.md`.

use clap::Parser;
use fedstate_mongo_agent::service::{Args, run};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    fedstate_runtime::telemetry::init(args.common.log_format);
    fedstate_runtime::process::block_on(run(args))??;
    Ok(())
}
