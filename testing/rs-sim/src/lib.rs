//! **A test fixture, not a database.** `fedstate-rs-sim` simulates MongoDB replica sets over many
//! member endpoints so FedState's agent can be tested with the real `mongodb` driver where no
//! `mongod` is available (`docs/local-federation.md#the-replica-set-simulator`). It speaks the wire
//! protocol (`OP_MSG`) and SCRAM-SHA-256, and reproduces the replica-set rules the agent depends
//! on, each backed by a test citing the MongoDB behaviour: `hello` fields, `replSetInitiate`
//! (once), `replSetGetConfig`/`replSetGetStatus`, `replSetReconfig` (version check, one voting
//! change, quorum check, `force`), elections by priority among reachable voters, `replSetStepDown`,
//! `createUser`/`updateUser`, the localhost exception. It stores no data, runs no queries and
//! implements no oplog.
//!
//! * [`wire`]: the OP_MSG codec.
//! * [`scram`]: the server side of SCRAM-SHA-256.
//! * [`world`]: the rules, synchronous and deterministic (time moves by ticks).
//! * [`server`]: [`Simulator`], one TCP listener per served member.
//! * [`bridge`]: serves the members the local federation's kwok reports Running, and makes
//!   `pods/exec` into them reach [`shell`], the stand-in for the image's `mongosh`/`mongo`.

// Indexing or slicing that may panic is refused in this crate: it decodes what clients send (the
// wire codec, SCRAM, the shell's scripts), and a panic there would kill a member's connection
// task instead of answering with an error; tests may (clippy.toml). Each remaining case carries
// an allow at the narrowest scope saying why it cannot fail.
#![warn(clippy::indexing_slicing)]

pub mod bridge;
pub mod keyfile;
pub mod scram;
pub mod server;
pub mod shell;
pub mod wire;
pub mod world;

pub use server::{ServeError, Simulator};
pub use world::{Settings, World};
