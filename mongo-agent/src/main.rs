//! `fedstate-mongo-agent`: see `--help` and `mongo-agent/README.md`.

// As in the library: indexing or slicing that may panic is refused (lib.rs).
#![warn(clippy::indexing_slicing)]

use clap::Parser;
use fedstate_mongo_agent::service::{Args, run};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    fedstate_runtime::telemetry::init(args.common.log_format);
    fedstate_runtime::process::block_on(run(args))??;
    Ok(())
}
