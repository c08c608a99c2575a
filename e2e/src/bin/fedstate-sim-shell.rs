//! `fedstate-sim-shell`: what `mongosh`/`mongo` are inside a simulated member pod (kwok runs
//! `pods/exec` as local commands). See `fedstate_rs_sim::shell`. Test fixture only.

use std::path::PathBuf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let var = |k: &str| std::env::var_os(k).map(PathBuf::from).unwrap_or_default();
    let pod = fedstate_rs_sim::shell::PodEnv {
        socket: var("FEDSTATE_SIM_SOCKET"),
        root: var("FEDSTATE_SIM_POD_ROOT"),
    };
    match fedstate_rs_sim::shell::run(&args, &pod).await {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
