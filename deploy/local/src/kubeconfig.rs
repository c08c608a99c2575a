//! Admin kubeconfigs for the Karmada apiserver and each member, and clients built from them.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Error, Result};
use crate::pki::{self, Pki};

/// Writes an admin kubeconfig (context `name`) for the apiserver at `https://127.0.0.1:<port>`.
/// Certificates are embedded so that tools which copy the CA out of the kubeconfig (karmadactl
/// join) find it.
pub fn write_admin(path: &Path, name: &str, port: u16, pki: &Pki) -> Result<()> {
    write_client(path, name, port, pki, &pki.admin_cert(), &pki.admin_key())
}

/// Writes a kubeconfig (context `name`) for the apiserver at `https://127.0.0.1:<port>` that
/// authenticates with the client certificate `cert`/`key`, embedded.
pub fn write_client(
    path: &Path,
    name: &str,
    port: u16,
    pki: &Pki,
    cert: &Path,
    key: &Path,
) -> Result<()> {
    let ca = STANDARD.encode(pki::read(&pki.ca_cert())?);
    let cert = STANDARD.encode(pki::read(cert)?);
    let key = STANDARD.encode(pki::read(key)?);
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": {
                "server": format!("https://127.0.0.1:{port}"),
                "certificate-authority-data": ca,
            },
        }],
        "users": [{
            "name": format!("{name}-admin"),
            "user": {"client-certificate-data": cert, "client-key-data": key},
        }],
        "contexts": [{
            "name": name,
            "context": {"cluster": name, "user": format!("{name}-admin")},
        }],
        "current-context": name,
    });
    let yaml = serde_yaml::to_string(&doc).map_err(|e| Error::Manifest {
        what: path.display().to_string(),
        detail: e.to_string(),
    })?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
    }
    // The kubeconfig embeds a private key.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io("write", path))?;
    f.write_all(yaml.as_bytes())
        .map_err(Error::io("write", path))
}

/// A kube client from a kubeconfig file.
pub async fn client(path: &Path) -> Result<kube::Client> {
    let err = |detail: String| Error::Kubeconfig {
        path: path.to_path_buf(),
        detail,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    // A stopped member's apiserver refuses connections, so a short connect timeout is enough to
    // fail fast. No read timeout (kube's default): it applies to every response body, watches
    // included, and a watch that sees no event for that long was cut ("error reading a body from
    // connection"), every 30 to 60 s on the Cluster watch (Karmada's aggregated API sends
    // bookmarks about once a minute); the watcher's own idle timeout guards watches.
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}
