//! quorate: a declarative reconciler for on-premises clusters that run stateful
//! containers, with fencing and quorum. See `ARCHITECTURE.md` for the code map.

pub mod alloc;
mod backoff;
pub mod cli;
pub mod diag;
pub mod fence;
mod graph;
pub mod ha;
pub(crate) mod history;
pub(crate) mod import;
pub mod lab;
pub mod load;
pub(crate) mod metrics;
pub(crate) mod notify;
pub mod observed;
mod parallel;
pub mod plan;
pub mod reconcile;
pub mod runtime;
pub(crate) mod schema;
pub mod secret;
pub(crate) mod server;
#[cfg(feature = "sim")]
pub mod sim;
pub mod source;
pub mod spec;
pub mod state;
pub mod status;
pub mod validate;
