//! quorate: a declarative reconciler for on-premises clusters that run stateful
//! containers, with fencing and quorum. See `ARCHITECTURE.md` for the code map.

pub mod runtime;
