//! Answering HTTP: the origin (caches and builds), the hyper service, connections, TLS,
//! metrics and the operators' player page.

pub mod conn;
pub mod http;
pub(crate) mod metrics;
pub mod origin;
pub(crate) mod player;
pub mod tls;
