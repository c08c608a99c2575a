//! Certificates and keys of one run, generated at `up` (never committed).
//!
//! One CA signs a serving certificate shared by every TLS server (all on loopback) and the admin
//! client certificate every component and test uses; a separate front-proxy CA signs the client
//! certificate the Karmada apiserver presents to the aggregated apiserver. The service-account
//! signing key pair is shared by all apiservers.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// Paths of the generated PKI files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    dir: PathBuf,
}

/// DNS names the shared serving certificate covers besides loopback addresses: the names the
/// Karmada apiserver uses as TLS server name for the aggregated apiserver and webhook Services,
/// and the usual in-cluster apiserver names.
const SERVING_DNS_NAMES: &[&str] = &[
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "karmada-apiserver.karmada-system.svc",
    "karmada-apiserver.karmada-system.svc.cluster.local",
    "karmada-aggregated-apiserver.karmada-system.svc",
    "karmada-aggregated-apiserver.karmada-system.svc.cluster.local",
    "karmada-webhook.karmada-system.svc",
    "karmada-webhook.karmada-system.svc.cluster.local",
];

impl Pki {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Generates a fresh PKI in `dir` for a federation of `members` members.
    pub fn generate(dir: &Path, members: u32) -> Result<Self> {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let pki = Self::at(dir);

        let (ca_params, ca_key) = ca(CA_NAME)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_err("ca"))?;
        write_public(&pki.ca_cert(), &ca_cert.pem())?;
        write_private(&pki.ca_key(), &ca_key.serialize_pem())?;
        let ca_issuer = Issuer::new(ca_params, ca_key);

        let (fp_params, fp_key) = ca("fedstate-local-front-proxy-ca")?;
        let fp_cert = fp_params
            .self_signed(&fp_key)
            .map_err(cert_err("front-proxy-ca"))?;
        write_public(&pki.front_proxy_ca_cert(), &fp_cert.pem())?;
        let fp_issuer = Issuer::new(fp_params, fp_key);

        let mut sans: Vec<String> = SERVING_DNS_NAMES.iter().map(|s| s.to_string()).collect();
        sans.push("127.0.0.1".into());
        sans.push("10.96.0.1".into());
        sans.extend((1..=members).map(|i| crate::layout::member_vip(i).to_string()));
        leaf(
            &pki.server_cert(),
            &pki.server_key(),
            "fedstate-local-server",
            &[],
            sans,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            &ca_issuer,
        )?;
        leaf(
            &pki.admin_cert(),
            &pki.admin_key(),
            "fedstate-local-admin",
            &["system:masters"],
            vec![],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            &ca_issuer,
        )?;
        leaf(
            &pki.front_proxy_client_cert(),
            &pki.front_proxy_client_key(),
            "front-proxy-client",
            &[],
            vec![],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            &fp_issuer,
        )?;

