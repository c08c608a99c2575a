//! The side-by-side benchmark's ceiling scheduler (`fedstate_benches::ceiling`) as a process.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = fedstate_benches::ceiling::Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(fedstate_benches::ceiling::run(args))
}
