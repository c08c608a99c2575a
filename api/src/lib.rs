//! FedState API types.
