//! Test support: an apiserver that takes every connection and never answers.

use kube::Client;
use tokio::task::JoinHandle;

/// A client of an apiserver on 127.0.0.1 that accepts every connection and never answers,
/// without the client's own read and write timeouts (so only the agent's bounds can end a
/// request), and the task holding the connections (abort it when done).
pub(crate) async fn silent_apiserver() -> (Client, JoinHandle<()>) {
    #![allow(clippy::unwrap_used)]
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    config.read_timeout = None;
    config.write_timeout = None;
    (Client::try_from(config).unwrap(), held)
}
