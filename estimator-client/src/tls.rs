//! Channels to an estimator: plain HTTP/2 or TLS (CA, client certificate for mTLS,
//! insecure-skip-verify), like Karmada's `--scheduler-estimator-ca-file`, `--…-cert-file`,
//! `--…-key-file` and `--insecure-skip-estimator-verify`.
//!
//! TLS goes through our own rustls config (tonic's built-in TLS cannot skip verification), via
//! `hyper-rustls`. Channels connect lazily and time out connecting after
//! [`ChannelConfig::connect_timeout`] (Karmada: 5 s).

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

/// TLS settings; TLS is on when a CA is given or verification is skipped (Karmada's rule).
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM file of the CA that signed the estimators' serving certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for estimators that require mTLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Do not verify the estimator's certificate (testing only).
    pub insecure_skip_verify: bool,
}

impl TlsOptions {
    pub fn enabled(&self) -> bool {
        self.ca_file.is_some() || self.insecure_skip_verify
    }
}

/// How channels to estimators are built.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    pub tls: TlsOptions,
    pub connect_timeout: Duration,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading estimator TLS file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("estimator TLS file {path} holds no usable PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("building the estimator TLS client config: {0}")]
    Config(#[from] rustls::Error),
    #[error("estimator address {address:?} is not a valid URI: {reason}")]
    Address { address: String, reason: String },
}

/// Builds channels from a [`ChannelConfig`]; the TLS config is loaded once.
#[derive(Clone, Debug)]
pub struct ChannelFactory {
    connect_timeout: Duration,
    tls: Option<Arc<ClientConfig>>,
}

impl ChannelFactory {
    pub fn new(config: &ChannelConfig) -> Result<Self, TlsError> {
        let tls = if config.tls.enabled() {
            Some(Arc::new(client_config(&config.tls)?))
        } else {
            None
        };
        Ok(Self {
            connect_timeout: config.connect_timeout,
            tls,
        })
    }

    /// A lazily connecting channel to `host:port`. Nothing is dialled until the first RPC.
    pub fn channel(&self, address: &str) -> Result<Channel, TlsError> {
        // Always an `http` URI: TLS is done by our connector ([`AlwaysTls`]). With an `https`
        // URI, tonic refuses to connect ("Connecting to HTTPS without TLS enabled") whenever
        // its own TLS feature is compiled into the binary by any other crate.
        let uri = format!("http://{address}");
        let endpoint = Endpoint::from_shared(uri).map_err(|e| TlsError::Address {
            address: address.to_owned(),
            reason: e.to_string(),
        })?;
        let endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(match &self.tls {
            None => endpoint.connect_lazy(),
            Some(cfg) => {
                let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((**cfg).clone())
                    .https_only()
                    .enable_http2()
                    .wrap_connector(http);
                endpoint.connect_with_connector_lazy(AlwaysTls(connector))
            }
        })
    }
}

/// Dials `connector` (HTTPS only) with the URI's scheme turned into `https`: the channel's URI
/// stays `http` for tonic, the connection is TLS all the same.
#[derive(Clone, Debug)]
struct AlwaysTls<C>(C);

impl<C: tower_service::Service<Uri>> tower_service::Service<Uri> for AlwaysTls<C> {
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut parts = uri.clone().into_parts();
        parts.scheme = Some(Scheme::HTTPS);
        // Cannot fail for a URI with an authority; else the HTTPS-only connector refuses it.
        let uri = Uri::from_parts(parts).unwrap_or(uri);
        self.0.call(uri)
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.clone(),
        source,
    })
}

fn client_config(opts: &TlsOptions) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &opts.ca_file {
            let pem = read(path)?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::Pem {
                    path: path.clone(),
                    what: "CA certificate",
                });
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => {
            let cert_pem = read(cert)?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .filter_map(Result::ok)
                .collect();
            if chain.is_empty() {
                return Err(TlsError::Pem {
                    path: cert.clone(),
                    what: "certificate",
                });
            }
            let key_der =
                PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::Pem {
                    path: key.clone(),
                    what: "private key",
                })?;
            builder.with_client_auth_cert(chain, key_der)?
        }
        _ => builder.with_no_client_auth(),
    };
    // No ALPN here: hyper-rustls sets it from the enabled protocols (HTTP/2) and panics when it
    // is pre-defined.
    Ok(config)
}

/// Accepts any server certificate but still checks the handshake signatures.
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
