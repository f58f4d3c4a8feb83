//! berth-runtime: the container process (namespaces, rootfs, capabilities, seccomp, rlimits, hooks, state).
//!
//! Synchronous by design: no async runtime, few allocations, one fork per container init.

pub mod capabilities;
pub mod seccomp;
