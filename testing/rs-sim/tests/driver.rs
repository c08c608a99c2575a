//! The real `mongodb` driver against the simulator: handshake, commands, SCRAM-SHA-256.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fedstate_rs_sim::{Settings, Simulator};
use mongodb::Client;
use mongodb::bson::{Document, doc};
use mongodb::options::{ClientOptions, Credential};

/// A clock that never ticks by itself: tests move time with `world().tick()`.
fn manual() -> Simulator {
    Simulator::start(
        Settings {
            sync_ticks: 1,
            stepdown_ticks: 5,
        },
        Duration::from_secs(3600),
    )
}

async fn direct(host: &str, cred: Option<(&str, &str)>) -> Client {
    let mut opts = ClientOptions::parse(format!(
        "mongodb://{host}/?directConnection=true&serverSelectionTimeoutMS=2000"
    ))
    .await
    .unwrap();
    if let Some((user, pwd)) = cred {
        opts.credential = Some(
            Credential::builder()
                .username(user.to_owned())
                .password(pwd.to_owned())
                .source("admin".to_owned())
                .build(),
        );
    }
    Client::with_options(opts).unwrap()
}

/// A client inside `host`'s pod: over its own localhost interface (the in-pod socket).
fn in_pod(sim: &Simulator, host: &str) -> Client {
    let mut opts = ClientOptions::default();
    opts.hosts = vec![mongodb::options::ServerAddress::Unix {
        path: sim.in_pod_socket(host),
    }];
    opts.direct_connection = Some(true);
    opts.server_selection_timeout = Some(Duration::from_secs(2));
    Client::with_options(opts).unwrap()
}

async fn run(c: &Client, cmd: Document) -> mongodb::error::Result<Document> {
    c.database("admin").run_command(cmd).await
}

fn code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

#[tokio::test]
async fn the_driver_initiates_a_set_and_authenticates_with_scram_sha_256() {
    let sim = manual();
    let a = sim.serve_new("127.0.0.1").await.unwrap();
    let b = sim.serve_new("127.0.0.1").await.unwrap();

    let ca = direct(&a, None).await;
    // An uninitiated member answers the handshake and says it wants a config.
    let hello = run(&ca, doc! {"hello": 1}).await.unwrap();
    assert!(hello.get_bool("isreplicaset").unwrap());
    assert!(hello.get_str("setName").is_err());

    // Initiating needs a login or the localhost exception, which only the member's own pod has.
    let initiate = doc! {"replSetInitiate": {"_id": "rs", "members": [
        {"_id": 0, "host": &a, "priority": 2},
        {"_id": 1, "host": &b},
    ]}};
    let denied = run(&ca, initiate).await.unwrap_err();
    assert_eq!(code(&denied), Some(13), "{denied}");
    let pod = in_pod(&sim, &a);
    run(
        &pod,
        doc! {"replSetInitiate": {"_id": "rs", "members": [
            {"_id": 0, "host": &a, "priority": 2},
            {"_id": 1, "host": &b},
        ]}},
    )
    .await
    .unwrap();
    // No primary until an election timeout (10 s of simulated time) has passed.
    let hello = run(&ca, doc! {"hello": 1}).await.unwrap();
    assert!(hello.get_str("primary").is_err(), "{hello}");
    for _ in 0..10 {
        sim.world().tick();
    }
    let hello = run(&ca, doc! {"hello": 1}).await.unwrap();
    assert_eq!(hello.get_str("setName").unwrap(), "rs");
    assert_eq!(hello.get_str("primary").unwrap(), a);
    assert_eq!(hello.get_str("me").unwrap(), a);
    assert!(hello.get_bool("isWritablePrimary").unwrap());

    // Localhost exception: the first user is created without credentials from the pod...
    let create = doc! {"createUser": "root", "pwd": "Sim-Root-Pass-1", "roles": ["root"]};
    assert_eq!(code(&run(&ca, create.clone()).await.unwrap_err()), Some(13));
    run(&pod, create).await.unwrap();
    // ...and then it is closed, also on this connection.
    let denied = run(&pod, doc! {"createUser": "x", "pwd": "y", "roles": []})
        .await
        .unwrap_err();
    assert_eq!(code(&denied), Some(13));

    let root = direct(&a, Some(("root", "Sim-Root-Pass-1"))).await;
    let status = run(&root, doc! {"replSetGetStatus": 1}).await.unwrap();
    assert_eq!(status.get_array("members").unwrap().len(), 2);

    let wrong = direct(&a, Some(("root", "not-the-password"))).await;
    let e = run(&wrong, doc! {"replSetGetStatus": 1}).await.unwrap_err();
    assert!(
        matches!(
            e.kind.as_ref(),
            mongodb::error::ErrorKind::Authentication { .. }
        ),
        "{e}"
    );

    // updateUser rotates the password: the old one stops working.
    run(&root, doc! {"updateUser": "root", "pwd": "Sim-Root-Pass-2"})
        .await
        .unwrap();
    let old = direct(&a, Some(("root", "Sim-Root-Pass-1"))).await;
    assert!(run(&old, doc! {"replSetGetStatus": 1}).await.is_err());
    let new = direct(&a, Some(("root", "Sim-Root-Pass-2"))).await;
    run(&new, doc! {"replSetGetStatus": 1}).await.unwrap();

    // A replica-set connection finds the primary by itself.
    let mut opts = ClientOptions::parse(format!(
        "mongodb://{a},{b}/?replicaSet=rs&serverSelectionTimeoutMS=3000"
    ))
    .await
    .unwrap();
    opts.credential = Some(
        Credential::builder()
            .username("root".to_owned())
            .password("Sim-Root-Pass-2".to_owned())
            .build(),
    );
    let rs = Client::with_options(opts).unwrap();
    let cfg = run(&rs, doc! {"replSetGetConfig": 1}).await.unwrap();
    assert_eq!(
        cfg.get_document("config").unwrap().get_str("_id").unwrap(),
        "rs"
    );
    sim.stop(&a);
    sim.stop(&b);
    assert!(sim.served().is_empty());
}

#[tokio::test]
async fn a_stopped_member_refuses_connections() {
    let sim = manual();
    let a = sim.serve_new("127.0.0.1").await.unwrap();
    let c = direct(&a, None).await;
    run(&c, doc! {"ping": 1}).await.unwrap();
    sim.stop(&a);
    let fresh = direct(&a, None).await;
    assert!(run(&fresh, doc! {"ping": 1}).await.is_err());
}
