//! FedState's images, built daemonlessly (`scripts/build-images.sh`, crane from the pinned Go
//! modules) from the binaries e2e.sh built, then inspected as a container runtime would see them:
//! the config (entrypoint = the binary, user 65532, OCI labels) and the file system — its layers
//! unpacked in order, the binary run from it with `--help` under `chroot` as user 65532, so the
//! image is self-contained (loader, libraries). There is no container runtime here, so the image
//! is not run as a container.
//!
//! A suite of one standalone trial (no federation), run by deploy/local/e2e.sh, which builds the
//! binaries next to the test's (`fedstate_e2e::process::our_binary`); ignored, like every e2e trial, without
//! `FEDSTATE_E2E=1`. The `chroot` step needs root and says so when skipped.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "an e2e test binary (libtest-mimic, harness = false): clippy does not see its trials as tests; a panic is how a trial fails"
)]

use std::path::Path;
use std::process::Command;

use fedstate_e2e::process::our_binary;
use fedstate_e2e::suite::Suite;

fn main() -> std::process::ExitCode {
    Suite::new("images", |_, _| Box::pin(async {}))
        .standalone(
            "images_are_built_daemonless_and_run_from_their_file_system",
            images_are_built_daemonless_and_run_from_their_file_system,
        )
        .run()
}

/// The checkout under test (cargo runs test binaries with CARGO_MANIFEST_DIR set to this crate).
fn repo() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .and_then(|e2e| e2e.parent().map(Path::to_path_buf))
        .unwrap_or_else(fedstate_local::layout::repository_root)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn images_are_built_daemonless_and_run_from_their_file_system() {
    let bin_dir = our_binary("fedstate-scheduler")
        .parent()
        .map(Path::to_path_buf)
        .expect("the binaries' directory");
    let out = std::env::temp_dir().join(format!("fedstate-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    // Removed however the trial ends (the three images are about 160 MB).
    let _cleanup = RemoveOnDrop(out.clone());
    run(Command::new(repo().join("scripts/build-images.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(&out));
    let version = env!("CARGO_PKG_VERSION");
    for name in [
        "fedstate-scheduler",
        "fedstate-manager",
        "fedstate-mongo-agent",
    ] {
        check_image(&out, name, version);
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check_image(out: &Path, name: &str, version: &str) {
    let dir = out.join(format!("{name}.unpacked"));
    std::fs::create_dir_all(&dir).expect("unpack dir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(out.join(format!("{name}.tar")))
        .arg("-C")
        .arg(&dir));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest");
    let config_file = manifest[0]["Config"].as_str().expect("Config");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(config_file)).expect("config"))
            .expect("config json");
    let c = &config["config"];
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!([format!("/usr/local/bin/{name}")]),
        "{name}: entrypoint"
    );
    assert_eq!(c["User"], "65532:65532", "{name}: runs as non-root");
    // What the e2e processes run with too (`fedstate_e2e::ours::IMAGE_ENV`).
    let env: Vec<&str> = c["Env"]
        .as_array()
        .map(|e| e.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for (k, v) in fedstate_e2e::ours::IMAGE_ENV {
        assert!(
            env.contains(&format!("{k}={v}").as_str()),
            "{name}: {k}={v} in the image's environment: {env:?}"
        );
    }
    assert_eq!(
        c["Labels"]["org.opencontainers.image.title"], name,
        "{name}: title label"
    );
    assert_eq!(
        c["Labels"]["org.opencontainers.image.version"], version,
        "{name}: version label"
    );
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");

    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("rootfs");
    for layer in manifest[0]["Layers"].as_array().expect("Layers") {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(dir.join(layer.as_str().expect("layer")))
            .arg("-C")
            .arg(&rootfs));
    }
    assert!(
        rootfs.join(format!("usr/local/bin/{name}")).is_file(),
        "{name}: the binary is in the image"
    );
    if !is_root() {
        eprintln!("skipped: running {name} --help from the image needs root (chroot)");
        return;
    }
    let help = run(Command::new("chroot")
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .arg("--userspec=65532:65532")
        .arg(&rootfs)
        .arg(format!("/usr/local/bin/{name}"))
        .arg("--help"));
    assert!(
        help.contains("Usage:"),
        "{name} --help from the image: {help}"
    );
    eprintln!("  {name}: config and file system checked; --help runs from the image as 65532");
}
