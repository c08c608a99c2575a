//! Our client's TLS options against an in-process tonic estimator on loopback that serves TLS
//! with a certificate for 127.0.0.1 and requires a client certificate signed by its client CA
//! (how Karmada's estimator runs with `--grpc-client-ca-file`). All keys and certificates are
//! generated at test time into a private temporary directory and removed afterwards.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fedstate_estimator_client::proto::pb;
use fedstate_estimator_client::proto::service::estimator_server::{Estimator, EstimatorServer};
use fedstate_estimator_client::{
    ChannelConfig, ChannelFactory, ClientError, EstimatorClient, MemberShape, TlsOptions, client,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// Answers 11 to every MaxAvailableReplicas and counts the requests that reached it.
#[derive(Clone, Debug, Default)]
struct Counting {
    calls: Arc<AtomicU32>,
}

#[tonic::async_trait]
impl Estimator for Counting {
    async fn max_available_replicas(
        &self,
        _request: Request<pb::MaxAvailableReplicasRequest>,
    ) -> Result<Response<pb::MaxAvailableReplicasResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(pb::MaxAvailableReplicasResponse {
            max_replicas: 11,
        }))
    }

    async fn max_available_component_sets(
        &self,
        _request: Request<pb::MaxAvailableComponentSetsRequest>,
    ) -> Result<Response<pb::MaxAvailableComponentSetsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_unschedulable_replicas(
        &self,
        _request: Request<pb::UnschedulableReplicasRequest>,
    ) -> Result<Response<pb::UnschedulableReplicasResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// A self-signed CA that can sign leaf certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate (PEM) and its key (PEM).
    fn leaf(&self, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A private directory for this test's PEM files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "fedstate-mtls-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback TLS estimator requiring a client certificate signed by `client_ca`.
struct TlsServer {
    addr: SocketAddr,
    counting: Counting,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TlsServer {
    async fn start(server_ca: &Ca, client_ca: &Ca) -> Self {
        let (cert, key) = server_ca.leaf(
            "estimator",
            &["127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .client_ca_root(Certificate::from_pem(client_ca.pem()))
            .client_auth_optional(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counting = Counting::default();
        let svc = EstimatorServer::new(counting.clone());
        let (tx, rx) = oneshot::channel();
        let mut builder = tonic::transport::Server::builder().tls_config(tls).unwrap();
        let task = tokio::spawn(async move {
            builder
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await
                .unwrap();
        });
        Self {
            addr,
            counting,
            stop: Some(tx),
            task: Some(task),
        }
    }

    fn calls(&self) -> u32 {
        self.counting.calls.load(Ordering::SeqCst)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

fn client_with(tls: TlsOptions, addr: SocketAddr) -> EstimatorClient {
    let factory = ChannelFactory::new(&ChannelConfig {
        tls,
        connect_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let address = addr.to_string();
    EstimatorClient::new(
        "member1",
        vec![client::Target {
            channel: factory.channel(&address).unwrap(),
            address,
        }],
    )
}

async fn ask(client: &EstimatorClient) -> Result<i32, ClientError> {
    let shape = MemberShape::from_requests([("cpu", "1")]);
    client
        .max_available_replicas(&shape, None, Instant::now() + Duration::from_secs(10))
        .await
}

/// A refusal is a TLS failure reported at once, not a wait for the deadline, and nothing
/// reaches the estimator.
#[allow(
    clippy::panic,
    reason = "test helper (not a #[test] itself): a panic fails the calling test"
)]
fn assert_refused(result: Result<i32, ClientError>, server: &TlsServer, what: &str) {
    match result {
        Err(ClientError::Rpc { .. }) => {}
        other => panic!("{what}: expected a refused connection, got {other:?}"),
    }
    assert_eq!(server.calls(), 0, "{what}: a request reached the estimator");
}

#[tokio::test]
async fn mtls_accepts_the_right_ca_and_client_cert_and_refuses_the_rest() {
    let scratch = Scratch::new("accept-refuse");
    let server_ca = Ca::new("estimator-server-ca");
    let client_ca = Ca::new("estimator-client-ca");
    let other_ca = Ca::new("unrelated-ca");
    let server = TlsServer::start(&server_ca, &client_ca).await;

    let ca_file = scratch.write("ca.pem", &server_ca.pem());
    let (cert, key) = client_ca.leaf(
        "fedstate-scheduler",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let cert_file = scratch.write("client.pem", &cert);
    let key_file = scratch.write("client-key.pem", &key);
    let wrong_ca_file = scratch.write("other-ca.pem", &other_ca.pem());
    // A client certificate from a CA the server does not trust.
    let (rogue_cert, rogue_key) = other_ca.leaf("rogue", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let rogue_cert_file = scratch.write("rogue.pem", &rogue_cert);
    let rogue_key_file = scratch.write("rogue-key.pem", &rogue_key);

    let started = Instant::now();

    // No client certificate: the server requires one.
    let no_cert = client_with(
        TlsOptions {
            ca_file: Some(ca_file.clone()),
            ..TlsOptions::default()
        },
        server.addr,
    );
    assert_refused(ask(&no_cert).await, &server, "no client certificate");

    // The server's certificate is not signed by the CA the client trusts.
    let wrong_ca = client_with(
        TlsOptions {
            ca_file: Some(wrong_ca_file),
            cert_file: Some(cert_file.clone()),
            key_file: Some(key_file.clone()),
            insecure_skip_verify: false,
        },
        server.addr,
    );
    assert_refused(ask(&wrong_ca).await, &server, "wrong CA");

    // The client certificate is signed by a CA the server does not trust.
    let rogue = client_with(
        TlsOptions {
            ca_file: Some(ca_file.clone()),
            cert_file: Some(rogue_cert_file),
            key_file: Some(rogue_key_file),
            insecure_skip_verify: false,
        },
        server.addr,
    );
    assert_refused(ask(&rogue).await, &server, "untrusted client certificate");

    // Plain HTTP/2 to a TLS port.
    let plain = client_with(TlsOptions::default(), server.addr);
    assert_refused(ask(&plain).await, &server, "plaintext");

    // Generous bound: the point is that refusals did not wait for the 10 s deadline each.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refusals took {:?}",
        started.elapsed()
    );

    // The right CA and client certificate.
    let good = client_with(
        TlsOptions {
            ca_file: Some(ca_file),
            cert_file: Some(cert_file),
            key_file: Some(key_file),
            insecure_skip_verify: false,
        },
        server.addr,
    );
    assert_eq!(ask(&good).await.unwrap(), 11);
    assert_eq!(server.calls(), 1);

    server.stop().await;
}

#[tokio::test]
async fn insecure_skip_verify_talks_to_an_estimator_of_an_unknown_ca() {
    let scratch = Scratch::new("skip-verify");
    let unknown_server_ca = Ca::new("somebody-elses-ca");
    let client_ca = Ca::new("estimator-client-ca");
    let server = TlsServer::start(&unknown_server_ca, &client_ca).await;
    let (cert, key) = client_ca.leaf(
        "fedstate-scheduler",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let cert_file = scratch.write("client.pem", &cert);
    let key_file = scratch.write("client-key.pem", &key);

    // Verifying, without knowing the server's CA: refused.
    let verifying = client_with(
        TlsOptions {
            ca_file: Some(scratch.write("client-ca.pem", &client_ca.pem())),
            cert_file: Some(cert_file.clone()),
            key_file: Some(key_file.clone()),
            insecure_skip_verify: false,
        },
        server.addr,
    );
    assert_refused(ask(&verifying).await, &server, "unknown server CA");

    // Skipping verification (no CA file at all): accepted, and the client cert still sent.
    let skipping = client_with(
        TlsOptions {
            ca_file: None,
            cert_file: Some(cert_file),
            key_file: Some(key_file),
            insecure_skip_verify: true,
        },
        server.addr,
    );
    assert_eq!(ask(&skipping).await.unwrap(), 11);
    assert_eq!(server.calls(), 1);
    server.stop().await;
}
