//! fedstate-mongo-agent: the data plane of FedState in each member cluster.
//!
//! * [`planner`]: the pure replica-set planner (initiate once, one voter per reconfig, never force
//!   without the user's opt-in).
pub mod converge;
pub mod planner;
pub mod replset;
pub mod resources;
pub mod rollout;
pub mod status;
