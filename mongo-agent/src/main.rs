//! `fedstate-mongo-agent`: see `--help` and `mongo-agent/README.md`.

use clap::Parser;
use fedstate_mongo_agent::service::{Args, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    fedstate_runtime::telemetry::init(args.common.log_format);
    run(args).await?;
    Ok(())
}
