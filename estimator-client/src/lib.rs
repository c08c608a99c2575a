pub mod proto;
pub mod shape;