        let sa = KeyPair::generate().map_err(cert_err("service-account key"))?;
        write_private(&pki.service_account_key(), &sa.serialize_pem())?;
        write_public(&pki.service_account_pub(), &sa.public_key_pem())?;
        Ok(pki)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn front_proxy_ca_cert(&self) -> PathBuf {
        self.dir.join("front-proxy-ca.crt")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    /// Client certificate in group `system:masters`.
    pub fn admin_cert(&self) -> PathBuf {
        self.dir.join("admin.crt")
    }
    pub fn admin_key(&self) -> PathBuf {
        self.dir.join("admin.key")
    }
    pub fn front_proxy_client_cert(&self) -> PathBuf {
        self.dir.join("front-proxy-client.crt")
    }
    pub fn front_proxy_client_key(&self) -> PathBuf {
        self.dir.join("front-proxy-client.key")
    }
    pub fn service_account_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    pub fn service_account_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    /// A client certificate of the run's CA for user `common_name` in `group` (the apiservers
    /// read the organization as the group; the certificate carries one), written as `<common_name>.crt`/`.key` in the PKI
    /// directory; returns (certificate, key). For a client of its own identity (a benchmark's
    /// scheduler, whose requests the audit log then tells apart).
    pub fn client_certificate(&self, common_name: &str, group: &str) -> Result<(PathBuf, PathBuf)> {
        let valid = !common_name.is_empty()
            && common_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !valid {
            return Err(Error::InvalidArgument(format!(
                "client certificate name {common_name:?}: use letters, digits and - _ . : only"
            )));
        }
        let key = KeyPair::from_pem(&read(&self.ca_key())?).map_err(cert_err(CA_NAME))?;
        let issuer = Issuer::new(ca_params(CA_NAME)?, key);
        let cert = self.dir.join(format!("{common_name}.crt"));
        let key = self.dir.join(format!("{common_name}.key"));
        leaf(
            &cert,
            &key,
            common_name,
            &[group],
            vec![],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            &issuer,
        )?;
        Ok((cert, key))
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Result<String> {
        read(&self.ca_cert())
    }

    /// Copies the serving certificate into `dir` as `tls.crt`/`tls.key` (karmada-webhook's
    /// `--cert-dir` layout).
    pub fn install_serving_pair(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        write_public(&dir.join("tls.crt"), &read(&self.server_cert())?)?;
        write_private(&dir.join("tls.key"), &read(&self.server_key())?)
    }
}

pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(Error::io("read", path))
}

fn cert_err(name: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |source| Error::Certificate {
        name: name.to_string(),
        source,
    }
}

/// Common name of the run's CA.
const CA_NAME: &str = "fedstate-local-ca";

fn ca(common_name: &str) -> Result<(CertificateParams, KeyPair)> {
    let key = KeyPair::generate().map_err(cert_err(common_name))?;
    Ok((ca_params(common_name)?, key))
}

/// The CA's parameters: signing with them and the CA's key yields certificates whose issuer is
/// the CA certificate `generate` wrote (same subject, same key identifier).
fn ca_params(common_name: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err(common_name))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn leaf(
    cert_path: &Path,
    key_path: &Path,
    common_name: &str,
    // One organization at most: rcgen keeps one value per attribute type.
    organizations: &[&str],
    sans: Vec<String>,
    usages: &[ExtendedKeyUsagePurpose],
    issuer: &Issuer<'_, KeyPair>,
) -> Result<()> {
    let key = KeyPair::generate().map_err(cert_err(common_name))?;
    let mut params = CertificateParams::new(sans).map_err(cert_err(common_name))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    for org in organizations {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *org);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = usages.to_vec();
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(cert_err(common_name))?;
    write_public(cert_path, &cert.pem())?;
    write_private(key_path, &key.serialize_pem())
}

fn write_public(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).map_err(Error::io("write", path))
}

/// Writes a private key readable by the owner only.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io("write", path))?;
    f.write_all(contents.as_bytes())
        .map_err(Error::io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_every_file_with_private_keys_owner_only() {
        let dir = std::env::temp_dir().join(format!("fedstate-local-pki-{}", std::process::id()));
        let pki = Pki::generate(&dir, 3).expect("generate");
        for p in [
            pki.ca_cert(),
            pki.server_cert(),
            pki.admin_cert(),
            pki.front_proxy_ca_cert(),
            pki.front_proxy_client_cert(),
            pki.service_account_pub(),
        ] {
            assert!(read(&p).expect("read").starts_with("-----BEGIN"), "{p:?}");
        }
        use std::os::unix::fs::PermissionsExt;
        for p in [
            pki.ca_key(),
            pki.server_key(),
            pki.admin_key(),
            pki.service_account_key(),
        ] {
            let mode = fs::metadata(&p).expect("stat").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{p:?} is readable by others");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn client_certificates_chain_to_the_run_ca_and_carry_their_groups() {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, UnixTime};
        let dir =
            std::env::temp_dir().join(format!("fedstate-local-pki-client-{}", std::process::id()));
        let pki = Pki::generate(&dir, 1).expect("generate");
        let (cert, key) = pki
            .client_certificate("bench-ours", "fedstate:audited")
            .expect("mint");
        let ca = CertificateDer::from_pem_file(pki.ca_cert()).expect("ca");
        let leaf = CertificateDer::from_pem_file(&cert).expect("leaf");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).expect("root");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .expect("verifier");
        verifier
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .expect("the client certificate chains to the run's CA");
        for needle in ["bench-ours", "fedstate:audited"] {
            assert!(
                leaf.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in the certificate"
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&key).expect("stat").permissions().mode();
        assert_eq!(mode & 0o077, 0);
        assert!(pki.client_certificate("bad name", "g").is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
