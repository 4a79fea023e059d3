//! Types shared by `gatewayd`, `gatewayctl` and the end-to-end tests: where an instance keeps its
//! files (per profile), the JSON bodies of the control API, and the exit codes both binaries use.

pub mod api;
pub mod cron;
pub mod disk;
pub mod exit;
pub mod paths;
pub mod procfs;
pub mod quote;
pub mod time;
pub mod ws;
pub mod ws_methods;

pub use paths::{Paths, Profile};

/// The version both binaries report; a mismatch between them is worth a warning.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
