//! berth-runtime: the container process (namespaces, rootfs, capabilities, seccomp, rlimits, hooks, state).
//!
//! Synchronous by design: no async runtime, few allocations, one fork per container init.

pub mod capabilities;
pub mod config;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod lean;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod state;
pub mod sys;

pub use error::{Result, RuntimeError};
pub mod safe_exe;
